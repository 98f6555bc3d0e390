package oauth

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A client given scopes (KavachOS's client scope) may ask only for those,
// and gets them when it asks for none.
func TestClientScopesLimitTheRequest(t *testing.T) {
	t.Parallel()
	const redirect = "https://client.example.com/cb"
	h := newHarness(t, "", func(c *Config) {
		c.PreRegisteredClients = append(c.PreRegisteredClients,
			Client{ID: "narrow", RedirectURIs: []string{redirect}, Scopes: []string{"tools:read", ScopeOfflineAccess}})
	})
	// Asked for nothing: the client's scopes, offline_access included.
	if m := h.tokens("narrow", redirect, ""); str(m, "scope") != "tools:read offline_access" || str(m, "refresh_token") == "" {
		t.Errorf("no scope asked: token %v; want the client's scopes and a refresh token", m)
	}
	if m := h.tokens("narrow", redirect, "tools:read"); str(m, "scope") != "tools:read" {
		t.Errorf("token scope = %q; want tools:read", str(m, "scope"))
	}
	// A configured scope the client was not given: refused at the redirect.
	resp, _ := h.get("/oauth/authorize?" + authorizeParams("narrow", redirect, "tools:read tools:write").Encode())
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, redirect) || !strings.Contains(loc, "error=invalid_scope") {
		t.Errorf("authorize beyond the client's scopes = %d %q; want a redirect with invalid_scope", resp.StatusCode, loc)
	}
	// Other clients keep every scope.
	if m := h.tokens("pre-public", redirect, "tools:write"); str(m, "scope") != "tools:write" {
		t.Errorf("unlimited client: scope %q", str(m, "scope"))
	}
}

// Additional claims ride in every access token; the token still verifies,
// and a claim Kavach sets is never replaced.
func TestAdditionalClaimsInAccessTokens(t *testing.T) {
	t.Parallel()
	const redirect = "https://client.example.com/cb"
	h := newHarness(t, "", func(c *Config) {
		c.AdditionalClaims = map[string]any{"tenant": "acme", "tier": 2, "roles": []any{"a", "b"}}
	})
	m := h.tokens("pre-public", redirect, "tools:read")
	parts := strings.Split(str(m, "access_token"), ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q is not a JWT", str(m, "access_token"))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	if claims["tenant"] != "acme" || claims["tier"] != float64(2) || len(claims["roles"].([]any)) != 2 {
		t.Errorf("claims = %v; want tenant, tier and roles added", claims)
	}
	if claims["sub"] != "user-1" || claims["scope"] != "tools:read" || claims["client_id"] != "pre-public" || claims["iss"] != h.issuer {
		t.Errorf("claims = %v; want Kavach's own claims untouched", claims)
	}
	c, err := h.srv.Verify(t.Context(), str(m, "access_token"), testResource, []string{"tools:read"})
	if err != nil || c.Subject != "user-1" {
		t.Errorf("Verify = %+v, %v; want the token accepted", c, err)
	}

	// Reserved names in any case, and names a JSON decoder folds into
	// one (ſ is s, U+212A is K), are refused.
	for _, name := range []string{"exp", "SUB", "Scope", "ſub", "\u212Aavach_agent", "iſs", "", "a b"} {
		cfg := Config{Issuer: "https://a.example", LoginPage: "/l", AllowedResources: []string{testResource},
			AdditionalClaims: map[string]any{name: 1}}
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate with additional claim %q = nil; want it refused", name)
		}
	}
}

// A refresh never mints a scope the client's configured scopes no longer
// hold.
func TestRefreshKeepsToTheClientScopes(t *testing.T) {
	t.Parallel()
	const redirect = "https://client.example.com/cb"
	dir := t.TempDir()
	db := dir + "/kavach.db"
	client := Client{ID: "narrowing", RedirectURIs: []string{redirect}, Scopes: []string{"tools:read", "tools:write", ScopeOfflineAccess}}
	h := newHarnessOn(t, db, "", func(c *Config) { c.PreRegisteredClients = append(c.PreRegisteredClients, client) })
	m := h.tokens("narrowing", redirect, "tools:read tools:write offline_access")
	refresh := str(m, "refresh_token")
	h.ts.Close()
	// The operator narrows the client; the same database, a new server.
	client.Scopes = []string{"tools:read", ScopeOfflineAccess}
	h2 := newHarnessOn(t, db, "", func(c *Config) { c.PreRegisteredClients = append(c.PreRegisteredClients, client) })
	resp, out := h2.postForm("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"narrowing"}, "refresh_token": {refresh}})
	if resp.StatusCode != http.StatusOK || str(out, "scope") != "tools:read offline_access" {
		t.Errorf("refresh after narrowing = %d %v; want 200 with tools:read offline_access only", resp.StatusCode, out)
	}
	resp, out = h2.postForm("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"narrowing"},
		"refresh_token": {str(out, "refresh_token")}, "scope": {"tools:write"}})
	if resp.StatusCode != http.StatusBadRequest || str(out, "error") != "invalid_scope" {
		t.Errorf("refresh asking for a scope the client lost = %d %v; want 400 invalid_scope", resp.StatusCode, out)
	}
}
