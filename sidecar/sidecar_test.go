package sidecar_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"

	"github.com/kavach-dev/kavach/access"
	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	srv   *sidecar.Server
	svc   *service.Service
	url   string
	st    *store.Store
	cl    *client.Client
	clock *clock
}

// newEnv serves the real stack (SQLite file, OPA engine, service, HTTP) on
// a loopback listener.
func newEnv(t *testing.T, opts service.Options) *env {
	t.Helper()
	svc, st, c := newService(t, opts)
	h := newServer(t, svc, sidecar.Options{MaxBodyBytes: 64 << 10})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{srv: h, svc: svc, url: srv.URL, st: st, cl: client.New(srv.URL).WithAPIKey(testAdminKey), clock: c}
}

// testAdminKey is the environments' KAVACH_ADMIN_KEY.
const testAdminKey = "test-admin-key-0123456789abcdef0123456789"

func newServer(t testing.TB, svc *service.Service, opts sidecar.Options) *sidecar.Server {
	t.Helper()
	srv, err := sidecar.New(svc, opts)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// newService is the real stack below HTTP (SQLite file, OPA engine,
// service) with a settable clock, loaded and ready.
func newService(t *testing.T, opts service.Options) (*service.Service, *store.Store, *clock) {
	t.Helper()
	return newServiceAt(t, filepath.Join(t.TempDir(), "kavach.db"), opts)
}

// newServiceAt is newService on the database file path: two on one file
// are two replicas.
func newServiceAt(t testing.TB, path string, opts service.Options) (*service.Service, *store.Store, *clock) {
	t.Helper()
	return newServiceWith(t, store.Options{URL: path}, opts)
}

// newServiceWith is newServiceAt over a store opened with so (its URL set;
// its clock the test's unless so.Now is set).
func newServiceWith(t testing.TB, so store.Options, opts service.Options) (*service.Service, *store.Store, *clock) {
	t.Helper()
	ctx := t.Context()
	c := &clock{t: time.Now().UTC()}
	if so.Now == nil {
		so.Now = c.Now
	}
	if opts.Anomalies.Enabled {
		so.DecisionTap = service.DecisionTap
	}
	st, err := store.Open(ctx, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	// The production default: policy data read through from the database,
	// with room for so few agents that most tests evict and read again.
	eng, err := engine.NewWithData(ctx, engine.CachedData(replica.Lookup(st), 3), nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	if opts.AdminKey == "" {
		opts.AdminKey = testAdminKey
	}
	if opts.Roles == nil {
		opts.Roles = testRoles(t)
	}
	svc, err := service.New(st, eng, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return svc, st, c
}

func (e *env) do(t *testing.T, method, path, body string, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	// As the app would: its key, and JSON bodies; a test may override both.
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
			continue
		}
		req.Header.Set(header[i], header[i+1])
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

func testRoles(t testing.TB) []string {
	t.Helper()
	pol, err := access.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return pol.Roles()
}

// counts returns the number of agents and of decisions' audit rows.
func (e *env) counts(t *testing.T) (agents, audits int) {
	t.Helper()
	if err := e.st.EachAgent(t.Context(), func(domain.Agent) error { agents++; return nil }); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := e.st.ExportAudit(t.Context(), store.AuditFilter{Kind: domain.KindDecision}, func(domain.AuditEntry) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return agents, n
}

func (e *env) create(t *testing.T, req api.CreateAgentRequest) api.AgentWithToken {
	t.Helper()
	a, err := e.cl.CreateAgent(t.Context(), req)
	if err != nil {
		t.Fatalf("CreateAgent(%+v) = %v", req, err)
	}
	return a
}

func perm(resource string, actions ...string) api.Permission {
	return api.Permission{Resource: resource, Actions: actions}
}

func TestQuickstart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{MaxPerUser: 10})
	ctx := t.Context()
	agent := e.create(t, api.CreateAgentRequest{OwnerID: "user-123", Name: "github-reader", Type: "autonomous",
		Permissions: []api.Permission{perm("mcp:github:*", "read"), perm("mcp:github:issues", "read", "comment")}})
	if !strings.HasPrefix(agent.ID, "agt_") || len(agent.Token) != 46 || !strings.HasPrefix(agent.Token, "kv_") {
		t.Fatalf("created agent id=%q token length %d; want agt_… and a 46-character kv_ token", agent.ID, len(agent.Token))
	}
	authz := func(req api.AuthorizeRequest, token string) api.AuthorizeResponse {
		t.Helper()
		res, err := e.cl.Authorize(ctx, req, token)
		if err != nil {
			t.Fatalf("Authorize(%+v) = %v", req, err)
		}
		if !strings.HasPrefix(res.AuditID, "aud_") {
			t.Errorf("auditId = %q; want aud_…", res.AuditID)
		}
		return res
	}
	for _, tt := range []struct {
		req   api.AuthorizeRequest
		token string
		code  string
	}{
		{api.AuthorizeRequest{AgentID: agent.ID, Action: "read", Resource: "mcp:github:repos"}, "", "allowed"},
		{api.AuthorizeRequest{AgentID: agent.ID, Action: "write", Resource: "mcp:github:repos"}, "", "no_permission"},
		{api.AuthorizeRequest{Action: "comment", Resource: "mcp:github:issues"}, agent.Token, "allowed"},
		{api.AuthorizeRequest{AgentID: "agt_unknown", Action: "read", Resource: "x"}, "", "agent_not_found"},
		{api.AuthorizeRequest{Action: "read", Resource: "x"}, "kv_" + strings.Repeat("A", 43), "invalid_token"},
	} {
		if res := authz(tt.req, tt.token); res.Code != tt.code || res.Allowed != (tt.code == "allowed") {
			t.Errorf("Authorize(%+v) = %+v; want %s", tt.req, res, tt.code)
		}
	}

	rotated, err := e.cl.RotateAgent(ctx, agent.ID)
	if err != nil || rotated.Token == agent.Token || len(rotated.Token) != 46 {
		t.Fatalf("RotateAgent = %+v, %v", rotated, err)
	}
	if res := authz(api.AuthorizeRequest{Action: "read", Resource: "mcp:github:repos"}, agent.Token); res.Code != "invalid_token" {
		t.Errorf("old token after rotate: %s; want invalid_token", res.Code)
	}
	if res := authz(api.AuthorizeRequest{Action: "read", Resource: "mcp:github:repos"}, rotated.Token); !res.Allowed {
		t.Errorf("new token after rotate: %+v; want allowed", res)
	}

	// Reads never return the token.
	_, body := e.do(t, "GET", "/v1/agents/"+agent.ID, "")
	if bytes.Contains(body, []byte(rotated.Token)) || bytes.Contains(body, []byte(`"token"`)) || bytes.Contains(body, []byte("tokenHash")) {
		t.Errorf("GET agent leaks the token or its hash: %s", body)
	}

	// Audit: one row per decision; the agent's denials filter (the old
	// token's denial is not tied to the agent: a dead token names no one).
	page, err := e.cl.QueryAudit(ctx, client.AuditFilter{AgentID: agent.ID, Result: "denied"})
	if err != nil || len(page.Entries) != 1 || page.Entries[0].Action != "write" {
		t.Fatalf("QueryAudit(denied) = %+v, %v; want the one write denial", page.Entries, err)
	}
	if _, audits := e.counts(t); audits != 7 {
		t.Errorf("audit rows = %d; want one per decision (7)", audits)
	}
	unknown, err := e.cl.QueryAudit(ctx, client.AuditFilter{AgentID: "agt_unknown"})
	if err != nil || len(unknown.Entries) != 1 || unknown.Entries[0].Code != "agent_not_found" {
		t.Errorf("audit of an unknown agent = %+v, %v; want its denial recorded", unknown, err)
	}

	if _, err := e.cl.RevokeAgent(ctx, agent.ID); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"", rotated.Token} {
		req := api.AuthorizeRequest{Action: "read", Resource: "mcp:github:repos"}
		if tok == "" {
			req.AgentID = agent.ID
		}
		if res := authz(req, tok); res.Code != "agent_revoked" {
			t.Errorf("revoked agent (token=%v): %s; want agent_revoked", tok != "", res.Code)
		}
	}
	got, err := e.cl.GetAgent(ctx, agent.ID)
	if err != nil || got.Status != "revoked" {
		t.Errorf("GetAgent(revoked) = %+v, %v; want the row kept with status revoked", got, err)
	}
}

func TestExpiredAgentIsDeniedByIDAndToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{TokenExpiry: time.Hour})
	ctx := t.Context()
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{perm("*", "*")}})
	if a.ExpiresAt == nil || a.ExpiresAt.Sub(e.clock.Now()) > time.Hour || a.ExpiresAt.Sub(e.clock.Now()) < 59*time.Minute {
		t.Fatalf("expiresAt = %v; want now + agents.tokenExpiry (1h)", a.ExpiresAt)
	}
	e.clock.Add(time.Hour)
	for _, byToken := range []bool{false, true} {
		req, tok := api.AuthorizeRequest{AgentID: a.ID, Action: "read", Resource: "x"}, ""
		if byToken {
			req.AgentID, tok = "", a.Token
		}
		res, err := e.cl.Authorize(ctx, req, tok)
		if err != nil || res.Code != "agent_expired" {
			t.Errorf("Authorize(expired, byToken=%v) = %+v, %v; want agent_expired", byToken, res, err)
		}
	}
	got, _ := e.cl.GetAgent(ctx, a.ID)
	if got.Status != "expired" {
		t.Errorf("status = %q; want expired", got.Status)
	}
	// Extending the expiry revives it.
	later := e.clock.Now().Add(time.Hour)
	b, _ := json.Marshal(later)
	if _, err := e.cl.UpdateAgent(ctx, a.ID, api.UpdateAgentRequest{ExpiresAt: b}); err != nil {
		t.Fatal(err)
	}
	if res, _ := e.cl.Authorize(ctx, api.AuthorizeRequest{AgentID: a.ID, Action: "read", Resource: "x"}, ""); !res.Allowed {
		t.Errorf("after extending expiry: %+v; want allowed", res)
	}
}

func TestUpdateReplacesPermissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	ctx := t.Context()
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{perm("a:*", "read")}})
	perms := []api.Permission{perm("b:*", "write")}
	if _, err := e.cl.UpdateAgent(ctx, a.ID, api.UpdateAgentRequest{Permissions: &perms}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ action, resource, code string }{
		{"read", "a:x", "no_permission"}, {"write", "b:x", "allowed"},
	} {
		res, err := e.cl.Authorize(ctx, api.AuthorizeRequest{AgentID: a.ID, Action: tt.action, Resource: tt.resource}, "")
		if err != nil || res.Code != tt.code {
			t.Errorf("after update, %s %s = %+v, %v; want %s", tt.action, tt.resource, res, err, tt.code)
		}
	}
}

func TestDefaultPermissionsAndMaxPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{MaxPerUser: 2, DefaultPermissions: []api.Permission{perm("docs:*", "read")}})
	ctx := t.Context()
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "one"})
	if len(a.Permissions) != 1 || a.Permissions[0].Resource != "docs:*" {
		t.Errorf("permissions = %+v; want agents.defaultPermissions", a.Permissions)
	}
	b := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "two", Permissions: []api.Permission{}})
	if len(b.Permissions) != 0 {
		t.Errorf("explicit empty permissions = %+v; want none", b.Permissions)
	}
	_, err := e.cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "three"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 409 || ce.Code != "agent_limit_reached" {
		t.Fatalf("third agent = %v; want 409 agent_limit_reached", err)
	}
	if _, err := e.cl.RevokeAgent(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "three"})
}

func TestBadInputIsRejectedAndWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	valid := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{perm("*", "read")}})
	agents0, audits0 := e.counts(t)
	big := `{"ownerId":"u","name":"` + strings.Repeat("x", 70<<10) + `"}`
	for _, tt := range []struct {
		name, method, path, body string
		header                   []string
		status                   int
		code                     string
	}{
		{"malformed JSON", "POST", "/v1/agents", `{"ownerId":`, nil, 400, "invalid_json"},
		{"not an object", "POST", "/v1/agents", `[1,2]`, nil, 400, "invalid_json"},
		{"empty body", "POST", "/v1/agents", ``, nil, 400, "invalid_json"},
		{"trailing data", "POST", "/v1/agents", `{"ownerId":"u","name":"n"} {}`, nil, 400, "invalid_json"},
		{"unknown field", "POST", "/v1/agents", `{"ownerId":"u","name":"n","permission":[]}`, nil, 400, "unknown_field"},
		{"wrong type", "POST", "/v1/agents", `{"ownerId":"u","name":42}`, nil, 400, "invalid_field"},
		{"missing owner", "POST", "/v1/agents", `{"name":"n"}`, nil, 400, "missing_field"},
		{"missing name", "POST", "/v1/agents", `{"ownerId":"u"}`, nil, 400, "missing_field"},
		{"unknown type", "POST", "/v1/agents", `{"ownerId":"u","name":"n","type":"robot"}`, nil, 422, "invalid_type"},
		{"empty middle segment", "POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"a::b","actions":["r"]}]}`, nil, 422, "invalid_permission"},
		{"empty last segment", "POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"a:","actions":["r"]}]}`, nil, 422, "invalid_permission"},
		{"empty first segment", "POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":":a","actions":["r"]}]}`, nil, 422, "invalid_permission"},
		{"partial wildcard", "POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"mcp:git*","actions":["r"]}]}`, nil, 422, "invalid_permission"},
		{"empty resource", "POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"","actions":["r"]}]}`, nil, 422, "invalid_permission"},
		{"no actions", "POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"a","actions":[]}]}`, nil, 422, "invalid_permission"},
		{"unknown constraint", "POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"a","actions":["r"],"constraints":{"maxCalls":3}}]}`, nil, 422, "invalid_permission"},
		{"bad regexp", "POST", "/v1/agents", `{"ownerId":"u","name":"n","permissions":[{"resource":"a","actions":["r"],"constraints":{"allowedArgPatterns":["(["]}}]}`, nil, 422, "invalid_permission"},
		{"past expiry", "POST", "/v1/agents", `{"ownerId":"u","name":"n","expiresAt":"2000-01-01T00:00:00Z"}`, nil, 422, "invalid_expiry"},
		{"bad expiry", "POST", "/v1/agents", `{"ownerId":"u","name":"n","expiresAt":"tomorrow"}`, nil, 400, "invalid_field"},
		{"oversized body", "POST", "/v1/agents", big, nil, 413, "body_too_large"},
		{"non-kv token", "POST", "/v1/authorize", `{"action":"read","resource":"x"}`, []string{"Authorization", "Bearer abc"}, 401, "malformed_credential"},
		{"kv token of wrong length", "POST", "/v1/authorize", `{"action":"read","resource":"x"}`, []string{"Authorization", "Bearer kv_abc"}, 401, "malformed_credential"},
		{"basic auth", "POST", "/v1/authorize", `{"action":"read","resource":"x"}`, []string{"Authorization", "Basic dTpw"}, 401, "malformed_credential"},
		{"token and agentId", "POST", "/v1/authorize", `{"agentId":"` + valid.ID + `","action":"read","resource":"x"}`, []string{"Authorization", "Bearer " + valid.Token}, 403, "forbidden"},
		{"agent token beside agent token", "POST", "/v1/authorize", `{"action":"read","resource":"x"}`, []string{"Authorization", "Bearer " + valid.Token, api.AgentTokenHeader, valid.Token}, 400, "ambiguous_identity"},
		{"forwarded token and agentId", "POST", "/v1/authorize", `{"agentId":"` + valid.ID + `","action":"read","resource":"x"}`, []string{api.AgentTokenHeader, valid.Token}, 400, "ambiguous_identity"},
		{"duplicate field", "POST", "/v1/agents", `{"ownerId":"u","name":"n","ownerId":"v"}`, nil, 400, "duplicate_field"},
		{"duplicate nested field", "POST", "/v1/authorize", `{"agentId":"` + valid.ID + `","action":"read","resource":"x","arguments":{"path":"/a","path":"/b"}}`, nil, 400, "duplicate_field"},
		{"field in another case", "POST", "/v1/agents", `{"ownerId":"u","name":"n","OwnerId":"v"}`, nil, 400, "unknown_field"},
		{"field only in another case", "POST", "/v1/authorize", `{"AgentId":"` + valid.ID + `","action":"read","resource":"x"}`, nil, 400, "unknown_field"},
		{"text/plain body", "POST", "/v1/agents", `{"ownerId":"u","name":"n"}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"form body", "POST", "/v1/authorize", `{"agentId":"` + valid.ID + `","action":"read","resource":"x"}`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"body without content type", "PATCH", "/v1/agents/" + valid.ID, `{"name":"m"}`, []string{"Content-Type", ""}, 415, "unsupported_media_type"},
		{"invalid UTF-8", "POST", "/v1/agents", "{\"ownerId\":\"u\",\"name\":\"\xff\"}", nil, 400, "invalid_json"},
		{"unknown agent token off its routes", "GET", "/v1/agents", ``, []string{"Authorization", "Bearer kv_" + strings.Repeat("A", 43)}, 401, "invalid_token"},
		{"unknown key", "GET", "/v1/agents", ``, []string{"Authorization", "Bearer kvk_" + strings.Repeat("A", 43)}, 401, "invalid_key"},
		{"unknown agent token on an unknown path", "GET", "/v2/things", ``, []string{"Authorization", "Bearer kv_" + strings.Repeat("A", 43)}, 401, "invalid_token"},
		{"no identity", "POST", "/v1/authorize", `{"action":"read","resource":"x"}`, nil, 400, "missing_field"},
		{"missing action", "POST", "/v1/authorize", `{"agentId":"` + valid.ID + `","resource":"x"}`, nil, 400, "missing_field"},
		{"missing resource", "POST", "/v1/authorize", `{"agentId":"` + valid.ID + `","action":"read"}`, nil, 400, "missing_field"},
		{"arguments not an object", "POST", "/v1/authorize", `{"agentId":"` + valid.ID + `","action":"read","resource":"x","arguments":[1]}`, nil, 400, "invalid_field"},
		{"bad ip", "POST", "/v1/authorize", `{"agentId":"` + valid.ID + `","action":"read","resource":"x","context":{"ip":"10.0.0.300"}}`, nil, 400, "invalid_field"},
		{"unknown agent id", "GET", "/v1/agents/agt_nope", ``, nil, 404, "agent_not_found"},
		{"rotate unknown", "POST", "/v1/agents/agt_nope/rotate", ``, nil, 404, "agent_not_found"},
		{"empty patch", "PATCH", "/v1/agents/" + valid.ID, `{}`, nil, 400, "missing_field"},
		{"bad status", "GET", "/v1/agents?status=sleeping", ``, nil, 400, "invalid_status"},
		{"bad audit limit", "GET", "/v1/audit?limit=0", ``, nil, 400, "invalid_parameter"},
		{"bad audit since", "GET", "/v1/audit?since=yesterday", ``, nil, 400, "invalid_parameter"},
		{"bad audit result", "GET", "/v1/audit?result=maybe", ``, nil, 400, "invalid_parameter"},
		{"bad export format", "GET", "/v1/audit/export?format=xml", ``, nil, 400, "invalid_parameter"},
		{"wrong method", "DELETE", "/v1/agents", ``, nil, 405, "method_not_allowed"},
		{"unknown path", "GET", "/v2/things", ``, nil, 404, "not_found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.do(t, tt.method, tt.path, tt.body, tt.header...)
			var eb api.ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("body %q is not a JSON error: %v", body, err)
			}
			if status != tt.status || eb.Error.Code != tt.code || eb.Error.Message == "" {
				t.Errorf("%s %s = %d %+v; want %d %s with a message", tt.method, tt.path, status, eb.Error, tt.status, tt.code)
			}
		})
	}
	if agents, audits := e.counts(t); agents != agents0 || audits != audits0 {
		t.Errorf("after bad input: %d agents, %d audit rows; want %d, %d (nothing written)", agents, audits, agents0, audits0)
	}
}

func TestChunkedOversizedBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	// No Content-Length: the limit must still hold while reading.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(`{"ownerId":"u","name":"`))
		_, _ = pw.Write(bytes.Repeat([]byte("x"), 70<<10))
		_ = pw.CloseWithError(io.EOF)
	}()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", e.url+"/v1/agents", pr)
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	if resp.StatusCode != 413 || eb.Error.Code != "body_too_large" {
		t.Errorf("chunked oversized body = %d %+v; want 413 body_too_large", resp.StatusCode, eb)
	}
}

func TestAuditExport(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	ctx := t.Context()
	a := e.create(t, api.CreateAgentRequest{OwnerID: "user, \"quoted\"", Name: "n", Permissions: []api.Permission{perm("*", "read")}})
	args := json.RawMessage(`{"path":"a,b\n\"c\""}`)
	const n = 1200 // more than one flush
	for i := range n {
		req := api.AuthorizeRequest{AgentID: a.ID, Action: "read", Resource: fmt.Sprintf("r:%d", i)}
		if i%2 == 1 {
			req.Action, req.Arguments = "write", args
			req.Context = &api.RequestContext{IP: "2001:db8::1", UserAgent: "agent/1.0 (x, y)"}
		}
		if _, err := e.cl.Authorize(ctx, req, ""); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := e.cl.ExportAudit(ctx, client.AuditFilter{Kind: "decision"}, "csv", &buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("export is not RFC 4180 CSV: %v", err)
	}
	if len(rows) != n+1 || strings.Join(rows[0], ",") != strings.Join(sidecar.CSVHeader, ",") {
		t.Fatalf("CSV has %d rows, header %v; want %d and %v", len(rows), rows[0], n+1, sidecar.CSVHeader)
	}
	second := rows[2]
	if second[3] != a.OwnerID || second[6] != string(args) || second[7] != "denied" || second[10] != "2001:db8::1" || second[11] != "agent/1.0 (x, y)" {
		t.Errorf("CSV row = %q; want owner, arguments, result, ip and user agent intact", second)
	}
	buf.Reset()
	if err := e.cl.ExportAudit(ctx, client.AuditFilter{Result: "denied"}, "json", &buf); err != nil {
		t.Fatal(err)
	}
	var entries []api.AuditEntry
	if err := json.Unmarshal(buf.Bytes(), &entries); err != nil || len(entries) != n/2 {
		t.Fatalf("JSON export = %d entries, %v; want %d", len(entries), err, n/2)
	}
	for i := 1; i < len(entries); i++ {
		if entries[i-1].ID >= entries[i].ID {
			t.Fatal("JSON export is not in creation order")
		}
	}
}

// Not parallel: 200 concurrent clients are a load test of their own, and
// on a small machine under -race they should not share it with other tests.
func TestConcurrentDecisionsEachGetOneRow(t *testing.T) {
	e := newEnv(t, service.Options{})
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{perm("*", "read")}})
	var wg sync.WaitGroup
	ids := make(chan string, 200)
	for i := range 200 {
		wg.Go(func() {
			res, err := e.cl.Authorize(context.Background(), api.AuthorizeRequest{AgentID: a.ID, Action: "read", Resource: fmt.Sprint("r:", i)}, "")
			if err != nil {
				t.Error(err)
				return
			}
			ids <- res.AuditID
		})
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if _, audits := e.counts(t); audits != 200 || len(seen) != 200 {
		t.Errorf("audit rows = %d, distinct auditIds = %d; want 200 each", audits, len(seen))
	}
}

func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	for _, path := range []string{"/health", "/ready"} {
		status, body := e.do(t, "GET", path, "")
		if status != 200 {
			t.Errorf("GET %s = %d %s; want 200", path, status, body)
		}
	}
}

func asClientError(err error) *client.Error {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}
