package loadgen

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSinkHandler(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/v1/traces", http.StatusOK},
		{http.MethodPost, "/webhook", http.StatusOK},
		{http.MethodGet, "/v1/traces", http.StatusMethodNotAllowed},
	} {
		rec := httptest.NewRecorder()
		SinkHandler().ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, strings.NewReader("x")))
		if rec.Code != tt.status || rec.Body.Len() != 0 {
			t.Errorf("%s %s = %d %q; want %d and no body", tt.method, tt.path, rec.Code, rec.Body, tt.status)
		}
	}
}
