package tests

import (
	"net/http"
	"path/filepath"
	"testing"
)

// Names given with --allowed-host (or KAVACH_ALLOWED_HOSTS, comma-separated)
// pass the Host check; any other name is refused with 421.
func TestAllowedHosts(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"), "--allowed-host", "kavach.internal, other.internal")
	for _, tt := range []struct {
		host   string
		status int
	}{
		{"kavach.internal", 200},
		{"other.internal:7400", 200},
		{"localhost", 200},
		{"evil.example", 421},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL+"/health", nil)
		req.Host = tt.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("GET /health with Host %q = %d; want %d", tt.host, resp.StatusCode, tt.status)
		}
	}
}
