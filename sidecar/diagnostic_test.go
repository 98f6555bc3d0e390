package sidecar_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/store"
)

// serve runs l on srv through ListenAndServe, the way the app does, and
// returns its base URL; the listener stops when the test ends.
func serve(t *testing.T, srv *sidecar.Server, l sidecar.Listener) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, l, func(a net.Addr) { addr <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe(%s) = %v; want nil after the context ends", l.Addr, err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a.String()
	case err := <-done:
		t.Fatalf("ListenAndServe(%s) = %v before listening", l.Addr, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("ListenAndServe(%s) did not listen within 10s", l.Addr)
	}
	return ""
}

// request sends one request and returns its status, headers and body.
func request(t *testing.T, method, url, authorization, host string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// The diagnostic listener answers /health, /ready and /metrics without a
// credential, with the main listener's handlers, and nothing else: every
// other path is a 404 whatever the credential (never a 401 that tells an
// API route from a missing one), another method a 405, and a foreign Host
// a 421. The main listener keeps /metrics behind a credential.
func TestDiagnosticListenerServesOnlyProbesAndMetrics(t *testing.T) {
	t.Parallel()
	svc, _, _ := newService(t, service.Options{})
	srv := newServer(t, svc, sidecar.Options{})
	diag := serve(t, srv, sidecar.Listener{Addr: "127.0.0.1:0", Handler: srv.DiagnosticHandler()})
	main := serve(t, srv, sidecar.Listener{Addr: "127.0.0.1:0"})
	admin := "Bearer " + testAdminKey

	for _, tt := range []struct {
		method, path, authorization, host string
		status                            int
		code, allow                       string
	}{
		{"GET", "/health", "", "", http.StatusOK, "", ""},
		{"HEAD", "/health", "", "", http.StatusOK, "", ""},
		{"GET", "/ready", "", "", http.StatusOK, "", ""},
		{"GET", "/metrics", "", "", http.StatusOK, "", ""},
		// A credential, good or bad, changes nothing here.
		{"GET", "/metrics", "Bearer kvk_nonsense", "", http.StatusOK, "", ""},
		{"GET", "/v1/agents", "", "", http.StatusNotFound, "not_found", ""},
		{"GET", "/v1/agents", admin, "", http.StatusNotFound, "not_found", ""},
		{"POST", "/v1/authorize", admin, "", http.StatusNotFound, "not_found", ""},
		{"GET", "/v1/keys", admin, "", http.StatusNotFound, "not_found", ""},
		{"GET", "/v1/audit", "", "", http.StatusNotFound, "not_found", ""},
		{"GET", "/v1/oauth/requests/x", "", "", http.StatusNotFound, "not_found", ""},
		{"GET", "/.well-known/oauth-authorization-server", "", "", http.StatusNotFound, "not_found", ""},
		{"GET", "/", "", "", http.StatusNotFound, "not_found", ""},
		{"GET", "/healthz", "", "", http.StatusNotFound, "not_found", ""},
		{"POST", "/health", "", "", http.StatusMethodNotAllowed, "method_not_allowed", "GET, HEAD"},
		{"POST", "/metrics", admin, "", http.StatusMethodNotAllowed, "method_not_allowed", "GET, HEAD"},
		{"DELETE", "/ready", "", "", http.StatusMethodNotAllowed, "method_not_allowed", "GET, HEAD"},
		{"GET", "/health", "", "evil.example", http.StatusMisdirectedRequest, "host_not_allowed", ""},
		{"GET", "/metrics", "", "localhost:9400", http.StatusOK, "", ""},
	} {
		status, header, body := request(t, tt.method, diag+tt.path, tt.authorization, tt.host)
		if status != tt.status || header.Get("Allow") != tt.allow {
			t.Errorf("%s %s (Host %q) on the diagnostic listener = %d (Allow %q) %s; want %d (Allow %q)",
				tt.method, tt.path, tt.host, status, header.Get("Allow"), body, tt.status, tt.allow)
			continue
		}
		if header.Get("WWW-Authenticate") != "" {
			t.Errorf("%s %s on the diagnostic listener asks for a credential (WWW-Authenticate %q); want none asked",
				tt.method, tt.path, header.Get("WWW-Authenticate"))
		}
		if tt.code != "" {
			var e api.ErrorBody
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != tt.code {
				t.Errorf("%s %s on the diagnostic listener = %s; want a JSON error with code %s", tt.method, tt.path, body, tt.code)
			}
		}
	}

	_, header, body := request(t, "GET", diag+"/metrics", "", "")
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("GET /metrics on the diagnostic listener: Content-Type %q; want the Prometheus text format", ct)
	}
	for _, name := range []string{"kavach_decisions_total", "kavach_authorize_duration_seconds_bucket", "kavach_api_refused_total",
		"kavach_audit_rows_total", "kavach_audit_mode", "kavach_ready 1", "kavach_database_writable 1", "kavach_sync_lag", "process_cpu_seconds_total "} {
		if !strings.Contains(string(body), name) {
			t.Errorf("GET /metrics on the diagnostic listener lacks %q:\n%s", name, body)
		}
	}
	var h api.Health
	if _, _, body := request(t, "GET", diag+"/health", "", ""); json.Unmarshal(body, &h) != nil || h.Status == "" {
		t.Errorf("GET /health on the diagnostic listener = %s; want the main listener's health document", body)
	}

	// The main listener is unchanged: /metrics takes a credential of role
	// metrics (or admin), and the probes are open.
	if status, _, body := request(t, "GET", main+"/metrics", "", ""); status != http.StatusUnauthorized {
		t.Errorf("GET /metrics on the main listener without a credential = %d %s; want 401", status, body)
	}
	if status, _, body := request(t, "GET", main+"/metrics", admin, ""); status != http.StatusOK {
		t.Errorf("GET /metrics on the main listener with the admin key = %d %s; want 200", status, body)
	}
	if status, _, body := request(t, "GET", main+"/health", "", ""); status != http.StatusOK {
		t.Errorf("GET /health on the main listener = %d %s; want 200", status, body)
	}
}

// /ready on the diagnostic listener follows the data load, as on the main
// listener, while /health answers from the start: the kubelet's readiness
// probe holds traffic back and its liveness probe does not restart a
// sidecar still loading.
func TestDiagnosticReadyFollowsTheLoad(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{URL: filepath.Join(t.TempDir(), "kavach.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	eng, err := engine.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(st, eng, service.Options{AdminKey: testAdminKey, Roles: testRoles(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, svc, sidecar.Options{})
	diag := serve(t, srv, sidecar.Listener{Addr: "127.0.0.1:0", Handler: srv.DiagnosticHandler()})

	if status, _, body := request(t, "GET", diag+"/ready", "", ""); status != http.StatusServiceUnavailable {
		t.Errorf("GET /ready on the diagnostic listener before the load = %d %s; want 503", status, body)
	}
	if _, _, body := request(t, "GET", diag+"/metrics", "", ""); !strings.Contains(string(body), "kavach_ready 0") {
		t.Errorf("GET /metrics before the load lacks kavach_ready 0:\n%s", body)
	}
	if status, _, body := request(t, "GET", diag+"/health", "", ""); status != http.StatusOK {
		t.Errorf("GET /health on the diagnostic listener before the load = %d %s; want 200", status, body)
	}
	if err := svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if status, _, body := request(t, "GET", diag+"/ready", "", ""); status != http.StatusOK {
		t.Errorf("GET /ready on the diagnostic listener after the load = %d %s; want 200", status, body)
	}
}
