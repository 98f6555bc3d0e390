package tests

import (
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
)

// Another process holds BEGIN EXCLUSIVE on the sidecar's SQLite file, with
// the default database.timeout (5 s): decisions, the rate-limited ones
// included, are 503 audit_unavailable within it and never allowed;
// /health stays 200 (the liveness probe, `kavach status`, passes) while
// /ready turns 503 with no traffic (the readiness probe, `kavach status
// --ready`, fails); once the lock is released /ready is 200 again and
// decisions are given. The times are logged (go test -v), never asserted
// beyond a sanity bound.
func TestHeldExclusiveLock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kavach.db")
	s := start(t, "--database", path)
	cl := s.adminClient()
	ctx := t.Context()
	plain, err := cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "plain", Type: "autonomous",
		Permissions: []api.Permission{{Resource: "docs:*", Actions: []string{"read"}}}})
	if err != nil {
		t.Fatal(err)
	}
	limited, err := cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "limited", Type: "autonomous",
		Permissions: []api.Permission{{Resource: "api:x", Actions: []string{"call"}, Constraints: map[string]any{"maxCallsPerHour": 100}}}})
	if err != nil {
		t.Fatal(err)
	}
	reqs := map[string]api.AuthorizeRequest{
		"plain":        {AgentID: plain.ID, Action: "read", Resource: "docs:a"},
		"rate-limited": {AgentID: limited.ID, Action: "call", Resource: "api:x"},
	}
	for name, req := range reqs {
		if res, err := cl.Authorize(ctx, req, ""); err != nil || !res.Allowed {
			t.Fatalf("Authorize(%s) before the lock = %+v, %v; want allowed", name, res, err)
		}
	}

	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)") // wait out a fold or batch in flight
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN EXCLUSIVE`); err != nil {
		t.Fatal(err)
	}
	locked := time.Now()

	// /ready turns with no traffic: the write probe finds the lock.
	waitStatus(t, s.URL+"/ready", http.StatusServiceUnavailable, 30*time.Second)
	t.Logf("/ready 503 %v after the lock was taken, with no traffic", time.Since(locked).Round(time.Millisecond))
	status, body := getURL(t, s.URL+"/ready")
	var eb api.ErrorBody
	// Locked: SQLite gave up waiting for the lock (busy_timeout, half the
	// timeout); on a loaded machine its waits oversleep and the timeout
	// may come first.
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code != "database_unavailable" ||
		!strings.Contains(eb.Error.Message, "(locked)") && !strings.Contains(eb.Error.Message, "(timeout)") {
		t.Errorf("GET /ready = %d %s; want 503 database_unavailable saying the database is locked (or too slow)", status, body)
	}
	if out, errOut, code := cli(t, nil, "status", "--ready", "--server", s.URL); code != 1 {
		t.Errorf("kavach status --ready (the readiness probe) = exit %d, %s%s; want 1", code, out, errOut)
	}

	for name, req := range reqs {
		start := time.Now()
		res, err := cl.Authorize(ctx, req, "")
		took := time.Since(start)
		if apiStatus(err) != 503 || apiCode(err) != "audit_unavailable" || res.Allowed {
			t.Errorf("Authorize(%s) under the lock = %+v, %v; want 503 audit_unavailable", name, res, err)
		}
		t.Logf("Authorize(%s) under the lock: %d %s after %v", name, apiStatus(err), apiCode(err), took.Round(time.Millisecond))
		if took > 15*time.Second {
			t.Errorf("Authorize(%s) answered after %v; want within about database.timeout (5s)", name, took)
		}
	}

	status, body = getURL(t, s.URL+"/health")
	var h api.Health
	if err := json.Unmarshal(body, &h); err != nil || status != 200 || h.Status != "ok" || h.Database != "locked" && h.Database != "timeout" {
		t.Errorf("GET /health under the lock = %d %s; want 200, status ok, database locked (or timeout)", status, body)
	}
	if out, errOut, code := cli(t, nil, "status", "--server", s.URL); code != 0 {
		t.Errorf("kavach status (the liveness probe) = exit %d, %s%s; want 0", code, out, errOut)
	}

	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	waitStatus(t, s.URL+"/ready", http.StatusOK, 30*time.Second)
	t.Logf("/ready 200 %v after the lock was released", time.Since(released).Round(time.Millisecond))
	for name, req := range reqs {
		if res, err := cl.Authorize(ctx, req, ""); err != nil || !res.Allowed {
			t.Errorf("Authorize(%s) after the lock = %+v, %v; want allowed", name, res, err)
		}
	}
	if h, err := cl.Health(ctx); err != nil || h.Database != "ok" {
		t.Errorf("Health after the lock = %+v, %v; want database ok", h, err)
	}
}

func getURL(t *testing.T, url string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// waitStatus polls url until it answers status.
func waitStatus(t *testing.T, url string, status int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, body := getURL(t, url)
		if got == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d %s; want %d within %v", url, got, body, status, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
