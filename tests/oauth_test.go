package tests

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/internal/pgtest"
)

const mcpResource = "https://mcp.example.test/mcp"

// TestMCPOAuthFullFlow runs an MCP client (golang.org/x/oauth2) against
// the real binary: discovery, registration, PKCE, consent through the
// admin API, code, token, MCP tool calls decided and audited as the
// grant's agent, refresh rotation, introspection, revocation (refused at
// once) and refresh-token reuse (the whole grant revoked). The OAuth
// endpoints are on the public listener, over TLS.
func TestMCPOAuthFullFlow(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) { t.Parallel(); testMCPOAuthFullFlow(t, filepath.Join(t.TempDir(), "k.db")) })
	t.Run("postgres", func(t *testing.T) { t.Parallel(); testMCPOAuthFullFlow(t, pgtest.URL(t)) })
}

func testMCPOAuthFullFlow(t *testing.T, database string) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	port := freePort(t)
	issuer := fmt.Sprintf("https://127.0.0.1:%d", port)
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf(`
secret: `+mcpSecret+`
mcp:
  enabled: true
  issuer: %s
  accessTokenTtl: 600
  scopes:
    tools:read:
      - resource: "mcp:github:*"
        actions: [read]
    tools:deploy:
      - resource: "mcp:deploy:staging"
        actions: [execute]
        constraints: {maxCallsPerHour: 1}
  allowedResources: [%s]
  loginPage: https://app.example.test/login
`, issuer, mcpResource))
	s := start(t, "--database", database, "--config", cfg,
		"--public-addr", fmt.Sprintf("127.0.0.1:%d", port), "--tls-cert", certFile, "--tls-key", keyFile)
	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	// The app that logs humans in holds an approver key; the MCP server a
	// decider key, for its bearer checks.
	loginKey := s.mintKey(t, "login-app", "approver")
	app, mcp, admin := keyed(loginKey.Key), keyed(s.mintKey(t, "mcp-server", "decider").Key), keyed(adminKey)
	noRedirect := &http.Client{Transport: httpc.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, httpc)

	// Discovery, as an MCP client does it: protected resource metadata
	// (path-inserted), then the authorization server's metadata.
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	getJSON(t, httpc, issuer+"/.well-known/oauth-protected-resource/mcp", &prm)
	if prm.Resource != mcpResource || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != issuer {
		t.Fatalf("protected resource metadata = %+v", prm)
	}
	var md map[string]any
	getJSON(t, httpc, issuer+"/.well-known/oauth-authorization-server", &md)
	if md["issuer"] != issuer || md["authorization_response_iss_parameter_supported"] != true {
		t.Fatalf("metadata = %v", md)
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint",
		"introspection_endpoint", "jwks_uri"} {
		if u, _ := md[k].(string); !strings.HasPrefix(u, issuer+"/") {
			t.Errorf("metadata %s = %v; want a URL under %s", k, md[k], issuer)
		}
	}
	// The admin API is not on the public listener.
	if resp, err := httpc.Get(issuer + "/v1/agents"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/agents on the public listener = %v, %v; want 404", resp, err)
	}

	// Dynamic registration of a public client on a loopback redirect URI.
	var reg struct {
		ClientID string `json:"client_id"`
	}
	postJSON(t, httpc, md["registration_endpoint"].(string), map[string]any{
		"client_name": "e2e MCP client", "redirect_uris": []string{"http://127.0.0.1:9999/callback"},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"},
	}, http.StatusCreated, &reg)

	conf := &oauth2.Config{
		ClientID: reg.ClientID,
		Endpoint: oauth2.Endpoint{AuthURL: md["authorization_endpoint"].(string), TokenURL: md["token_endpoint"].(string),
			AuthStyle: oauth2.AuthStyleInParams},
		// Loopback redirect URIs match on any port (RFC 8252).
		RedirectURL: "http://127.0.0.1:54321/callback",
		Scopes:      []string{"tools:read", "tools:deploy", "offline_access"},
	}
	verifier := oauth2.GenerateVerifier()
	resp, err := noRedirect.Get(conf.AuthCodeURL("st-123", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("resource", mcpResource)))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize = %v, %v; want 302 to the login page", resp, err)
	}
	login, _ := url.Parse(resp.Header.Get("Location"))
	handle := login.Query().Get("request")
	if login.Host != "app.example.test" || handle == "" {
		t.Fatalf("authorize redirected to %s; want the login page with a request handle", login)
	}

	// The app, having logged the human in, reads and approves the request.
	var pending struct {
		ClientName string   `json:"clientName"`
		Scopes     []string `json:"scopes"`
		Resource   string   `json:"resource"`
	}
	getJSON(t, app, s.URL+"/v1/oauth/requests/"+handle, &pending)
	if pending.ClientName != "e2e MCP client" || pending.Resource != mcpResource || len(pending.Scopes) != 3 {
		t.Fatalf("pending request = %+v", pending)
	}
	var approved struct {
		RedirectURL string `json:"redirectUrl"`
	}
	postJSON(t, app, s.URL+"/v1/oauth/requests/"+handle+"/approve",
		map[string]any{"userId": "user-123", "scopes": []string{"tools:read", "tools:deploy", "offline_access"}}, http.StatusOK, &approved)
	back, _ := url.Parse(approved.RedirectURL)
	if q := back.Query(); back.Port() != "54321" || q.Get("state") != "st-123" || q.Get("iss") != issuer || q.Get("code") == "" {
		t.Fatalf("approve redirects to %s; want the client's redirect URI with code, state and iss", approved.RedirectURL)
	}
	postJSON(t, app, s.URL+"/v1/oauth/requests/"+handle+"/approve",
		map[string]any{"userId": "user-123"}, http.StatusConflict, nil)

	tok1, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier),
		oauth2.SetAuthURLParam("resource", mcpResource))
	if err != nil || tok1.RefreshToken == "" {
		t.Fatalf("Exchange = %+v, %v; want an access and a refresh token", tok1, err)
	}
	header := jwtHeader(t, tok1.AccessToken)
	if header["typ"] != "at+jwt" || header["alg"] != "ES256" || header["kid"] == "" {
		t.Errorf("access token header = %v; want typ at+jwt, alg ES256 and a kid", header)
	}

	// MCP tool calls: decided and audited as the grant's agent.
	agentID := authorizeAs(t, s, tok1.AccessToken, "read", "mcp:github:repos", http.StatusOK, true)
	authorizeAs(t, s, tok1.AccessToken, "write", "mcp:github:repos", http.StatusOK, false)
	authorizeAs(t, s, tok1.AccessToken, "execute", "mcp:deploy:staging", http.StatusOK, true)
	authorizeAs(t, s, tok1.AccessToken, "execute", "mcp:deploy:staging", http.StatusOK, false) // maxCallsPerHour 1
	var agent struct {
		OwnerID  string         `json:"ownerId"`
		Type     string         `json:"type"`
		Metadata map[string]any `json:"metadata"`
	}
	getJSON(t, admin, s.URL+"/v1/agents/"+agentID, &agent)
	if agent.OwnerID != "user-123" || agent.Type != "delegated" || agent.Metadata["oauthClientId"] != reg.ClientID {
		t.Errorf("grant agent = %+v; want a delegated agent of user-123 for the client", agent)
	}
	var audit struct {
		Entries []struct {
			Code     string    `json:"code"`
			AgentID  string    `json:"agentId"`
			Resource string    `json:"resource"`
			Actor    api.Actor `json:"actor"`
		} `json:"entries"`
	}
	getJSON(t, admin, s.URL+"/v1/audit?kind=decision&agentId="+agentID, &audit)
	if len(audit.Entries) != 4 {
		t.Errorf("decisions of the grant agent = %d; want 4", len(audit.Entries))
	}
	// The consent is audited as the login app's key, for the user.
	getJSON(t, admin, s.URL+"/v1/audit?kind=event&action=oauth.consent.approve", &audit)
	if len(audit.Entries) != 1 || audit.Entries[0].AgentID != agentID || audit.Entries[0].Resource != reg.ClientID ||
		audit.Entries[0].Actor != (api.Actor{Type: "key", ID: loginKey.ID, Name: "login-app", OnBehalfOf: "user-123"}) {
		t.Errorf("oauth.consent.approve events = %+v; want one for %s by %s on behalf of user-123", audit.Entries, agentID, loginKey.ID)
	}

	// The sidecar's bearer check for the MCP server.
	var v struct {
		Active  bool   `json:"active"`
		AgentID string `json:"agentId"`
	}
	postJSON(t, mcp, s.URL+"/v1/oauth/verify",
		map[string]any{"token": tok1.AccessToken, "resource": mcpResource, "scopes": []string{"tools:read"}}, http.StatusOK, &v)
	if !v.Active || v.AgentID != agentID {
		t.Errorf("verify = %+v; want active for %s", v, agentID)
	}
	r := postRaw(t, mcp, s.URL+"/v1/oauth/verify",
		map[string]any{"token": tok1.AccessToken, "resource": mcpResource, "scopes": []string{"admin"}})
	if r.StatusCode != http.StatusForbidden || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("verify without the scope = %d %q; want 403 insufficient_scope", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}

	// Refresh: the refresh token rotates.
	tok2, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok1.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if err != nil || tok2.RefreshToken == "" || tok2.RefreshToken == tok1.RefreshToken || tok2.AccessToken == tok1.AccessToken {
		t.Fatalf("refresh = %+v, %v; want new access and refresh tokens", tok2, err)
	}
	if !introspect(t, httpc, md, reg.ClientID, tok2.AccessToken) {
		t.Errorf("introspection of a fresh access token: inactive")
	}

	// A token is limited to its own scopes, whatever its grant's agent
	// holds: narrowed at refresh to tools:read, it cannot deploy.
	var narrow struct {
		AccessToken string `json:"access_token"`
		Scope       string `json:"scope"`
	}
	body := form(t, httpc, md["token_endpoint"].(string), url.Values{"grant_type": {"refresh_token"}, "client_id": {reg.ClientID},
		"refresh_token": {tok2.RefreshToken}, "scope": {"tools:read"}}, http.StatusOK)
	if err := json.Unmarshal(body, &narrow); err != nil || narrow.Scope != "tools:read" {
		t.Fatalf("narrowed refresh = %s, %v; want scope tools:read", body, err)
	}
	authorizeAs(t, s, narrow.AccessToken, "read", "mcp:github:repos", http.StatusOK, true)
	if code := decisionCode(t, s, narrow.AccessToken, "execute", "mcp:deploy:staging"); code != "no_permission" {
		t.Errorf("deploy with a tools:read token = %s; want no_permission (the agent holds it, the token's scopes do not)", code)
	}
	if code := decisionCode(t, s, tok1.AccessToken, "execute", "mcp:deploy:staging"); code != "rate_limited" {
		t.Errorf("deploy with the tools:deploy token = %s; want rate_limited (maxCallsPerHour 1 used)", code)
	}

	// Revocation holds at once for the sidecar's decisions.
	form(t, httpc, md["revocation_endpoint"].(string), url.Values{"client_id": {reg.ClientID}, "token": {tok2.AccessToken}}, http.StatusOK)
	authorizeAs(t, s, tok2.AccessToken, "read", "mcp:github:repos", http.StatusUnauthorized, false)
	if introspect(t, httpc, md, reg.ClientID, tok2.AccessToken) {
		t.Errorf("introspection of a revoked access token: active")
	}
	authorizeAs(t, s, tok1.AccessToken, "read", "mcp:github:repos", http.StatusOK, true)

	// Reusing the rotated-out refresh token revokes the whole grant.
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok1.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token(); err == nil ||
		!strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("reuse of an old refresh token = %v; want invalid_grant", err)
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token(); err == nil {
		t.Errorf("refresh after reuse was detected succeeded; want the grant revoked")
	}
	authorizeAs(t, s, tok1.AccessToken, "read", "mcp:github:repos", http.StatusUnauthorized, false)
}

// TestMCPIssuerMustBeHTTPSUnlessLoopback: an http issuer on a public host
// stops the sidecar at start.
func TestMCPIssuerMustBeHTTPSUnlessLoopback(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, "secret: "+mcpSecret+"\nmcp:\n  enabled: true\n  issuer: http://auth.example.com\n  loginPage: /login\n  allowedResources: [https://mcp.example.com/mcp]\n")
	_, err := startErr(t, "--database", filepath.Join(dir, "k.db"), "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), "http is allowed only on a loopback host") {
		t.Errorf("start with an http issuer = %v; want a refusal naming the rule", err)
	}
}

// authorizeAs calls POST /v1/authorize with an access token as the
// bearer and returns the decision's agent.
func authorizeAs(t *testing.T, s *sidecar, token, action, resource string, status int, allowed bool) string {
	t.Helper()
	got, d, body := bearerAuthorize(t, s, token, action, resource)
	if got != status || d.Allowed != allowed {
		t.Fatalf("authorize %s %s = %d %s; want %d allowed=%v", action, resource, got, body, status, allowed)
	}
	if status != http.StatusOK {
		return ""
	}
	var rows struct {
		Entries []struct {
			AgentID string `json:"agentId"`
		} `json:"entries"`
	}
	getJSON(t, keyed(adminKey), s.URL+"/v1/audit?kind=decision&limit=1", &rows)
	if len(rows.Entries) != 1 || rows.Entries[0].AgentID == "" {
		t.Fatalf("audit after authorize = %+v; want a row with the agent", rows)
	}
	return rows.Entries[0].AgentID
}

// decisionCode is the code of POST /v1/authorize with token as the bearer.
func decisionCode(t *testing.T, s *sidecar, token, action, resource string) string {
	t.Helper()
	_, d, _ := bearerAuthorize(t, s, token, action, resource)
	return d.Code
}

type bearerDecision struct {
	Allowed bool   `json:"allowed"`
	Code    string `json:"code"`
}

// bearerAuthorize sends POST /v1/authorize with token as the bearer.
func bearerAuthorize(t *testing.T, s *sidecar, token, action, resource string) (int, bearerDecision, []byte) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"action": action, "resource": resource})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/authorize", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var d bearerDecision
	_ = json.Unmarshal(body, &d)
	return resp.StatusCode, d, body
}

func introspect(t *testing.T, c *http.Client, md map[string]any, clientID, token string) bool {
	t.Helper()
	var out struct {
		Active bool `json:"active"`
	}
	body := form(t, c, md["introspection_endpoint"].(string), url.Values{"client_id": {clientID}, "token": {token}}, http.StatusOK)
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("introspection body %s: %v", body, err)
	}
	return out.Active
}

func form(t *testing.T, c *http.Client, u string, v url.Values, status int) []byte {
	t.Helper()
	resp, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("POST %s = %d %s; want %d", u, resp.StatusCode, b, status)
	}
	return b
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", u, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", u, err, b)
	}
}

func postRaw(t *testing.T, c *http.Client, u string, body any) *http.Response {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := c.Post(u, "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func postJSON(t *testing.T, c *http.Client, u string, body any, status int, v any) {
	t.Helper()
	resp := postRaw(t, c, u, body)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("POST %s = %d %s; want %d", u, resp.StatusCode, b, status)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("POST %s: %v in %s", u, err, b)
		}
	}
}

func jwtHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	var h map[string]any
	if err != nil || json.Unmarshal(b, &h) != nil {
		t.Fatalf("access token %q is not a JWT", token)
	}
	return h
}

// freePort returns a loopback port free a moment ago: the issuer must
// name the port before the sidecar starts.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// selfSignedCert writes a certificate for 127.0.0.1 and returns its files
// and a pool trusting it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kavach e2e"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestMCPConfigKeys exercises the mcp keys the full flow does not: an
// issuer and baseUrl with a path (path-inserted metadata), signingSecret
// (HS256), refreshTokenTtl, codeTtl, enforceAuth, consentPage alone, and a
// pre-registered confidential client.
func TestMCPConfigKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d/auth", port)
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf(`
secret: `+mcpSecret+`
mcp:
  enabled: true
  issuer: %[1]s
  baseUrl: %[1]s
  signingSecret: 0123456789abcdef0123456789abcdef
  accessTokenTtl: 120
  refreshTokenTtl: 300
  codeTtl: 1
  enforceAuth: true
  scopes:
    tools:read:
      - resource: "mcp:github:*"
        actions: [read]
  allowedResources: [%[2]s]
  consentPage: https://app.example.test/consent
  preRegisteredClients:
    - clientId: first-party
      clientSecret: first-party-secret
      name: First party
      redirectUris: [https://app.example.test/cb]
`, issuer, mcpResource))
	s := start(t, "--database", filepath.Join(dir, "k.db"), "--config", cfg, "--addr", fmt.Sprintf("127.0.0.1:%d", port))
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	app, mcp := keyed(s.mintKey(t, "consent-app", "approver").Key), keyed(s.mintKey(t, "mcp-server", "decider").Key)

	var md map[string]any
	getJSON(t, http.DefaultClient, s.URL+"/.well-known/oauth-authorization-server/auth", &md)
	if md["issuer"] != issuer || md["token_endpoint"] != issuer+"/oauth/token" {
		t.Fatalf("path-inserted metadata = %v; want issuer %s and endpoints under it", md, issuer)
	}
	conf := &oauth2.Config{
		ClientID: "first-party", ClientSecret: "first-party-secret", RedirectURL: "https://app.example.test/cb",
		Endpoint: oauth2.Endpoint{AuthURL: md["authorization_endpoint"].(string), TokenURL: md["token_endpoint"].(string),
			AuthStyle: oauth2.AuthStyleInHeader},
		Scopes: []string{"tools:read", "offline_access"},
	}
	code := func() (string, string) {
		verifier := oauth2.GenerateVerifier()
		resp, err := noRedirect.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", mcpResource)))
		if err != nil || resp.StatusCode != http.StatusFound {
			t.Fatalf("authorize = %v, %v; want 302", resp, err)
		}
		page, _ := url.Parse(resp.Header.Get("Location"))
		if page.Path != "/consent" {
			t.Fatalf("authorize sent the browser to %s; want the consent page (no login page is set)", page)
		}
		var approved struct {
			RedirectURL string `json:"redirectUrl"`
		}
		postJSON(t, app, s.URL+"/v1/oauth/requests/"+page.Query().Get("request")+"/approve",
			map[string]any{"userId": "user-9"}, http.StatusOK, &approved)
		back, _ := url.Parse(approved.RedirectURL)
		return back.Query().Get("code"), verifier
	}

	c, verifier := code()
	before := time.Now()
	tok, err := conf.Exchange(t.Context(), c, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange with client_secret_basic: %v", err)
	}
	if h := jwtHeader(t, tok.AccessToken); h["alg"] != "HS256" {
		t.Errorf("access token alg = %v; want HS256 (signingSecret)", h["alg"])
	}
	if life := tok.Expiry.Sub(before); life < 100*time.Second || life > 130*time.Second {
		t.Errorf("access token lives %v; want about accessTokenTtl 120s", life)
	}
	var in struct {
		Active bool  `json:"active"`
		Exp    int64 `json:"exp"`
	}
	req, _ := http.NewRequest(http.MethodPost, md["introspection_endpoint"].(string),
		strings.NewReader(url.Values{"token": {tok.RefreshToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("first-party", "first-party-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&in)
	_ = resp.Body.Close()
	if life := time.Unix(in.Exp, 0).Sub(before); !in.Active || life < 280*time.Second || life > 310*time.Second {
		t.Errorf("refresh token introspection = %+v (lives %v); want active for about refreshTokenTtl 300s", in, life)
	}
	authorizeAs(t, s, tok.AccessToken, "read", "mcp:github:repos", http.StatusOK, true)

	// enforceAuth: no token is a 401 challenge naming the resource metadata.
	r := postRaw(t, mcp, s.URL+"/v1/oauth/verify", map[string]any{"resource": mcpResource})
	if got := r.Header.Get("WWW-Authenticate"); r.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(got, `resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource/mcp"`) {
		t.Errorf("verify without a token = %d %q; want 401 with resource_metadata", r.StatusCode, got)
	}

	// The client's secret is checked.
	bad := *conf
	bad.ClientSecret = "wrong"
	c, verifier = code()
	if _, err := bad.Exchange(t.Context(), c, oauth2.VerifierOption(verifier)); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("Exchange with a wrong secret = %v; want invalid_client", err)
	}

	// codeTtl 1s: a code older than that is refused. Its age is the
	// server's to judge, by its wall clock, so the test asks the server:
	// it presents the code, with its verifier, for a resource it was not
	// granted. The token endpoint checks the resource after the expiry and
	// before redeeming, so that answers invalid_target while the code is
	// live and invalid_grant once it has expired, and never redeems it.
	// Times are wall-clock readings (Round(0)), as the server's; the code
	// was issued between issuedAfter and issuedBy, so it must be live until
	// issuedAfter+ttl (less the store's millisecond truncation) and expired
	// for any request sent from issuedBy+ttl.
	const ttl = time.Second
	issuedAfter := time.Now().Round(0)
	c, verifier = code()
	issuedBy := time.Now().Round(0)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		sent := time.Now().Round(0)
		_, err := conf.Exchange(t.Context(), c, oauth2.VerifierOption(verifier),
			oauth2.SetAuthURLParam("resource", "https://elsewhere.example.test/mcp"))
		answered := time.Now().Round(0)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			t.Fatalf("Exchange for a resource the code was not granted = %v; want an OAuth error", err)
		}
		if re.ErrorCode == "invalid_grant" && strings.Contains(re.ErrorDescription, "expired") {
			if answered.Before(issuedAfter.Add(ttl - time.Millisecond)) {
				t.Fatalf("the code was refused as expired %v after it was issued; want it live for codeTtl %v", answered.Sub(issuedAfter), ttl)
			}
			break
		}
		if re.ErrorCode != "invalid_target" {
			t.Fatalf("Exchange for a resource the code was not granted = %v; want invalid_target while the code is live", err)
		}
		if !sent.Before(issuedBy.Add(ttl)) {
			t.Fatalf("the code is still live %v after it was issued; want it expired after codeTtl %v", sent.Sub(issuedBy), ttl)
		}
		<-poll.C
	}
	var re *oauth2.RetrieveError
	if _, err := conf.Exchange(t.Context(), c, oauth2.VerifierOption(verifier)); !errors.As(err, &re) ||
		re.ErrorCode != "invalid_grant" || !strings.Contains(re.ErrorDescription, "expired") {
		t.Errorf("Exchange after codeTtl = %v; want invalid_grant: the code has expired", err)
	}
}

// mcpSecret is the top-level secret of the e2e sidecars with MCP on: it
// seals their signing keys.
const mcpSecret = "the e2e tests' secret, 32+ characters long"

// mcpConfig writes a minimal mcp section with a loopback http issuer.
func mcpConfig(t *testing.T, dir string, port int) string {
	t.Helper()
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf("secret: "+mcpSecret+"\nmcp:\n  enabled: true\n  issuer: http://127.0.0.1:%d\n  allowedResources: [%s]\n  loginPage: /login\n",
		port, mcpResource))
	return cfg
}

// TestMCPBadTLSFilesStopAtStart: a missing, unreadable or mismatched
// certificate or key is a configuration error (exit 2, naming the keys),
// found before anything listens, whichever listener would use it.
func TestMCPBadTLSFilesStopAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, _ := selfSignedCert(t, dir)
	other := t.TempDir()
	_, otherKey, _ := selfSignedCert(t, other)
	notPEM := filepath.Join(dir, "not.pem")
	writeFile(t, notPEM, "not a PEM file")
	cfg := mcpConfig(t, dir, freePort(t))
	for _, tc := range []struct{ name, cert, key string }{
		{"missing key file", certFile, filepath.Join(dir, "missing.pem")},
		{"key not PEM", certFile, notPEM},
		{"key of another certificate", certFile, otherKey},
		{"certificate not PEM", notPEM, keyFile},
	} {
		for _, public := range []bool{false, true} {
			args := []string{"serve", "--addr", "127.0.0.1:0", "--database", filepath.Join(dir, "k.db"), "--config", cfg,
				"--tls-cert", tc.cert, "--tls-key", tc.key}
			if public {
				args = append(args, "--public-addr", "127.0.0.1:0")
			}
			_, stderr, code := cli(t, nil, args...)
			if code != 2 || !strings.Contains(stderr, "server.tlsCert and server.tlsKey") || strings.Contains(stderr, `"msg":"listening"`) {
				t.Errorf("serve with %s (public listener %v) = exit %d:\n%s\nwant exit 2 naming the TLS keys, before listening", tc.name, public, code, stderr)
			}
		}
	}
}

// TestMCPShutdownWaitsForThePublicListener: on SIGTERM the sidecar lets a
// request in flight on the public listener finish before it closes the
// store and exits.
func TestMCPShutdownWaitsForThePublicListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePort(t)
	s := start(t, "--database", filepath.Join(dir, "k.db"), "--config", mcpConfig(t, dir, port),
		"--public-addr", fmt.Sprintf("127.0.0.1:%d", port))
	// The public listener starts just after the main one is ready; the
	// sidecar logs "listening for MCP clients" once it is bound. The harness
	// keeps the log in a buffer and signals nothing, so the test watches the
	// buffer for that line (or the process's exit), then connects once.
	publicAddr := fmt.Sprintf("127.0.0.1:%d", port)
	publicListening := func() bool {
		for line := range strings.Lines(s.log()) {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening for MCP clients" && rec.Addr == publicAddr {
				return true
			}
		}
		return false
	}
	logged := time.NewTicker(10 * time.Millisecond)
	defer logged.Stop()
	for deadline := time.After(30 * time.Second); !publicListening(); {
		select {
		case <-logged.C:
		case <-s.done:
			t.Fatalf("the sidecar exited before its public listener was up:\n%s", s.log())
		case <-deadline:
			t.Fatalf("no \"listening for MCP clients\" on %s logged within 30s:\n%s", publicAddr, s.log())
		}
	}
	conn, err := net.Dial("tcp", publicAddr)
	if err != nil {
		t.Fatalf("the public listener was logged as listening but refuses connections: %v", err)
	}
	defer conn.Close()
	// A token request whose body is still on its way.
	body := url.Values{"grant_type": {"authorization_code"}, "client_id": {"nobody"}, "code": {"x"}}.Encode()
	if _, err := fmt.Fprintf(conn, "POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
		"Content-Length: %d\r\n\r\n%s", port, len(body), body[:5]); err != nil {
		t.Fatal(err)
	}
	// The request is in flight once another on the same listener answers.
	getJSON(t, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/.well-known/oauth-authorization-server", port), &map[string]any{})
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Shutdown has begun once the main listener refuses connections.
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(s.URL + "/health")
		if err != nil {
			break
		}
		_ = resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("the main listener still answers 30s after SIGTERM")
		}
	}
	// Not a synchronisation: no event is awaited. A sidecar that did not
	// wait for the public listener would exit moments after its main
	// listener closed, so the request is held open a while to give that
	// fault time to show. A slow machine can only make the test miss the
	// fault, never fail a correct sidecar.
	select {
	case <-s.done:
		t.Fatalf("the sidecar exited with a request in flight on the public listener:\n%s", s.log())
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := io.WriteString(conn, body[5:]); err != nil {
		t.Fatalf("finishing the request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in flight got no answer: %v\n%s", err, s.log())
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
		t.Errorf("token request during shutdown = %d; want the token endpoint's 400/401", resp.StatusCode)
	}
	<-s.done
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM:\n%s", code, s.log())
	}
}
