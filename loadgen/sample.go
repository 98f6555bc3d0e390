package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// SamplePath is where a floor server, wrapped by Sampled, reports its
// counters.
const SamplePath = "/_floor/sample"

// Sampled wraps a floor's handler: it counts the requests h answers and
// answers GET SamplePath with this process's CPU seconds and that count
// ("<cpu seconds> <requests>"), so that kavach bench reports a floor's
// CPU per request as it reports a sidecar's CPU per decision.
func Sampled(h http.Handler) http.Handler {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == SamplePath && r.Method == http.MethodGet {
			cpu, ok := processCPUSeconds()
			if !ok {
				http.Error(w, "no CPU time on this platform", http.StatusNotImplemented)
				return
			}
			_, _ = fmt.Fprintf(w, "%f %d\n", cpu, n.Load())
			return
		}
		h.ServeHTTP(w, r)
		n.Add(1)
	})
}

// FloorSample reads the counters of a floor server wrapped by Sampled at
// base URL, for Target.Sample.
func FloorSample(base string) func(context.Context) (Sample, error) {
	return func(ctx context.Context) (Sample, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+SamplePath, nil)
		if err != nil {
			return Sample{}, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return Sample{}, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		if err != nil {
			return Sample{}, err
		}
		if resp.StatusCode != http.StatusOK {
			return Sample{}, fmt.Errorf("floor sample: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		var s Sample
		if _, err := fmt.Sscanf(string(b), "%f %f", &s.CPUSeconds, &s.Decisions); err != nil {
			return Sample{}, fmt.Errorf("floor sample %q: %w", b, err)
		}
		return s, nil
	}
}
