package sidecar_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/internal/pgtest"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/store"
)

// What the API answers while the database is locked, read-only or down:
// decisions 503 audit_unavailable within the store's timeout (never an
// allow), other routes 503 database_unavailable, /ready 503 with the
// reason, /health 200; and all of it back to normal once writes work.

// faultTimeout is the store's timeout in these tests.
const faultTimeout = time.Second

// newFaultEnv serves the real stack on the database at url with a short
// store timeout, and runs the service's background work (the write probe)
// every 100 ms.
func newFaultEnv(t *testing.T, url string) *env {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{URL: url, Timeout: faultTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	eng, err := engine.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(st, eng, service.Options{AdminKey: testAdminKey, Roles: testRoles(t), ProbeInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	h := newServer(t, svc, sidecar.Options{MaxBodyBytes: 64 << 10})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{srv: h, svc: svc, url: srv.URL, st: st, cl: client.New(srv.URL).WithAPIKey(testAdminKey)}
}

// faultAgents creates an agent allowed to read docs and one allowed under
// a rate limit, whose decisions consume quota (the path that answered
// "internal" before).
func faultAgents(t *testing.T, e *env) (plain, limited api.AgentWithToken) {
	t.Helper()
	plain = e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "plain", Type: "autonomous",
		Permissions: []api.Permission{perm("docs:*", "read")}})
	limited = e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "limited", Type: "autonomous",
		Permissions: []api.Permission{{Resource: "api:x", Actions: []string{"call"}, Constraints: map[string]any{"maxCallsPerHour": 1000}}}})
	return plain, limited
}

// decisionsOf are the two agents' requests, each allowed while the
// database works.
func decisionsOf(plain, limited api.AgentWithToken) map[string]api.AuthorizeRequest {
	return map[string]api.AuthorizeRequest{
		"plain":        {AgentID: plain.ID, Action: "read", Resource: "docs:a"},
		"rate-limited": {AgentID: limited.ID, Action: "call", Resource: "api:x"},
	}
}

// checkDecisionsAllowed checks that every decision is allowed.
func checkDecisionsAllowed(t *testing.T, e *env, reqs map[string]api.AuthorizeRequest) {
	t.Helper()
	for name, req := range reqs {
		res, err := e.cl.Authorize(t.Context(), req, "")
		if err != nil || !res.Allowed {
			t.Errorf("Authorize(%s) = %+v, %v; want allowed", name, res, err)
		}
	}
}

// checkUnavailable checks that the database's unavailability shows:
// decisions 503 audit_unavailable within about the store's timeout and
// never allowed, a write elsewhere 503 database_unavailable, /health 200
// with the reason and /ready 503 with it (once the probe has seen it).
func checkUnavailable(t *testing.T, e *env, reqs map[string]api.AuthorizeRequest) {
	t.Helper()
	ctx := t.Context()
	for name, req := range reqs {
		start := time.Now()
		res, err := e.cl.Authorize(ctx, req, "")
		took := time.Since(start)
		if ce := asClientError(err); ce == nil || ce.Status != 503 || ce.Code != "audit_unavailable" {
			t.Errorf("Authorize(%s) = %+v, %v; want 503 audit_unavailable", name, res, err)
		}
		if res.Allowed {
			t.Errorf("Authorize(%s) allowed while the database is unavailable", name)
		}
		if took > 5*faultTimeout { // generous: a loaded machine under -race is slow
			t.Errorf("Authorize(%s) answered after %v; want within about the store's timeout (%v)", name, took, faultTimeout)
		}
	}
	_, err := e.cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "new", Type: "autonomous", Permissions: []api.Permission{perm("docs:*", "read")}})
	if ce := asClientError(err); ce == nil || ce.Status != 503 || ce.Code != "database_unavailable" {
		t.Errorf("CreateAgent = %v; want 503 database_unavailable", err)
	}
	waitReady(t, e, 503)
	status, body := e.do(t, "GET", "/ready", "")
	var rb api.ErrorBody
	if err := json.Unmarshal(body, &rb); err != nil || rb.Error.Code != "database_unavailable" || !strings.Contains(rb.Error.Message, "database writes fail") {
		t.Errorf("GET /ready = %d %s; want 503 database_unavailable saying why", status, body)
	}
	status, body = e.do(t, "GET", "/health", "")
	var h api.Health
	if err := json.Unmarshal(body, &h); err != nil || status != 200 || h.Status != "ok" || h.Database == "ok" || h.Sync == nil {
		t.Errorf("GET /health = %d %s; want 200, status ok, the database's reason and the feed", status, body)
	}
}

// waitReady polls /ready until it answers status, for at most 15 s (the
// probe runs every 100 ms and waits at most the store's timeout).
func waitReady(t *testing.T, e *env, status int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, body := e.do(t, "GET", "/ready", "")
		if got == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /ready = %d %s; want %d", got, body, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkRecovered checks that /ready is 200 again, /health says ok, and
// decisions are given.
func checkRecovered(t *testing.T, e *env, reqs map[string]api.AuthorizeRequest) {
	t.Helper()
	waitReady(t, e, 200)
	if h, err := e.cl.Health(t.Context()); err != nil || h.Database != "ok" {
		t.Errorf("Health = %+v, %v; want database ok", h, err)
	}
	checkDecisionsAllowed(t, e, reqs)
}

// Another process holds BEGIN EXCLUSIVE on the SQLite file.
func TestSQLiteExclusiveLockIsUnavailableNeverAnAllow(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kavach.db")
	e := newFaultEnv(t, path)
	reqs := decisionsOf(faultAgents(t, e))
	checkDecisionsAllowed(t, e, reqs)

	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)") // wait out a fold or batch in flight
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), `BEGIN EXCLUSIVE`); err != nil {
		t.Fatal(err)
	}
	checkUnavailable(t, e, reqs)
	if _, err := conn.ExecContext(t.Context(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	checkRecovered(t, e, reqs)
}

// PostgreSQL read-only, then down (the sidecar's role refused at login).
func TestPostgresReadOnlyAndOutageAreUnavailable(t *testing.T) {
	t.Parallel()
	role, url := pgtest.NewRole(t, pgtest.URL(t))
	e := newFaultEnv(t, url)
	reqs := decisionsOf(faultAgents(t, e))
	checkDecisionsAllowed(t, e, reqs)

	role.SetReadOnly(t, true)
	waitReady(t, e, 503)
	checkUnavailable(t, e, reqs)
	role.SetReadOnly(t, false)
	checkRecovered(t, e, reqs)

	role.SetReachable(t, false)
	waitReady(t, e, 503)
	checkUnavailable(t, e, reqs)
	role.SetReachable(t, true)
	checkRecovered(t, e, reqs)
}
