package sidecar_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
)

func TestKeysLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	ctx := t.Context()
	k, err := e.cl.CreateKey(ctx, api.CreateKeyRequest{Name: "my-app", Roles: []string{"decider"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.Key, "kvk_") || len(k.Key) < 32 || !strings.HasPrefix(k.ID, "key_") || k.Status != "active" {
		t.Fatalf("CreateKey = %+v; want a key_ ID, status active and a kvk_ secret of 32+ characters", k)
	}
	if k.CreatedBy != "KAVACH_ADMIN_KEY" {
		t.Errorf("createdBy = %q; want the creating credential", k.CreatedBy)
	}
	// Stored only as a hash: the secret is nowhere in the database file.
	_ = e.st.Close()
	raw, err := os.ReadFile(e.st.Path())
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(e.st.Path() + "-wal")
	if bytes.Contains(raw, []byte(k.Key)) || bytes.Contains(wal, []byte(k.Key)) {
		t.Error("the key's secret is stored in the database")
	}
}

func TestKeysAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	ctx := t.Context()
	k, err := e.cl.CreateKey(ctx, api.CreateKeyRequest{Name: "my-app", Roles: []string{"decider", "auditor"}})
	if err != nil {
		t.Fatal(err)
	}
	status, body := e.do(t, "GET", "/v1/keys", "")
	if status != 200 || strings.Contains(string(body), k.Key) || !strings.Contains(string(body), k.ID) {
		t.Errorf("GET /v1/keys = %d %s; want the key listed without its secret", status, body)
	}
	status, body = e.do(t, "GET", "/v1/keys/"+k.ID, "")
	if status != 200 || strings.Contains(string(body), k.Key) || strings.Contains(string(body), `"key"`) {
		t.Errorf("GET /v1/keys/{id} = %d %s; want the key without its secret", status, body)
	}
	app := client.New(e.url).WithAPIKey(k.Key)
	if _, err := app.ListAgents(ctx, client.AgentFilter{}); err != nil {
		t.Fatalf("auditor key lists agents: %v", err)
	}
	if _, err := e.cl.RevokeKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := app.ListAgents(ctx, client.AgentFilter{}); apiStatus(err) != 401 || apiCode(err) != "key_revoked" {
		t.Errorf("revoked key: ListAgents = %v; want 401 key_revoked", err)
	}
	for _, tt := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"no roles", `{"name":"x","roles":[]}`, 400, "missing_field"},
		{"unknown role", `{"name":"x","roles":["root"]}`, 422, "invalid_role"},
		{"role twice", `{"name":"x","roles":["admin","admin"]}`, 422, "invalid_role"},
		{"no name", `{"roles":["admin"]}`, 400, "missing_field"},
		{"past expiry", `{"name":"x","roles":["admin"],"expiresAt":"2001-01-01T00:00:00Z"}`, 422, "invalid_expiry"},
		{"secret given", `{"name":"x","roles":["admin"],"key":"kvk_mine"}`, 400, "unknown_field"},
	} {
		status, body := e.do(t, "POST", "/v1/keys", tt.body)
		if status != tt.status || errorCode(t, body) != tt.code {
			t.Errorf("%s: POST /v1/keys = %d %s; want %d %s", tt.name, status, body, tt.status, tt.code)
		}
	}
	if status, body := e.do(t, "POST", "/v1/keys/key_nope/revoke", ""); status != 404 || errorCode(t, body) != "key_not_found" {
		t.Errorf("revoke unknown key = %d %s; want 404 key_not_found", status, body)
	}
}

func TestExpiredKeyIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	exp := e.clock.Now().Add(time.Hour)
	k, err := e.cl.CreateKey(t.Context(), api.CreateKeyRequest{Name: "short", Roles: []string{"auditor"}, ExpiresAt: api.NewTimePtr(&exp)})
	if err != nil {
		t.Fatal(err)
	}
	app := client.New(e.url).WithAPIKey(k.Key)
	if _, err := app.ListAgents(t.Context(), client.AgentFilter{}); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	e.clock.Add(time.Hour)
	if _, err := app.ListAgents(t.Context(), client.AgentFilter{}); apiStatus(err) != 401 || apiCode(err) != "key_expired" {
		t.Errorf("after expiry: ListAgents = %v; want 401 key_expired", err)
	}
}

// Two sidecars on one database are two replicas. A key revoked on one is
// refused by the other on its very next request: on the decision path
// too, where keys are checked in memory, because the audit row's
// transaction reads the key's state from the database.
func TestRevokedKeyIsRefusedAtOnceOnAnotherReplica(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kavach.db")
	replica := func() (*client.Client, string) {
		// No svc.Run: this replica never follows the change feed, so what
		// it refuses it learns from the database alone.
		svc, _, _ := newServiceAt(t, path, service.Options{})
		srv := httptest.NewServer(newServer(t, svc, sidecar.Options{}))
		t.Cleanup(srv.Close)
		return client.New(srv.URL).WithAPIKey(testAdminKey), srv.URL
	}
	a, _ := replica()
	agent, err := a.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{perm("docs:*", "read")}})
	if err != nil {
		t.Fatal(err)
	}
	k, err := a.CreateKey(ctx, api.CreateKeyRequest{Name: "app", Roles: []string{"decider", "auditor"}})
	if err != nil {
		t.Fatal(err)
	}
	b, bURL := replica() // loads the key, and the agent, while both are valid
	app := client.New(bURL).WithAPIKey(k.Key)
	req := api.AuthorizeRequest{AgentID: agent.ID, Action: "read", Resource: "docs:x"}
	if res, err := app.Authorize(ctx, req, ""); err != nil || !res.Allowed {
		t.Fatalf("before revocation: Authorize on B = %+v, %v; want allowed", res, err)
	}
	if _, err := a.RevokeKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Authorize(ctx, req, ""); apiStatus(err) != http.StatusUnauthorized || apiCode(err) != "key_revoked" {
		t.Errorf("after revocation on A: Authorize on B = %v; want 401 key_revoked", err)
	}
	if _, err := app.ListAgents(ctx, client.AgentFilter{}); apiStatus(err) != http.StatusUnauthorized || apiCode(err) != "key_revoked" {
		t.Errorf("after revocation on A: ListAgents on B = %v; want 401 key_revoked", err)
	}
	// The refused decision left no decision row behind.
	page, err := b.QueryAudit(ctx, client.AuditFilter{AgentID: agent.ID, Kind: "decision"})
	if err != nil || len(page.Entries) != 1 {
		t.Errorf("decision rows for the agent = %d, %v; want 1 (the one before revocation)", len(page.Entries), err)
	}
}

func apiStatus(err error) int {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Status
	}
	return 0
}

func apiCode(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ""
}

// An agent's own token that is no good (unknown, rotated away, of a revoked
// agent) is a refused credential: 401, audited within the refusals' budget,
// no decision row. The app asking with its key for a token it received
// gets the decision instead, as KavachOS's authorizeByToken does.
func TestBadAgentTokenAsCredentialIsRefusedNotDecided(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	ctx := t.Context()
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{perm("docs:*", "read")}})
	rotated, err := e.cl.RotateAgent(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	revoked := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "r", Permissions: []api.Permission{perm("docs:*", "read")}})
	if _, err := e.cl.RevokeAgent(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	_, before := e.counts(t)
	req := api.AuthorizeRequest{Action: "read", Resource: "docs:x"}
	for _, tt := range []struct {
		name, token, code string
	}{
		{"unknown", "kv_" + strings.Repeat("A", 43), "invalid_token"},
		{"rotated away", a.Token, "invalid_token"},
		{"revoked agent", revoked.Token, "agent_revoked"},
	} {
		_, err := client.New(e.url).Authorize(ctx, req, tt.token)
		if apiStatus(err) != http.StatusUnauthorized || apiCode(err) != tt.code {
			t.Errorf("%s token as the credential: Authorize = %v; want 401 %s", tt.name, err, tt.code)
		}
	}
	if _, after := e.counts(t); after != before {
		t.Errorf("decision rows %d → %d; want none for refused credentials", before, after)
	}
	if res, err := client.New(e.url).Authorize(ctx, req, rotated.Token); err != nil || !res.Allowed {
		t.Errorf("the new token = %+v, %v; want allowed", res, err)
	}
	res, err := e.cl.Authorize(ctx, req, a.Token) // the app's key, and the old token beside it
	if err != nil || res.Allowed || res.Code != "invalid_token" || res.AuditID == "" {
		t.Errorf("app asking for a rotated token = %+v, %v; want the audited decision invalid_token", res, err)
	}
}
