package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/internal/mysqltest"
	"github.com/kavach-dev/kavach/internal/pgtest"
)

// Two real sidecar processes on one database: what is written through one
// is decided accordingly by the other, within a measured lag, and no change
// is lost when the listener connection dies or a replica restarts. These
// tests are not parallel: they measure the propagation lag (busy polling)
// and race 50 callers over both replicas for a shared rate limit.

func TestReplicasOnPostgres(t *testing.T) {
	testReplicas(t, pgtest.URL(t), "postgres")
}

func TestReplicasOnSQLiteFile(t *testing.T) {
	testReplicas(t, filepath.Join(t.TempDir(), "kavach.db"), "sqlite")
}

func TestReplicasOnMySQL(t *testing.T) {
	testReplicas(t, mysqltest.URL(t), "mysql")
}

func testReplicas(t *testing.T, db, engine string) {
	dir := t.TempDir()
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	appB := "kavach-e2e-" + hex.EncodeToString(nonce[:]) // no other test's: its sessions are ended below
	cfgB := filepath.Join(dir, "b.yaml")
	// B polls only once a minute: changes must reach it through notifications
	// (LISTEN, or the watched SQLite file), including after a reconnect.
	// MySQL has nothing to listen to: there B polls the change feed at the
	// default interval (200ms), which bounds the lag measured below.
	poll := "  pollInterval: 1m\n"
	if engine == "mysql" {
		poll = ""
	}
	writeFile(t, cfgB, fmt.Sprintf("database:\n  applicationName: %s\n%s", appB, poll))
	a := start(t, "--database", db)
	b := start(t, "--database", db, "--config", cfgB)
	ca, cb := a.adminClient(), b.adminClient()
	ctx := t.Context()

	// waitCode polls B until the decision has the wanted code.
	waitCode := func(agentID, code string) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := start.Add(15 * time.Second)
		for {
			res, err := cb.Authorize(ctx, api.AuthorizeRequest{AgentID: agentID, Action: "read", Resource: "docs:x"}, "")
			if err != nil {
				t.Fatal(err)
			}
			if res.Code == code {
				return time.Since(start)
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica B still says %s for %s after 15s; want %s", res.Code, agentID, code)
			}
			time.Sleep(500 * time.Microsecond)
		}
	}

	// 100 changes through A (50 creations, 50 revocations), each timed until
	// B decides by it.
	var lags []time.Duration
	for range 50 {
		ag, err := ca.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{{Resource: "docs:*", Actions: []string{"read"}}}})
		if err != nil {
			t.Fatal(err)
		}
		lags = append(lags, waitCode(ag.ID, "allowed"))
		if _, err := ca.RevokeAgent(ctx, ag.ID); err != nil {
			t.Fatal(err)
		}
		lags = append(lags, waitCode(ag.ID, "agent_revoked"))
	}
	slices.Sort(lags)
	t.Logf("%s: propagation lag over %d changes: median %v, p90 %v, worst %v", engine, len(lags),
		lags[len(lags)/2], lags[len(lags)*9/10], lags[len(lags)-1])

	if engine == "mysql" {
		// Kill every connection to the database (both replicas' pools): the
		// next change must still arrive, through new connections.
		t.Logf("mysql: killed %d connections to the database", mysqltest.KillConnections(t, db))
		ag, err := ca.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "after-kill", Permissions: []api.Permission{{Resource: "docs:*", Actions: []string{"read"}}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("mysql: change made after every connection was killed arrived after %v", waitCode(ag.ID, "allowed"))
	}
	if engine == "postgres" {
		// Kill B's LISTEN connection: the change must still arrive.
		conn, err := pgx.Connect(ctx, pgtest.ServerURL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var killed int
		if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`,
			appB+"-listener").Scan(&killed); err != nil || killed != 1 {
			t.Fatalf("killed %d listener connections of B: %v", killed, err)
		}
		ag, err := ca.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "after-kill", Permissions: []api.Permission{{Resource: "docs:*", Actions: []string{"read"}}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("postgres: change made while B's listener was killed arrived after %v", waitCode(ag.ID, "allowed"))
		deadline := time.Now().Add(15 * time.Second)
		for {
			h, err := cb.Health(ctx)
			if err == nil && h.Sync != nil && h.Sync.Listening {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("B's listener did not reconnect within 15s: %+v, %v", h.Sync, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Restart B; changes made meanwhile are there when it is ready.
	b.stop(t)
	created, err := ca.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "while-down", Permissions: []api.Permission{{Resource: "docs:*", Actions: []string{"read"}}}})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := ca.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "revoked-while-down", Permissions: []api.Permission{{Resource: "docs:*", Actions: []string{"read"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.RevokeAgent(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	b = start(t, "--database", db, "--config", cfgB)
	cb = b.adminClient()
	for id, want := range map[string]string{created.ID: "allowed", revoked.ID: "agent_revoked"} {
		res, err := cb.Authorize(ctx, api.AuthorizeRequest{AgentID: id, Action: "read", Resource: "docs:x"}, "")
		if err != nil || res.Code != want {
			t.Errorf("restarted B decides %s: %+v, %v; want %s", id, res, err, want)
		}
	}
	h, err := cb.Health(ctx)
	if err != nil || h.Sync == nil || h.Sync.Lag != 0 || h.Sync.AppliedSeq == 0 {
		t.Errorf("restarted B's sync status = %+v, %v; want caught up", h.Sync, err)
	}
	out, _, code := cli(t, nil, "status", "--server", b.URL)
	if code != 0 || !containsAll(out, "applied change:", "lag:") {
		t.Errorf("kavach status = %q (exit %d)", out, code)
	}

	// Rate limits are shared: 50 calls split over A and B, limit 10 in total.
	limited, err := ca.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "limited",
		Permissions: []api.Permission{{Resource: "api:*", Actions: []string{"call"}, Constraints: map[string]any{"maxCallsPerHour": 10}}}})
	if err != nil {
		t.Fatal(err)
	}
	waitCode(limited.ID, "no_permission") // B knows the agent
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := range 50 {
		cl := ca
		if i%2 == 1 {
			cl = cb
		}
		wg.Go(func() {
			res, err := cl.Authorize(context.Background(), api.AuthorizeRequest{AgentID: limited.ID, Action: "call", Resource: "api:x"}, "")
			if err != nil {
				t.Error(err)
			} else if res.Allowed {
				allowed.Add(1)
			} else if res.Code != "rate_limited" {
				t.Errorf("unexpected decision %+v", res)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 10 {
		t.Errorf("50 calls over two replicas under maxCallsPerHour 10: %d allowed; want 10", allowed.Load())
	}

	// Approvals are shared: requested on A, approved through B, used once.
	gated, err := ca.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "gated",
		Permissions: []api.Permission{{Resource: "db:prod", Actions: []string{"drop"}, Constraints: map[string]any{"requireApproval": true}}}})
	if err != nil {
		t.Fatal(err)
	}
	req := api.AuthorizeRequest{AgentID: gated.ID, Action: "drop", Resource: "db:prod"}
	res, err := ca.Authorize(ctx, req, "")
	if err != nil || res.ApprovalID == "" {
		t.Fatalf("approval request on A = %+v, %v", res, err)
	}
	if _, err := cb.ResolveApproval(ctx, res.ApprovalID, true, api.ResolveApprovalRequest{RespondedBy: "alice"}); err != nil {
		t.Fatal(err)
	}
	req.ApprovalID = res.ApprovalID
	deadline := time.Now().Add(15 * time.Second)
	var onA api.AuthorizeResponse
	for {
		if onA, err = ca.Authorize(ctx, req, ""); err != nil {
			t.Fatal(err)
		}
		if onA.Code != "approval_pending" || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !onA.Allowed {
		t.Fatalf("approved on B, used on A: %+v; want allowed", onA)
	}
	// B learns of the agent within the propagation lag (polled on MySQL:
	// a couple of hundred milliseconds); until then it answers
	// agent_not_found, which uses nothing.
	var onB api.AuthorizeResponse
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(time.Millisecond) {
		if onB, err = cb.Authorize(ctx, req, ""); err != nil || onB.Code != "agent_not_found" || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || onB.Code != "approval_used" {
		t.Errorf("second use, on B: %+v, %v; want approval_used", onB, err)
	}

	// API keys are shared: one created through A is taken by B, and once
	// revoked through A, B refuses it at once, whatever B's cache holds.
	key, err := ca.CreateKey(ctx, api.CreateKeyRequest{Name: "app", Roles: []string{"decider"}})
	if err != nil {
		t.Fatal(err)
	}
	app := cb.WithAPIKey(key.Key)
	byKey := api.AuthorizeRequest{AgentID: created.ID, Action: "read", Resource: "docs:x"}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(time.Millisecond) {
		res, err := app.Authorize(ctx, byKey, "")
		if err == nil {
			if !res.Allowed {
				t.Errorf("decision on B with a key made on A = %+v; want allowed", res)
			}
			break
		}
		if apiCode(err) != "invalid_key" || time.Now().After(deadline) {
			t.Fatalf("authorize on B with a key made on A = %v; want it taken within 15s", err)
		}
	}
	if _, err := ca.RevokeKey(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if res, err := app.Authorize(ctx, byKey, ""); apiStatus(err) != 401 || apiCode(err) != "key_revoked" {
		t.Errorf("authorize on B with a key just revoked on A = %+v, %v; want 401 key_revoked", res, err)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
