package loadgen

import (
	"io"
	"net/http"
)

// SinkHandler answers 200 with an empty body to any POST, after reading
// the body: a receiver that costs next to nothing, for benchmarks that
// need somewhere to send OTLP/HTTP exports (an empty body is a full
// success) or webhooks. Any other method is 405.
func SinkHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})
}
