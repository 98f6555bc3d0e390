package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/internal/mysqltest"
	"github.com/kavach-dev/kavach/internal/pgtest"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	base := Config{Issuer: "https://auth.example.com", LoginPage: "/login"}
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"https issuer", func(*Config) {}, true},
		{"http issuer on a public host", func(c *Config) { c.Issuer = "http://auth.example.com" }, false},
		{"http issuer on localhost", func(c *Config) { c.Issuer = "http://localhost:7400" }, true},
		{"http issuer on 127.0.0.0/8", func(c *Config) { c.Issuer = "http://127.3.2.1:7400/x" }, true},
		{"http issuer on [::1]", func(c *Config) { c.Issuer = "http://[::1]:7400" }, true},
		{"http issuer on a private IP", func(c *Config) { c.Issuer = "http://10.0.0.1" }, false},
		{"no issuer", func(c *Config) { c.Issuer = "" }, false},
		{"issuer with query", func(c *Config) { c.Issuer = "https://auth.example.com?x=1" }, false},
		{"issuer with fragment", func(c *Config) { c.Issuer = "https://auth.example.com#x" }, false},
		{"ftp issuer", func(c *Config) { c.Issuer = "ftp://auth.example.com" }, false},
		{"short signing secret", func(c *Config) { c.SigningSecret = strings.Repeat("x", 31) }, false},
		{"32-character signing secret", func(c *Config) { c.SigningSecret = strings.Repeat("x", 32) }, true},
		{"no login or consent page", func(c *Config) { c.LoginPage = "" }, false},
		{"consent page only", func(c *Config) { c.LoginPage, c.ConsentPage = "", "https://app/consent" }, true},
		{"relative login page", func(c *Config) { c.LoginPage = "login" }, false},
		{"resource with fragment", func(c *Config) { c.AllowedResources = []string{"https://mcp.example.com/#x"} }, false},
		{"relative resource", func(c *Config) { c.AllowedResources = []string{"/mcp"} }, false},
		{"http baseUrl on a public host", func(c *Config) { c.BaseURL = "http://auth.example.com" }, false},
		{"negative TTL", func(c *Config) { c.CodeTTL = -time.Second }, false},
		{"bad scope name", func(c *Config) { c.Scopes = map[string][]Permission{"a b": nil} }, false},
		{"pre-registered client with an http redirect", func(c *Config) {
			c.PreRegisteredClients = []Client{{ID: "x", RedirectURIs: []string{"http://example.com/cb"}}}
		}, false},
		{"pre-registered client without ID", func(c *Config) {
			c.PreRegisteredClients = []Client{{RedirectURIs: []string{"https://example.com/cb"}}}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mutate(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate(%+v) = %v; want ok=%v", c, err, tt.ok)
			}
		})
	}
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"", "/tenant/a"} {
		t.Run("issuer path "+path, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, path, nil)
			paths := []string{"/.well-known/oauth-authorization-server"}
			if path != "" {
				paths = append(paths, "/.well-known/oauth-authorization-server"+path, path+"/.well-known/oauth-authorization-server")
			}
			for _, p := range paths {
				resp, b := h.get(p)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s = %d; want 200", p, resp.StatusCode)
				}
				var m map[string]any
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatal(err)
				}
				want := map[string]any{
					"issuer":                 h.issuer,
					"authorization_endpoint": h.issuer + "/oauth/authorize",
					"token_endpoint":         h.issuer + "/oauth/token",
					"registration_endpoint":  h.issuer + "/oauth/register",
					"revocation_endpoint":    h.issuer + "/oauth/revoke",
					"introspection_endpoint": h.issuer + "/oauth/introspect",
					"jwks_uri":               h.issuer + "/oauth/jwks",
					"authorization_response_iss_parameter_supported": true,
				}
				for k, v := range want {
					if m[k] != v {
						t.Errorf("GET %s: %s = %v; want %v", p, k, m[k], v)
					}
				}
				lists := map[string][]string{
					"response_types_supported":                      {"code"},
					"code_challenge_methods_supported":              {"S256"},
					"grant_types_supported":                         {"authorization_code", "refresh_token"},
					"token_endpoint_auth_methods_supported":         {"none", "client_secret_basic", "client_secret_post"},
					"revocation_endpoint_auth_methods_supported":    {"none", "client_secret_basic", "client_secret_post"},
					"introspection_endpoint_auth_methods_supported": {"none", "client_secret_basic", "client_secret_post"},
					"scopes_supported":                              {"offline_access", "tools:read", "tools:write"},
				}
				for k, want := range lists {
					if got := strList(m[k]); !slices.Equal(got, want) {
						t.Errorf("GET %s: %s = %v; want %v", p, k, got, want)
					}
				}
			}
			// The endpoints really are where the metadata says.
			if resp, _ := h.get(path + "/oauth/jwks"); resp.StatusCode != http.StatusOK {
				t.Errorf("GET jwks_uri = %d; want 200", resp.StatusCode)
			}
		})
	}
}

func strList(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestProtectedResourceMetadata(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", func(c *Config) {
		c.AllowedResources = []string{testResource, "https://other.example.com/"}
	})
	tests := []struct {
		path     string
		resource string
	}{
		{"/.well-known/oauth-protected-resource/mcp", testResource},
		{"/.well-known/oauth-protected-resource", "https://other.example.com/"},
	}
	for _, tt := range tests {
		resp, b := h.get(tt.path)
		var m ResourceMetadata
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &m) != nil {
			t.Fatalf("GET %s = %d %s; want 200", tt.path, resp.StatusCode, b)
		}
		if m.Resource != tt.resource || !slices.Equal(m.AuthorizationServers, []string{h.issuer}) ||
			!slices.Equal(m.BearerMethodsSupported, []string{"header"}) || !slices.Contains(m.ScopesSupported, "tools:read") {
			t.Errorf("GET %s = %+v; want resource %s, issuer %s", tt.path, m, tt.resource, h.issuer)
		}
	}
	if resp, _ := h.get("/.well-known/oauth-protected-resource/unknown"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET metadata of an unknown resource = %d; want 404", resp.StatusCode)
	}
}

func TestRegistration(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"public client", map[string]any{"redirect_uris": []string{"http://127.0.0.1:3000/cb"}, "token_endpoint_auth_method": "none"}, 201, ""},
		{"confidential client", map[string]any{"redirect_uris": []string{"https://c.example.com/cb"}}, 201, ""},
		{"loopback [::1]", map[string]any{"redirect_uris": []string{"http://[::1]/cb"}, "token_endpoint_auth_method": "none"}, 201, ""},
		{"http on a public host", map[string]any{"redirect_uris": []string{"http://c.example.com/cb"}}, 400, "invalid_redirect_uri"},
		{"fragment", map[string]any{"redirect_uris": []string{"https://c.example.com/cb#frag"}}, 400, "invalid_redirect_uri"},
		{"relative", map[string]any{"redirect_uris": []string{"/cb"}}, 400, "invalid_redirect_uri"},
		{"javascript scheme", map[string]any{"redirect_uris": []string{"javascript:alert(1)"}}, 400, "invalid_redirect_uri"},
		{"no redirect URIs", map[string]any{"client_name": "x"}, 400, "invalid_redirect_uri"},
		{"unknown auth method", map[string]any{"redirect_uris": []string{"https://c/cb"}, "token_endpoint_auth_method": "private_key_jwt"}, 400, "invalid_client_metadata"},
		{"implicit grant", map[string]any{"redirect_uris": []string{"https://c/cb"}, "grant_types": []string{"implicit"}}, 400, "invalid_client_metadata"},
		{"token response type", map[string]any{"redirect_uris": []string{"https://c/cb"}, "response_types": []string{"token"}}, 400, "invalid_client_metadata"},
		{"not JSON", "{redirect_uris", 400, "invalid_client_metadata"},
		{"trailing data", `{"redirect_uris":["https://c/cb"]} {}`, 400, "invalid_client_metadata"},
		{"too large", `{"client_name":"` + strings.Repeat("x", maxRegisterBytes) + `"}`, 413, "invalid_client_metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := h.postJSON("/oauth/register", tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("register = %d %s; want %d", resp.StatusCode, b, tt.status)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if tt.code != "" {
				if m["error"] != tt.code {
					t.Errorf("register error = %v; want %s", m["error"], tt.code)
				}
				return
			}
			if str(m, "client_id") == "" {
				t.Errorf("register = %v; want a client_id", m)
			}
			wantSecret := str(m, "token_endpoint_auth_method") != "none"
			if (str(m, "client_secret") != "") != wantSecret {
				t.Errorf("register = %v; want a secret: %v", m, wantSecret)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("register Cache-Control = %q; want no-store", resp.Header.Get("Cache-Control"))
			}
		})
	}
}

func TestAuthorizeErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	client := h.registerPublic("http://127.0.0.1/callback", "http://localhost:8080/cb", "https://client.example.com/cb")
	good := func() url.Values { return authorizeParams(client, "https://client.example.com/cb", "tools:read") }
	tests := []struct {
		name   string
		mutate func(url.Values)
		// page: a 400 page, no redirect; else the error redirected.
		page bool
		code string
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "nope") }, true, "invalid_client"},
		{"missing client", func(q url.Values) { q.Del("client_id") }, true, "invalid_client"},
		{"unregistered redirect", func(q url.Values) { q.Set("redirect_uri", "https://evil.example.com/cb") }, true, "invalid_request"},
		{"redirect differing in path", func(q url.Values) { q.Set("redirect_uri", "https://client.example.com/cb2") }, true, "invalid_request"},
		{"loopback redirect differing in path", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:5000/other") }, true, "invalid_request"},
		{"loopback redirect on another host", func(q url.Values) { q.Set("redirect_uri", "http://[::1]:5000/callback") }, true, "invalid_request"},
		{"https redirect on another port", func(q url.Values) { q.Set("redirect_uri", "https://client.example.com:8443/cb") }, true, "invalid_request"},
		{"redirect omitted with several registered", func(q url.Values) { q.Del("redirect_uri") }, true, "invalid_request"},
		{"repeated parameter", func(q url.Values) { q.Add("client_id", client) }, true, "invalid_request"},
		{"PKCE missing", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, false, "invalid_request"},
		{"PKCE plain", func(q url.Values) { q.Set("code_challenge_method", "plain"); q.Set("code_challenge", testVerifier) }, false, "invalid_request"},
		{"PKCE method missing", func(q url.Values) { q.Del("code_challenge_method") }, false, "invalid_request"},
		{"PKCE challenge malformed", func(q url.Values) { q.Set("code_challenge", "short") }, false, "invalid_request"},
		{"PKCE challenge not canonical base64url", func(q url.Values) {
			c := challengeOf(testVerifier)
			q.Set("code_challenge", c[:42]+"B") // 'B' sets a spare bit: decodes, yet no hash encodes to it
		}, false, "invalid_request"},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, false, "unsupported_response_type"},
		{"response_type missing", func(q url.Values) { q.Del("response_type") }, false, "invalid_request"},
		{"unknown scope", func(q url.Values) { q.Set("scope", "tools:read admin") }, false, "invalid_scope"},
		{"unknown resource", func(q url.Values) { q.Set("resource", "https://evil.example.com/mcp") }, false, "invalid_target"},
		{"resource with fragment", func(q url.Values) { q.Set("resource", testResource+"#x") }, false, "invalid_target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := good()
			tt.mutate(q)
			resp, b := h.get("/oauth/authorize?" + q.Encode())
			if tt.page {
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" ||
					!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(b), tt.code) {
					t.Errorf("authorize = %d Location %q %s; want a 400 page with %s", resp.StatusCode, resp.Header.Get("Location"), b, tt.code)
				}
				return
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), "https://client.example.com/cb?") {
				t.Fatalf("authorize = %d Location %q; want a redirect to the client", resp.StatusCode, resp.Header.Get("Location"))
			}
			if got := loc.Query(); got.Get("error") != tt.code || got.Get("state") != "xyz" || got.Get("iss") != h.issuer {
				t.Errorf("authorize redirect query = %v; want error=%s, state=xyz, iss=%s", got, tt.code, h.issuer)
			}
		})
	}
}

// A state is stored with the pending request: an overlong one is
// refused, not stored and not echoed.
func TestAuthorizeStateIsBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	client := h.registerPublic("https://client.example.com/cb")
	q := authorizeParams(client, "https://client.example.com/cb", "tools:read")
	q.Set("state", strings.Repeat("s", maxStateLen+1))
	resp, _ := h.get("/oauth/authorize?" + q.Encode())
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("error") != "invalid_request" || loc.Query().Has("state") {
		t.Errorf("authorize with a %d-byte state = %d %q; want invalid_request without the state", maxStateLen+1, resp.StatusCode, loc)
	}
	q.Set("state", strings.Repeat("s", maxStateLen))
	if h.handle(q) == "" {
		t.Errorf("a %d-byte state was refused", maxStateLen)
	}
}

func TestAuthorizeLoopbackAnyPort(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	client := h.registerPublic("http://127.0.0.1/callback", "http://localhost:8080/cb", "http://[::1]:1/cb")
	for _, redirect := range []string{"http://127.0.0.1:53124/callback", "http://127.0.0.1/callback", "http://localhost:9/cb", "http://[::1]:65000/cb"} {
		t.Run(redirect, func(t *testing.T) {
			u := h.approve(h.handle(authorizeParams(client, redirect, "tools:read")), "user-1", nil)
			if got := u.Scheme + "://" + u.Host + u.Path; got != redirect || u.Query().Get("code") == "" {
				t.Errorf("approve redirect = %s; want %s with a code", u, redirect)
			}
		})
	}
}

func TestAuthorizeDefaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", func(c *Config) { c.LoginPage = "https://app.example.com/login?tenant=a" })
	resp, _ := h.get("/oauth/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"pre-public"},
		"code_challenge": {challengeOf(testVerifier)}, "code_challenge_method": {"S256"}}.Encode())
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("tenant") != "a" || loc.Query().Get("request") == "" {
		t.Fatalf("authorize = %d %s; want the login page with tenant and request", resp.StatusCode, loc)
	}
	p, err := h.srv.Request(t.Context(), loc.Query().Get("request"))
	if err != nil || p.Resource != testResource || p.RedirectURI != "https://client.example.com/cb" ||
		!slices.Equal(p.Scopes, []string{"tools:read", "tools:write"}) || p.ClientName != "Pre Public" {
		t.Errorf("Request = %+v, %v; want the only resource, the only redirect and every scope", p, err)
	}
}

func TestAuthorizeResourceRequiredWithSeveral(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", func(c *Config) { c.AllowedResources = []string{testResource, "https://other.example.com/mcp"} })
	resp, _ := h.get("/oauth/authorize?" + authorizeParams("pre-public", "https://client.example.com/cb", "tools:read").Encode())
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc.Query().Get("error") != "invalid_target" {
		t.Errorf("authorize without resource = %s; want error=invalid_target", loc)
	}
	q := authorizeParams("pre-public", "https://client.example.com/cb", "tools:read")
	q.Set("resource", "https://other.example.com/mcp")
	p, err := h.srv.Request(t.Context(), h.handle(q))
	if err != nil || p.Resource != "https://other.example.com/mcp" {
		t.Errorf("Request = %+v, %v; want the resource asked for", p, err)
	}
}

func TestConsentAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	client := h.registerPublic("https://client.example.com/cb?keep=1")
	newHandle := func() string {
		return h.handle(authorizeParams(client, "https://client.example.com/cb?keep=1", "tools:read tools:write offline_access"))
	}
	hd := newHandle()
	resp, b := h.get("/v1/oauth/requests/" + hd)
	var p PendingRequest
	if resp.StatusCode != 200 || json.Unmarshal(b, &p) != nil || p.ClientID != client || p.ClientName != "Test Client" ||
		!slices.Equal(p.Scopes, []string{"tools:read", "tools:write", "offline_access"}) || p.Resource != testResource || p.Status != "pending" {
		t.Fatalf("GET request = %d %s", resp.StatusCode, b)
	}
	tests := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"unknown handle", "/v1/oauth/requests/nope/approve", map[string]any{"userId": "u"}, 404, "request_not_found"},
		{"unknown handle (deny)", "/v1/oauth/requests/nope/deny", nil, 404, "request_not_found"},
		{"bad body", "/v1/oauth/requests/" + hd + "/approve", "{", 400, "invalid_body"},
		{"unknown field", "/v1/oauth/requests/" + hd + "/approve", map[string]any{"user": "u"}, 400, "invalid_body"},
		{"no user", "/v1/oauth/requests/" + hd + "/approve", map[string]any{"scopes": []string{"tools:read"}}, 400, "invalid_user"},
		{"scope not requested", "/v1/oauth/requests/" + hd + "/approve", map[string]any{"userId": "u", "scopes": []string{"admin"}}, 400, "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := h.postJSON(tt.path, tt.body)
			var e struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			}
			if resp.StatusCode != tt.status || json.Unmarshal(b, &e) != nil || e.Code != tt.code || e.Message == "" {
				t.Errorf("POST %s = %d %s; want %d %s", tt.path, resp.StatusCode, b, tt.status, tt.code)
			}
		})
	}
	u := h.approve(hd, "user-1", []string{"tools:read", "offline_access"})
	if q := u.Query(); q.Get("code") == "" || q.Get("state") != "xyz" || q.Get("iss") != h.issuer || q.Get("keep") != "1" {
		t.Errorf("approve redirect = %s; want code, state, iss and the redirect's own query", u)
	}
	agent := h.agents.agents[client+"|user-1"]
	if perms := h.agents.perms[agent]; len(perms) != 1 || perms[0].Resource != "mcp:github:*" {
		t.Errorf("GrantAgent permissions = %+v; want tools:read's", perms)
	}
	for _, path := range []string{"/approve", "/deny"} {
		resp, b := h.postJSON("/v1/oauth/requests/"+hd+path, map[string]any{"userId": "user-1"})
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "request_decided") {
			t.Errorf("POST %s again = %d %s; want 409 request_decided", path, resp.StatusCode, b)
		}
	}
	resp, b = h.postJSON("/v1/oauth/requests/"+newHandle()+"/deny", nil)
	var out struct{ RedirectURL string }
	_ = json.Unmarshal(b, &out)
	du, _ := url.Parse(out.RedirectURL)
	if resp.StatusCode != 200 || du.Query().Get("error") != "access_denied" || du.Query().Get("state") != "xyz" || du.Query().Get("iss") != h.issuer {
		t.Errorf("deny = %d %s; want a redirect with access_denied, state and iss", resp.StatusCode, b)
	}
	expiring := newHandle()
	h.clock.Add(DefaultRequestTTL)
	if resp, b := h.postJSON("/v1/oauth/requests/"+expiring+"/approve", map[string]any{"userId": "u"}); resp.StatusCode != 404 {
		t.Errorf("approve expired request = %d %s; want 404", resp.StatusCode, b)
	}
	if resp, _ := h.get("/v1/oauth/requests/" + expiring); resp.StatusCode != 404 {
		t.Errorf("GET expired request = %d; want 404", resp.StatusCode)
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	const redirect = "https://client.example.com/cb"
	client := h.registerPublic(redirect)
	tests := []struct {
		name   string
		form   func() url.Values
		basic  []string
		status int
		code   string
	}{
		{"wrong verifier", func() url.Values {
			f := codeForm(client, h.code(client, redirect, "tools:read"), redirect)
			f.Set("code_verifier", strings.Repeat("a", 43))
			return f
		}, nil, 400, "invalid_grant"},
		{"missing verifier", func() url.Values {
			f := codeForm(client, h.code(client, redirect, "tools:read"), redirect)
			f.Del("code_verifier")
			return f
		}, nil, 400, "invalid_request"},
		{"unknown code", func() url.Values { return codeForm(client, "nope", redirect) }, nil, 400, "invalid_grant"},
		{"redirect mismatch", func() url.Values {
			return codeForm(client, h.code(client, redirect, "tools:read"), "https://client.example.com/other")
		}, nil, 400, "invalid_grant"},
		{"other client's code", func() url.Values {
			f := codeForm("pre-public", h.code(client, redirect, "tools:read"), redirect)
			return f
		}, nil, 400, "invalid_grant"},
		{"unknown client", func() url.Values { return codeForm("nope", "x", redirect) }, nil, 401, "invalid_client"},
		{"unknown client with Basic", func() url.Values {
			f := codeForm("", "x", redirect)
			f.Del("client_id")
			return f
		}, []string{"nope", "secret"}, 401, "invalid_client"},
		{"confidential client without secret", func() url.Values { return codeForm("pre-secret", "x", redirect) }, nil, 401, "invalid_client"},
		{"confidential client with a wrong Basic secret", func() url.Values {
			f := codeForm("", "x", redirect)
			f.Del("client_id")
			return f
		}, []string{"pre-secret", "wrong"}, 401, "invalid_client"},
		{"resource not granted", func() url.Values {
			f := codeForm(client, h.code(client, redirect, "tools:read"), redirect)
			f.Set("resource", "https://evil.example.com/")
			return f
		}, nil, 400, "invalid_target"},
		{"unsupported grant type", func() url.Values {
			return url.Values{"grant_type": {"client_credentials"}, "client_id": {client}}
		}, nil, 400, "unsupported_grant_type"},
		{"missing grant type", func() url.Values { return url.Values{"client_id": {client}} }, nil, 400, "invalid_request"},
		{"refresh without token", func() url.Values {
			return url.Values{"grant_type": {"refresh_token"}, "client_id": {client}}
		}, nil, 400, "invalid_request"},
		{"unknown refresh token", func() url.Values {
			return url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {"nope"}}
		}, nil, 400, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, m := h.postForm("/oauth/token", tt.form(), tt.basic...)
			if resp.StatusCode != tt.status || m["error"] != tt.code {
				t.Errorf("token = %d %v; want %d %s", resp.StatusCode, m, tt.status, tt.code)
			}
			if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
				t.Errorf("token error headers = %v; want no-store, no-cache", resp.Header)
			}
			wantBasic := tt.basic != nil && tt.code == "invalid_client"
			if got := strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic"); got != wantBasic {
				t.Errorf("WWW-Authenticate = %q; want Basic: %v", resp.Header.Get("WWW-Authenticate"), wantBasic)
			}
		})
	}
	t.Run("not a form", func(t *testing.T) {
		resp, b := h.postJSON("/oauth/token", map[string]string{"grant_type": "authorization_code"})
		if resp.StatusCode != 400 || !strings.Contains(string(b), "invalid_request") {
			t.Errorf("token with a JSON body = %d %s; want 400 invalid_request", resp.StatusCode, b)
		}
	})
}

func TestCodeReplayRevokesItsTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	const redirect = "https://client.example.com/cb"
	client := h.registerPublic(redirect)
	code := h.code(client, redirect, "tools:read offline_access")
	resp, first := h.postForm("/oauth/token", codeForm(client, code, redirect))
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
		t.Fatalf("token = %d %v %v; want 200 with no-store", resp.StatusCode, first, resp.Header)
	}
	if _, err := h.srv.Verify(t.Context(), str(first, "access_token"), testResource, nil); err != nil {
		t.Fatalf("Verify(first token) = %v", err)
	}
	// A replay with a wrong verifier fails without revoking anything.
	bad := codeForm(client, code, redirect)
	bad.Set("code_verifier", strings.Repeat("b", 43))
	if resp, m := h.postForm("/oauth/token", bad); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("replay with a wrong verifier = %d %v; want invalid_grant", resp.StatusCode, m)
	}
	if _, err := h.srv.Verify(t.Context(), str(first, "access_token"), testResource, nil); err != nil {
		t.Fatalf("Verify after a failed replay = %v; want still valid", err)
	}
	if resp, m := h.postForm("/oauth/token", codeForm(client, code, redirect)); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("replay = %d %v; want invalid_grant", resp.StatusCode, m)
	}
	if _, err := h.srv.Verify(t.Context(), str(first, "access_token"), testResource, nil); !isCode(err, CodeInvalidToken) {
		t.Errorf("Verify(token of a replayed code) = %v; want invalid_token", err)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {str(first, "refresh_token")}}
	if resp, m := h.postForm("/oauth/token", refresh); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Errorf("refresh with a replayed code's token = %d %v; want invalid_grant", resp.StatusCode, m)
	}
}

func isCode(err error, code string) bool {
	var oe *Error
	return errors.As(err, &oe) && oe.Code == code
}

func TestCodeExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", func(c *Config) { c.CodeTTL = time.Minute })
	const redirect = "https://client.example.com/cb"
	code := h.code("pre-public", redirect, "tools:read")
	h.clock.Add(time.Minute)
	if resp, m := h.postForm("/oauth/token", codeForm("pre-public", code, redirect)); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Errorf("token with an expired code = %d %v; want invalid_grant", resp.StatusCode, m)
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	const redirect = "https://client.example.com/cb"
	client := h.registerPublic(redirect)

	if m := h.tokens(client, redirect, "tools:read"); m["refresh_token"] != nil {
		t.Errorf("token without offline_access = %v; want no refresh_token", m)
	}
	first := h.tokens(client, redirect, "tools:read tools:write offline_access")
	r1 := str(first, "refresh_token")
	if r1 == "" {
		t.Fatalf("token with offline_access = %v; want a refresh_token", first)
	}
	refresh := func(token string, extra url.Values) (*http.Response, map[string]any) {
		f := url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {token}}
		for k, v := range extra {
			f[k] = v
		}
		return h.postForm("/oauth/token", f)
	}
	if resp, m := refresh(r1, url.Values{"scope": {"tools:read admin"}}); resp.StatusCode != 400 || m["error"] != "invalid_scope" {
		t.Errorf("refresh widening scope = %d %v; want invalid_scope", resp.StatusCode, m)
	}
	if resp, m := refresh(r1, url.Values{"resource": {"https://other.example.com/"}}); resp.StatusCode != 400 || m["error"] != "invalid_target" {
		t.Errorf("refresh for another resource = %d %v; want invalid_target", resp.StatusCode, m)
	}
	if resp, m := h.postForm("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"pre-public"}, "refresh_token": {r1}}); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Errorf("refresh by another client = %d %v; want invalid_grant", resp.StatusCode, m)
	}
	resp, second := refresh(r1, url.Values{"scope": {"tools:read"}})
	r2 := str(second, "refresh_token")
	if resp.StatusCode != 200 || r2 == "" || r2 == r1 || second["scope"] != "tools:read" {
		t.Fatalf("refresh narrowing scope = %d %v; want a new refresh token and scope tools:read", resp.StatusCode, second)
	}
	c, err := h.srv.Verify(t.Context(), str(second, "access_token"), testResource, nil)
	if err != nil || !slices.Equal(c.Scopes, []string{"tools:read"}) || !slices.Equal(c.Audience, []string{testResource}) {
		t.Errorf("Verify(refreshed) = %+v, %v; want scope tools:read for the grant's resource", c, err)
	}
	// The narrowed refresh still carries the grant: widening back is allowed.
	resp, third := refresh(r2, nil)
	if resp.StatusCode != 200 || third["scope"] != "tools:read tools:write offline_access" {
		t.Fatalf("refresh with the rotated token = %d %v; want the grant's scopes", resp.StatusCode, third)
	}
	// Reusing r1 (rotated out) revokes the whole grant.
	if resp, m := refresh(r1, nil); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("refresh reuse = %d %v; want invalid_grant", resp.StatusCode, m)
	}
	if resp, m := refresh(str(third, "refresh_token"), nil); resp.StatusCode != 400 || m["error"] != "invalid_grant" {
		t.Errorf("refresh with the newest token after reuse = %d %v; want invalid_grant", resp.StatusCode, m)
	}
	for _, at := range []string{str(first, "access_token"), str(third, "access_token")} {
		if _, err := h.srv.Verify(t.Context(), at, testResource, nil); !isCode(err, CodeInvalidToken) {
			t.Errorf("Verify(token of a reused grant) = %v; want invalid_token", err)
		}
	}
}

func TestRefreshExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", func(c *Config) { c.RefreshTokenTTL = time.Hour })
	m := h.tokens("pre-public", "https://client.example.com/cb", "tools:read offline_access")
	h.clock.Add(time.Hour)
	resp, e := h.postForm("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"pre-public"}, "refresh_token": {str(m, "refresh_token")}})
	if resp.StatusCode != 400 || e["error"] != "invalid_grant" {
		t.Errorf("refresh with an expired token = %d %v; want invalid_grant", resp.StatusCode, e)
	}
}

func TestConfidentialClient(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	resp, b := h.postJSON("/oauth/register", map[string]any{"redirect_uris": []string{"https://c.example.com/cb"},
		"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"authorization_code", "refresh_token"}})
	var reg RegistrationResponse
	if resp.StatusCode != 201 || json.Unmarshal(b, &reg) != nil || reg.ClientSecret == "" {
		t.Fatalf("register = %d %s", resp.StatusCode, b)
	}
	for _, method := range []string{"post", "basic"} {
		t.Run(method, func(t *testing.T) {
			f := codeForm(reg.ClientID, h.code(reg.ClientID, "https://c.example.com/cb", "tools:read"), "https://c.example.com/cb")
			var basic []string
			if method == "post" {
				f.Set("client_secret", reg.ClientSecret)
			} else {
				f.Del("client_id")
				basic = []string{reg.ClientID, reg.ClientSecret}
			}
			if resp, m := h.postForm("/oauth/token", f, basic...); resp.StatusCode != 200 {
				t.Errorf("token with client_secret_%s = %d %v; want 200", method, resp.StatusCode, m)
			}
		})
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	m := h.tokens("pre-public", redirectCB, "tools:read offline_access")
	if err := h.srv.Purge(t.Context()); err != nil {
		t.Fatalf("Purge = %v", err)
	}
	if _, in := h.postForm("/oauth/introspect", url.Values{"client_id": {"pre-public"}, "token": {str(m, "refresh_token")}}); in["active"] != true {
		t.Errorf("introspect(live refresh token) after Purge = %v; want active", in)
	}
	h.clock.Add(DefaultRefreshTokenTTL + time.Second)
	if err := h.srv.Purge(t.Context()); err != nil {
		t.Fatalf("Purge = %v", err)
	}
	if _, _, err := h.st.GetOAuthRefreshToken(t.Context(), hash(str(m, "refresh_token"))); err == nil {
		t.Error("expired refresh token still stored after Purge")
	}
}

// TestRedirectKeepsItsQuery: the code and error redirects append to the
// registered redirect URI's query, which stays exactly as registered.
func TestRedirectKeepsItsQuery(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	const redirect = "https://client.example.com/cb?b=2&a=1;x&flag&sp=%20"
	client := h.registerPublic(redirect)
	resp, b := h.postJSON("/v1/oauth/requests/"+h.handle(authorizeParams(client, redirect, "tools:read"))+"/approve", map[string]any{"userId": "u"})
	var out struct{ RedirectURL string }
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
		t.Fatalf("approve = %d %s", resp.StatusCode, b)
	}
	u, _ := url.Parse(out.RedirectURL)
	if !strings.HasPrefix(out.RedirectURL, redirect+"&") || u.Query().Get("code") == "" || u.Query().Get("iss") != h.issuer ||
		u.Query().Get("state") != "xyz" {
		t.Errorf("approve redirect = %s; want %s followed by code, state and iss", out.RedirectURL, redirect)
	}
	q := authorizeParams(client, redirect, "tools:read")
	q.Set("response_type", "token")
	resp, _ = h.get("/oauth/authorize?" + q.Encode())
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, redirect+"&") || !strings.Contains(loc, "error=unsupported_response_type") {
		t.Errorf("error redirect = %s; want %s followed by the error", loc, redirect)
	}
	for _, tt := range []struct{ redirect, want string }{
		{"https://c.example.com/cb", "https://c.example.com/cb?code=c&iss=https%3A%2F%2Fi.example.com%2Fx%3Fy%26z"},
		{"https://c.example.com/cb?", "https://c.example.com/cb?code=c&iss=https%3A%2F%2Fi.example.com%2Fx%3Fy%26z"},
		{"https://c.example.com/cb?k=v", "https://c.example.com/cb?k=v&code=c&iss=https%3A%2F%2Fi.example.com%2Fx%3Fy%26z"},
	} {
		if got := withParams(tt.redirect, url.Values{"code": {"c"}, "state": {""}, "iss": {"https://i.example.com/x?y&z"}}); got != tt.want {
			t.Errorf("withParams(%s) = %s; want %s", tt.redirect, got, tt.want)
		}
	}
}

// TestConcurrentRedemption: of concurrent requests redeeming one code (or
// one refresh token) with the right verifier, exactly one gets tokens; the
// others are replays, so the grant is revoked and the winner's access token
// is refused afterwards. On SQLite and PostgreSQL.
func TestConcurrentRedemption(t *testing.T) {
	t.Parallel()
	for _, backend := range storeBackends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			storeURL := storeURLOn(t, backend)
			h := newHarnessOn(t, storeURL, "", nil)
			const n = 6
			race := func(form url.Values) (winner map[string]any) {
				t.Helper()
				type answer struct {
					status int
					body   map[string]any
				}
				answers := make([]answer, n)
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						resp, m := h.postForm("/oauth/token", form)
						answers[i] = answer{resp.StatusCode, m}
					}()
				}
				wg.Wait()
				for _, a := range answers {
					switch {
					case a.status == 200 && winner == nil:
						winner = a.body
					case a.status == 200:
						t.Errorf("two concurrent redemptions succeeded: %v and %v", winner, a.body)
					case a.status != 400 || a.body["error"] != "invalid_grant":
						t.Errorf("losing redemption = %d %v; want 400 invalid_grant", a.status, a.body)
					}
				}
				if winner == nil {
					t.Fatalf("no concurrent redemption succeeded: %v", answers)
				}
				if _, err := h.srv.Verify(t.Context(), str(winner, "access_token"), testResource, nil); !isCode(err, CodeInvalidToken) {
					t.Errorf("Verify(winner's token after concurrent replays) = %v; want invalid_token", err)
				}
				return winner
			}
			race(codeForm("pre-public", h.code("pre-public", redirectCB, "tools:read offline_access"), redirectCB))
			m := h.tokens("pre-public", redirectCB, "tools:read offline_access")
			w := race(url.Values{"grant_type": {"refresh_token"}, "client_id": {"pre-public"}, "refresh_token": {str(m, "refresh_token")}})
			resp, e := h.postForm("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"pre-public"},
				"refresh_token": {str(w, "refresh_token")}})
			if resp.StatusCode != 400 || e["error"] != "invalid_grant" {
				t.Errorf("refresh with the winner's refresh token = %d %v; want invalid_grant (grant revoked)", resp.StatusCode, e)
			}
		})
	}
}

// TestOddBytesAreRefused: NUL, invalid UTF-8 and control characters in
// client_id, state and client_name are client errors, not a 500 from the
// database (PostgreSQL refuses them in text) and not stored for display.
func TestOddBytesAreRefused(t *testing.T) {
	t.Parallel()
	for _, backend := range storeBackends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			storeURL := storeURLOn(t, backend)
			h := newHarnessOn(t, storeURL, "", nil)
			for _, odd := range []string{"a\x00b", "\xff", "a\nb"} {
				q := authorizeParams(odd, redirectCB, "tools:read")
				if resp, b := h.get("/oauth/authorize?" + q.Encode()); resp.StatusCode != 400 || !strings.Contains(string(b), "invalid_client") {
					t.Errorf("authorize with client_id %q = %d %s; want a 400 page with invalid_client", odd, resp.StatusCode, b)
				}
				for _, path := range []string{"/oauth/token", "/oauth/revoke", "/oauth/introspect"} {
					f := url.Values{"grant_type": {"refresh_token"}, "client_id": {odd}, "refresh_token": {"x"}, "token": {"x"}}
					if resp, m := h.postForm(path, f); resp.StatusCode != 401 || m["error"] != "invalid_client" {
						t.Errorf("%s with client_id %q = %d %v; want 401 invalid_client", path, odd, resp.StatusCode, m)
					}
				}
				q = authorizeParams("pre-public", redirectCB, "tools:read")
				q.Set("state", odd)
				resp, _ := h.get("/oauth/authorize?" + q.Encode())
				loc, _ := url.Parse(resp.Header.Get("Location"))
				if resp.StatusCode != 302 || !strings.HasPrefix(loc.String(), redirectCB+"?") || loc.Query().Get("error") != "invalid_request" ||
					loc.Query().Has("state") || loc.Query().Get("iss") != h.issuer {
					t.Errorf("authorize with state %q = %d %s; want invalid_request redirected, without the state", odd, resp.StatusCode, loc)
				}
			}
			for _, name := range []string{"a\u0000b", "evil\u202egood", "tab\there"} {
				resp, b := h.postJSON("/oauth/register", map[string]any{"redirect_uris": []string{redirectCB}, "client_name": name})
				if resp.StatusCode != 400 || !strings.Contains(string(b), "invalid_client_metadata") {
					t.Errorf("register with client_name %q = %d %s; want 400 invalid_client_metadata", name, resp.StatusCode, b)
				}
			}
			// Printable state and names, Unicode included, still pass.
			q := authorizeParams("pre-public", redirectCB, "tools:read")
			q.Set("state", "s-ü {\"a\":1}")
			h.handle(q)
			h.registerPublic(redirectCB)
		})
	}
}

// TestVerifierFormat: a verifier whose S256 matches the challenge is still
// refused unless it is 43 to 128 unreserved characters (RFC 7636 §4.1).
func TestVerifierFormat(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "", nil)
	for _, tt := range []struct {
		verifier string
		ok       bool
	}{
		{strings.Repeat("a", 42), false},
		{strings.Repeat("a", 129), false},
		{strings.Repeat("a", 42) + "+", false},
		{strings.Repeat("a", 42) + " ", false},
		{strings.Repeat("a", 42) + "é", false},
		{strings.Repeat("a", 43), true},
		{strings.Repeat("-._~", 32), true},
	} {
		q := authorizeParams("pre-public", redirectCB, "tools:read")
		q.Set("code_challenge", challengeOf(tt.verifier))
		code := h.approve(h.handle(q), "user-1", nil).Query().Get("code")
		f := codeForm("pre-public", code, redirectCB)
		f.Set("code_verifier", tt.verifier)
		resp, m := h.postForm("/oauth/token", f)
		if got := resp.StatusCode == 200; got != tt.ok || (!tt.ok && m["error"] != "invalid_grant") {
			t.Errorf("token with verifier %q (%d chars) = %d %v; want success %v", tt.verifier, len(tt.verifier), resp.StatusCode, m, tt.ok)
		}
	}
}

// storeBackends are the databases the tests of concurrent store writes
// run on.
var storeBackends = []string{"sqlite", "postgres", "mysql"}

// storeURLOn is a fresh database of backend, for one test.
func storeURLOn(t *testing.T, backend string) string {
	t.Helper()
	switch backend {
	case "postgres":
		return pgtest.URL(t)
	case "mysql":
		return mysqltest.URL(t)
	}
	return filepath.Join(t.TempDir(), "kavach.db")
}
