package oauth

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
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

	cfg := Config{Issuer: "https://a.example", LoginPage: "/l", AllowedResources: []string{testResource},
		AdditionalClaims: map[string]any{"exp": 1}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"exp"`) {
		t.Errorf("Validate with a reserved claim = %v; want it refused", err)
	}
}
