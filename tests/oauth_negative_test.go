package tests

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestMCPNegativeCasesOverRawHTTP sends, with raw HTTP to the real binary,
// each malformed or hostile request the issue names, and checks the
// answer the MCP authorization spec asks for. (go test ./oauth covers the
// same and more against the handlers themselves.)
func TestMCPNegativeCasesOverRawHTTP(t *testing.T) {
	t.Parallel()
	s, issuer := mcpSidecar(t, `tools:read:
      - {resource: "mcp:github:*", actions: [read]}`)
	raw := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	register := func(body string) (int, map[string]any) {
		t.Helper()
		resp, err := raw.Post(issuer+"/oauth/register", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	for name, body := range map[string]string{
		"http on a public host": `{"redirect_uris":["http://client.example.com/cb"]}`,
		"a fragment":            `{"redirect_uris":["https://client.example.com/cb#frag"]}`,
		"a relative URI":        `{"redirect_uris":["/cb"]}`,
		"no redirect URI":       `{"redirect_uris":[]}`,
	} {
		if status, out := register(body); status != http.StatusBadRequest || out["error"] != "invalid_redirect_uri" {
			t.Errorf("register with %s = %d %v; want 400 invalid_redirect_uri", name, status, out)
		}
	}
	status, reg := register(`{"client_name":"neg","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`)
	clientID, _ := reg["client_id"].(string)
	if status != http.StatusCreated || clientID == "" {
		t.Fatalf("register = %d %v; want 201", status, reg)
	}

	verifier := strings.Repeat("v", 50)
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	params := func(mutate func(url.Values)) url.Values {
		q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {"http://127.0.0.1:4567/cb"},
			"scope": {"tools:read"}, "state": {"st"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
			"resource": {mcpResource}}
		if mutate != nil {
			mutate(q)
		}
		return q
	}
	authorize := func(q url.Values) *http.Response {
		t.Helper()
		resp, err := raw.Get(issuer + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp
	}
	// Errors that must not redirect: a 400 page.
	for name, mutate := range map[string]func(url.Values){
		"unknown client":      func(q url.Values) { q.Set("client_id", "no-such-client") },
		"unregistered path":   func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:4567/elsewhere") },
		"another host":        func(q url.Values) { q.Set("redirect_uri", "https://evil.example.com/cb") },
		"loopback on [::1]":   func(q url.Values) { q.Set("redirect_uri", "http://[::1]:4567/cb") },
		"fragment in request": func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:4567/cb#x") },
	} {
		if resp := authorize(params(mutate)); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("authorize with %s = %d to %q; want a 400 page, no redirect", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// Errors redirected to the client, with state and iss.
	for name, tc := range map[string]struct {
		mutate func(url.Values)
		code   string
	}{
		"PKCE missing":     {func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request"},
		"PKCE plain":       {func(q url.Values) { q.Set("code_challenge_method", "plain"); q.Set("code_challenge", verifier) }, "invalid_request"},
		"unknown resource": {func(q url.Values) { q.Set("resource", "https://other.example.test/mcp") }, "invalid_target"},
		"unknown scope":    {func(q url.Values) { q.Set("scope", "admin") }, "invalid_scope"},
	} {
		resp := authorize(params(tc.mutate))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if q := loc.Query(); resp.StatusCode != http.StatusFound || q.Get("error") != tc.code || q.Get("state") != "st" || q.Get("iss") != issuer {
			t.Errorf("authorize with %s = %d to %q; want a redirect with error=%s, state and iss", name, resp.StatusCode, loc, tc.code)
		}
	}

	// A code is single use: replaying it (with the right verifier) fails and
	// revokes the token the first use issued.
	resp := authorize(params(nil))
	login, _ := url.Parse(resp.Header.Get("Location"))
	var approved struct {
		RedirectURL string `json:"redirectUrl"`
	}
	postJSON(t, keyed(s.mintKey(t, "login-app", "approver").Key), s.URL+"/v1/oauth/requests/"+login.Query().Get("request")+"/approve",
		map[string]any{"userId": "user-1"}, http.StatusOK, &approved)
	back, _ := url.Parse(approved.RedirectURL)
	token := func(v url.Values) (int, map[string]any, http.Header) {
		t.Helper()
		resp, err := raw.PostForm(issuer+"/oauth/token", v)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out, resp.Header
	}
	exchange := url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {back.Query().Get("code")},
		"redirect_uri": {"http://127.0.0.1:4567/cb"}, "code_verifier": {verifier}}
	wrong := url.Values{}
	for k, v := range exchange {
		wrong[k] = v
	}
	wrong.Set("code_verifier", strings.Repeat("w", 50))
	if status, out, _ := token(wrong); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Errorf("token with a wrong verifier = %d %v; want invalid_grant", status, out)
	}
	status, first, h := token(exchange)
	at, _ := first["access_token"].(string)
	if status != http.StatusOK || at == "" || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("token = %d %v (Cache-Control %q); want 200 with no-store", status, first, h.Get("Cache-Control"))
	}
	if _, ok := first["refresh_token"]; ok {
		t.Errorf("token without offline_access carries a refresh token")
	}
	authorizeAs(t, s, at, "read", "mcp:github:repos", http.StatusOK, true)
	if status, out, _ := token(exchange); status != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Errorf("code replay = %d %v; want invalid_grant", status, out)
	}
	authorizeAs(t, s, at, "read", "mcp:github:repos", http.StatusUnauthorized, false)

	// Unknown clients at the token endpoint, and unsupported grants.
	if status, out, _ := token(url.Values{"grant_type": {"authorization_code"}, "client_id": {"no-such-client"}, "code": {"x"},
		"code_verifier": {verifier}, "redirect_uri": {"http://127.0.0.1:4567/cb"}}); status != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Errorf("token for an unknown client = %d %v; want 401 invalid_client", status, out)
	}
	if status, out, _ := token(url.Values{"grant_type": {"password"}, "client_id": {clientID}}); status != http.StatusBadRequest ||
		out["error"] != "unsupported_grant_type" {
		t.Errorf("password grant = %d %v; want unsupported_grant_type", status, out)
	}

	// Bearer challenges for the MCP server.
	r := postRaw(t, keyed(s.mintKey(t, "mcp-server", "decider").Key), s.URL+"/v1/oauth/verify", map[string]any{"token": "not.a.jwt", "resource": mcpResource})
	if got := r.Header.Get("WWW-Authenticate"); r.StatusCode != http.StatusUnauthorized || !strings.Contains(got, `error="invalid_token"`) ||
		!strings.Contains(got, `resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource/mcp"`) {
		t.Errorf("verify with a bad token = %d %q; want 401 invalid_token with resource_metadata", r.StatusCode, got)
	}
}
