package sidecar_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/oauth"
	"github.com/kavach-dev/kavach/secret"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
)

const (
	mcpResource  = "https://mcp.example.test/mcp"
	mcpResource2 = "https://other.example.test/mcp"
	pkceVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-0123456789"
	redirectURI  = "http://127.0.0.1:9999/cb"
)

// syncBuffer is a log sink tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// oauthEnv is the real stack with the MCP authorization server on, its
// log captured at debug level.
type oauthEnv struct {
	*env
	log      *syncBuffer
	clientID string
	// publicURL serves PublicHandler, as the public listener does.
	publicURL string
}

func newOAuthEnv(t *testing.T, opts service.Options, mutate func(*oauth.Config)) *oauthEnv {
	t.Helper()
	ctx := t.Context()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Logger = log
	svc, st, c := newService(t, opts)
	sec, err := secret.New("the sidecar tests' secret, 32+ characters")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	cfg := oauth.Config{
		Issuer: "http://" + ts.Listener.Addr().String(), LoginPage: "/login", AllowedResources: []string{mcpResource}, Secret: sec,
		Scopes: map[string][]api.Permission{"tools:read": {{Resource: "mcp:github:*", Actions: []string{"read"}}}},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	as, err := oauth.New(ctx, cfg, st, svc, oauth.Options{Now: c.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	svc.UseAccessTokens(as, cfg.Scopes)
	srv := newServer(t, svc, sidecar.Options{MaxBodyBytes: 64 << 10, Logger: log, OAuth: as})
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(ts.Close)
	pub := httptest.NewServer(srv.PublicHandler())
	t.Cleanup(pub.Close)
	e := &oauthEnv{env: &env{srv: srv, svc: svc, url: ts.URL, st: st, cl: client.New(ts.URL).WithAPIKey(testAdminKey), clock: c},
		log: logs, publicURL: pub.URL}
	status, body := e.do(t, "POST", "/oauth/register", `{"client_name":"test client","redirect_uris":["`+redirectURI+`"],`+
		`"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`)
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if status != http.StatusCreated || json.Unmarshal(body, &reg) != nil {
		t.Fatalf("register = %d %s; want 201", status, body)
	}
	e.clientID = reg.ClientID
	return e
}

// handle starts an authorization for resource and returns the request
// handle the login page gets.
func (e *oauthEnv) handle(t *testing.T, resource string) string {
	t.Helper()
	return e.handleFor(t, resource, "tools:read")
}

func (e *oauthEnv) handleFor(t *testing.T, resource, scope string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(pkceVerifier))
	q := url.Values{"response_type": {"code"}, "client_id": {e.clientID}, "redirect_uri": {redirectURI}, "scope": {scope},
		"state": {"s"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {resource}}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", e.url+"/oauth/authorize?"+q.Encode(), nil)
	resp, err := (&http.Transport{}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("request") == "" {
		t.Fatalf("authorize = %d to %q; want 302 to the login page", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("request")
}

// accessToken runs the flow for user and resource and returns the token.
func (e *oauthEnv) accessToken(t *testing.T, user, resource string) string {
	t.Helper()
	return e.accessTokenFor(t, user, resource, "tools:read")
}

func (e *oauthEnv) accessTokenFor(t *testing.T, user, resource, scope string) string {
	t.Helper()
	status, body := e.do(t, "POST", "/v1/oauth/requests/"+e.handleFor(t, resource, scope)+"/approve", `{"userId":"`+user+`"}`)
	var approved struct{ RedirectURL string }
	if status != http.StatusOK || json.Unmarshal(body, &approved) != nil {
		t.Fatalf("approve = %d %s; want 200", status, body)
	}
	back, _ := url.Parse(approved.RedirectURL)
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {e.clientID}, "code": {back.Query().Get("code")},
		"redirect_uri": {redirectURI}, "code_verifier": {pkceVerifier}}
	status, body = e.do(t, "POST", "/oauth/token", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("token = %d %s; want 200 with an access token", status, body)
	}
	return tok.AccessToken
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var b struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(body, &b)
	return b.Error.Code
}

// An approval that would take the user over agents.maxPerUser is a 409
// agent_limit_reached the app can show, and the request stays pending:
// once the user frees a slot, the same approval succeeds.
func TestApproveOverTheAgentQuota(t *testing.T) {
	t.Parallel()
	e := newOAuthEnv(t, service.Options{MaxPerUser: 1}, nil)
	status, body := e.do(t, "POST", "/v1/agents", `{"ownerId":"user-1","name":"existing"}`)
	var existing struct{ ID string }
	if status != http.StatusCreated || json.Unmarshal(body, &existing) != nil {
		t.Fatalf("create = %d %s", status, body)
	}
	h := e.handle(t, mcpResource)
	status, body = e.do(t, "POST", "/v1/oauth/requests/"+h+"/approve", `{"userId":"user-1"}`)
	if status != http.StatusConflict || errorCode(t, body) != "agent_limit_reached" {
		t.Fatalf("approve over the quota = %d %s; want 409 agent_limit_reached", status, body)
	}
	if status, body := e.do(t, "POST", "/v1/agents/"+existing.ID+"/revoke", ""); status != http.StatusOK {
		t.Fatalf("revoke = %d %s", status, body)
	}
	if status, body := e.do(t, "POST", "/v1/oauth/requests/"+h+"/approve", `{"userId":"user-1"}`); status != http.StatusOK {
		t.Errorf("approve after a slot was freed = %d %s; want 200", status, body)
	}
}

// A JWT bearer that is malformed, forged (or unsigned) or expired is a 401 invalid_token: no decision, no audit
// row, never a 500.
func TestBadAccessTokensAreUnauthorized(t *testing.T) {
	t.Parallel()
	e := newOAuthEnv(t, service.Options{}, func(c *oauth.Config) { c.AccessTokenTTL = time.Minute })
	good := e.accessToken(t, "user-1", mcpResource)
	authorize := func(token string) (int, []byte) {
		return e.do(t, "POST", "/v1/authorize", `{"action":"read","resource":"mcp:github:repos"}`, "Authorization", "Bearer "+token)
	}
	if status, body := authorize(good); status != http.StatusOK || !strings.Contains(string(body), `"allowed":true`) {
		t.Fatalf("authorize with a fresh token = %d %s; want allowed", status, body)
	}
	parts := strings.Split(good, ".")
	for name, token := range map[string]string{
		"garbage":          "a.b.c",
		"forged signature": parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("nope")),
		"alg none":         base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + ".",
	} {
		if status, body := authorize(token); status != http.StatusUnauthorized || errorCode(t, body) != "invalid_token" {
			t.Errorf("authorize with a %s token = %d %s; want 401 invalid_token", name, status, body)
		}
	}
	e.clock.Add(2 * time.Minute)
	if status, body := authorize(good); status != http.StatusUnauthorized || errorCode(t, body) != "invalid_token" {
		t.Errorf("authorize with an expired token = %d %s; want 401 invalid_token", status, body)
	}
	if _, audits := e.counts(t); audits != 1 {
		t.Errorf("audit rows = %d; want 1 (refused tokens reach no decision)", audits)
	}
}

// With more than one MCP server behind the sidecar, /v1/oauth/verify must
// be told which one is asking: a token for one is no token for another
// (RFC 8707 audience), so a missing resource is the app's error, not a
// pass for any audience.
func TestVerifyNeedsTheResourceWhenAmbiguous(t *testing.T) {
	t.Parallel()
	e := newOAuthEnv(t, service.Options{}, func(c *oauth.Config) { c.AllowedResources = []string{mcpResource, mcpResource2} })
	token := e.accessToken(t, "user-1", mcpResource)
	for _, tc := range []struct {
		resource string
		status   int
		code     string
	}{
		{mcpResource, http.StatusOK, ""},
		{mcpResource2, http.StatusUnauthorized, ""},
		{"", http.StatusBadRequest, "missing_field"},
	} {
		status, body := e.do(t, "POST", "/v1/oauth/verify", `{"token":"`+token+`","resource":"`+tc.resource+`"}`)
		if status != tc.status || tc.code != "" && errorCode(t, body) != tc.code {
			t.Errorf("verify for %q = %d %s; want %d %s", tc.resource, status, body, tc.status, tc.code)
		}
	}
}

// Request handles are secrets (stored only hashed): the request log, at
// debug level, names the consent API's routes without them.
func TestRequestHandlesAreNotLogged(t *testing.T) {
	t.Parallel()
	e := newOAuthEnv(t, service.Options{}, nil)
	h := e.handle(t, mcpResource)
	if status, body := e.do(t, "GET", "/v1/oauth/requests/"+h, ""); status != http.StatusOK {
		t.Fatalf("GET request = %d %s", status, body)
	}
	if status, body := e.do(t, "POST", "/v1/oauth/requests/"+h+"/deny", ""); status != http.StatusOK {
		t.Fatalf("deny = %d %s", status, body)
	}
	logs := e.log.String()
	if strings.Contains(logs, h) || strings.Contains(logs, url.QueryEscape(h)) {
		t.Errorf("the log holds the request handle:\n%s", logs)
	}
	if !strings.Contains(logs, `"path":"/v1/oauth/requests/{handle}/deny"`) {
		t.Errorf("the log does not name the deny route:\n%s", logs)
	}
}

// The public listener serves the OAuth endpoints and nothing else, with
// the API's error shapes: 404 for the admin API, 405 with Allow for a
// wrong method.
func TestPublicListenerServesOnlyOAuth(t *testing.T) {
	t.Parallel()
	e := newOAuthEnv(t, service.Options{}, nil)
	for _, tt := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/.well-known/oauth-authorization-server", http.StatusOK, ""},
		{"GET", "/v1/agents", http.StatusNotFound, ""},
		{"POST", "/v1/oauth/requests/x/approve", http.StatusNotFound, ""},
		{"GET", "/oauth/token", http.StatusMethodNotAllowed, "POST"},
	} {
		req, _ := http.NewRequest(tt.method, e.publicURL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Allow") != tt.allow {
			t.Errorf("%s %s on the public listener = %d (Allow %q); want %d (Allow %q)", tt.method, tt.path,
				resp.StatusCode, resp.Header.Get("Allow"), tt.status, tt.allow)
		}
	}
}

// One agent per (client, user) holds every scope the user granted the
// client; each token still acts only within its own scopes, so a second
// consent neither takes from the first token nor gives it more.
func TestGrantAgentAccumulatesAndTokensStayScoped(t *testing.T) {
	t.Parallel()
	e := newOAuthEnv(t, service.Options{}, func(c *oauth.Config) {
		c.Scopes = map[string][]api.Permission{
			"tools:read":  {{Resource: "mcp:github:*", Actions: []string{"read"}}},
			"tools:write": {{Resource: "mcp:github:*", Actions: []string{"write"}}},
		}
	})
	reader := e.accessTokenFor(t, "user-1", mcpResource, "tools:read")
	writer := e.accessTokenFor(t, "user-1", mcpResource, "tools:write")
	status, body := e.do(t, "GET", "/v1/agents?ownerId=user-1", "")
	var list struct {
		Agents []struct {
			Permissions []api.Permission `json:"permissions"`
		} `json:"agents"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list.Agents) != 1 || len(list.Agents[0].Permissions) != 2 {
		t.Fatalf("agents of user-1 = %d %s; want one agent holding both scopes' permissions", status, body)
	}
	for _, tc := range []struct {
		token, action string
		allowed       bool
	}{
		{reader, "read", true}, {reader, "write", false}, {writer, "write", true}, {writer, "read", false},
	} {
		status, body := e.do(t, "POST", "/v1/authorize", `{"action":"`+tc.action+`","resource":"mcp:github:repos"}`,
			"Authorization", "Bearer "+tc.token)
		if status != http.StatusOK || strings.Contains(string(body), `"allowed":true`) != tc.allowed {
			t.Errorf("%s with the %s token = %d %s; want allowed=%v", tc.action, map[bool]string{true: "reader", false: "writer"}[tc.token == reader], status, body, tc.allowed)
		}
	}
}

// An access token still within its lifetime is no credential once its
// grant agent is revoked: not for decisions, nor for reading the agent.
func TestAccessTokenOfARevokedGrantAgent(t *testing.T) {
	t.Parallel()
	e := newOAuthEnv(t, service.Options{}, nil)
	token := e.accessToken(t, "user-9", mcpResource)
	agents, err := e.cl.ListAgents(t.Context(), client.AgentFilter{OwnerID: "user-9", Status: "active"})
	if err != nil || len(agents.Agents) != 1 {
		t.Fatalf("grant agents of user-9 = %d, %v; want 1", len(agents.Agents), err)
	}
	id := agents.Agents[0].ID
	if status, body := e.do(t, "GET", "/v1/agents/"+id+"/effective-permissions", "", "Authorization", "Bearer "+token); status != 200 {
		t.Fatalf("effective permissions with the access token = %d %s; want 200", status, body)
	}
	if _, err := e.cl.RevokeAgent(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if status, body := e.do(t, "GET", "/v1/agents/"+id+"/effective-permissions", "", "Authorization", "Bearer "+token); status != 401 || errorCode(t, body) != "agent_revoked" {
		t.Errorf("after revoking the agent = %d %s; want 401 agent_revoked", status, body)
	}
}
