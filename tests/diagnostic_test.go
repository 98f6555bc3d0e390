package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
)

// loggedAddr waits until s logs msg with an address and returns it.
func loggedAddr(t *testing.T, s *sidecar, msg string) string {
	t.Helper()
	find := func() string {
		for line := range strings.Lines(s.log()) {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg && rec.Addr != "" {
				return rec.Addr
			}
		}
		return ""
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		if addr := find(); addr != "" {
			return addr
		}
		select {
		case <-tick.C:
		case <-s.done:
			t.Fatalf("kavach serve exited before logging %q:\n%s", msg, s.log())
		case <-deadline:
			t.Fatalf("kavach serve did not log %q within 30s:\n%s", msg, s.log())
		}
	}
}

// The real binary with KAVACH_DIAGNOSTIC_ADDR serves the probes and the
// metrics on a listener of their own, without a credential, and nothing of
// the API there; SIGTERM closes it with the others.
func TestDiagnosticListener(t *testing.T) {
	t.Parallel()
	s, err := startEnv(t, []string{"KAVACH_DIAGNOSTIC_ADDR=127.0.0.1:0"}, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	if err != nil {
		t.Fatal(err)
	}
	addr := loggedAddr(t, s, "listening for diagnostics")
	diag := "http://" + addr
	if diag == s.URL {
		t.Fatalf("the diagnostic listener is the main one (%s)", diag)
	}
	cl := s.adminClient()
	a := mustCreate(t, cl, perm("api:*", "call"))
	authz(t, cl, api.AuthorizeRequest{AgentID: a.ID, Action: "call", Resource: "api:x"})
	authz(t, cl, api.AuthorizeRequest{AgentID: a.ID, Action: "drop", Resource: "api:x"})

	admin := keyed(adminKey)
	for _, tt := range []struct {
		client       *http.Client
		method, path string
		status       int
		code         string
	}{
		{http.DefaultClient, "GET", "/health", http.StatusOK, ""},
		{http.DefaultClient, "GET", "/ready", http.StatusOK, ""},
		{http.DefaultClient, "GET", "/metrics", http.StatusOK, ""},
		{http.DefaultClient, "GET", "/v1/agents", http.StatusNotFound, "not_found"},
		{admin, "GET", "/v1/agents", http.StatusNotFound, "not_found"},
		{admin, "GET", "/v1/agents/" + a.ID, http.StatusNotFound, "not_found"},
		{admin, "POST", "/v1/authorize", http.StatusNotFound, "not_found"},
		{admin, "GET", "/v1/audit/export", http.StatusNotFound, "not_found"},
		{http.DefaultClient, "POST", "/health", http.StatusMethodNotAllowed, "method_not_allowed"},
		{admin, "POST", "/metrics", http.StatusMethodNotAllowed, "method_not_allowed"},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), tt.method, diag+tt.path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := tt.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		var e api.ErrorBody
		switch {
		case resp.StatusCode != tt.status:
			t.Errorf("%s %s on the diagnostic listener = %d %s; want %d", tt.method, tt.path, resp.StatusCode, b, tt.status)
		case tt.code != "" && (json.Unmarshal(b, &e) != nil || e.Error.Code != tt.code):
			t.Errorf("%s %s on the diagnostic listener = %s; want a JSON error with code %s", tt.method, tt.path, b, tt.code)
		case tt.path == "/metrics" && tt.status == http.StatusOK:
			for _, want := range []string{`kavach_decisions_total{result="allowed"} 1`, `kavach_decisions_total{result="denied"} 1`,
				"kavach_audit_rows_total 2", "kavach_ready 1", "kavach_database_writable 1"} {
				if !strings.Contains(string(b), want) {
					t.Errorf("GET /metrics on the diagnostic listener lacks %q:\n%s", want, b)
				}
			}
		}
	}
	// The main listener still guards its /metrics.
	if code, body := getURL(t, s.URL+"/metrics"); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics on the main listener without a credential = %d %s; want 401", code, body)
	}

	s.stop(t)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Errorf("the diagnostic listener %s still accepts connections after the sidecar stopped", addr)
	}
}

// A diagnostic address that is not TCP, or that another listener has,
// stops the sidecar at start with exit code 2, before it listens.
func TestDiagnosticAddressRefused(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "kavach.db")
	port := freePort(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--diagnostic-addr", fmt.Sprintf("127.0.0.1:%d", port)}, "server.address (--addr)"},
		{[]string{"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--diagnostic-addr", fmt.Sprintf(":%d", port)}, "server.address (--addr)"},
		{[]string{"--diagnostic-addr", "unix:///tmp/kavach-diag.sock"}, "is TCP"},
		{[]string{"--diagnostic-addr", "9400"}, "not host:port"},
	} {
		_, stderr, code := cli(t, nil, append([]string{"serve", "--database", db}, tt.args...)...)
		if code != 2 || !strings.Contains(stderr, "server.diagnosticAddress (--diagnostic-addr)") || !strings.Contains(stderr, tt.want) ||
			strings.Contains(stderr, `"msg":"listening`) {
			t.Errorf("kavach serve %s = exit %d:\n%s\nwant exit 2 naming server.diagnosticAddress and %q, before listening",
				strings.Join(tt.args, " "), code, stderr, tt.want)
		}
	}
}

// A diagnostic port another process holds stops the whole sidecar (exit
// 1, naming the listener): it never runs without the listener its probes
// reach.
func TestDiagnosticPortTaken(t *testing.T) {
	t.Parallel()
	var lc net.ListenConfig
	taken, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, stderr, code := cli(t, nil, "serve", "--addr", "127.0.0.1:0", "--database", filepath.Join(t.TempDir(), "kavach.db"),
		"--diagnostic-addr", taken.Addr().String())
	if code != 1 || !strings.Contains(stderr, "serve diagnostic: listen on "+taken.Addr().String()) {
		t.Errorf("kavach serve --diagnostic-addr %s (taken) = exit %d:\n%s\nwant exit 1 naming the diagnostic listener", taken.Addr(), code, stderr)
	}
}
