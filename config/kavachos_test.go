package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// KavachOS's mcp section loads as written: scopes as a list of names (with
// scopePermissions for what each grants), clients with clientName and
// scope, and static additional claims.
func TestMCPTakesKavachOSForms(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := 0
	load := func(body string) (Config, error) {
		t.Helper()
		n++
		p := filepath.Join(dir, strings.Repeat("c", n)+".yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p)
		if err == nil {
			err = c.Validate()
		}
		return c, err
	}
	const head = "mcp:\n  enabled: true\n  issuer: https://auth.example.com\n  loginPage: /login\n  allowedResources: [https://mcp.example.com/mcp]\n"
	c, err := load(head + `  scopes: [mcp:read, mcp:write, profile]
  scopePermissions:
    mcp:read: [{resource: "mcp:github:*", actions: [read], constraints: {maxCallsPerHour: 5}}]
    mcp:write: [{resource: "mcp:github:*", actions: [write]}]
  additionalClaims: {tenant: acme, tier: 2}
  preRegisteredClients:
    - clientId: cli
      clientName: Kavach CLI
      redirectUris: ["http://127.0.0.1/cb"]
      scope: mcp:read offline_access
`)
	if err != nil {
		t.Fatal(err)
	}
	oc := c.MCP.OAuth()
	if len(oc.Scopes) != 3 || len(oc.Scopes["profile"]) != 0 || oc.Scopes["mcp:write"][0].Actions[0] != "write" {
		t.Errorf("scopes = %+v; want mcp:read, mcp:write with their permissions and profile with none", oc.Scopes)
	}
	if v, ok := oc.Scopes["mcp:read"][0].Constraints["maxCallsPerHour"].(float64); !ok || v != 5 {
		t.Errorf("scope constraint = %#v; want float64 5", oc.Scopes["mcp:read"][0].Constraints["maxCallsPerHour"])
	}
	cl := oc.PreRegisteredClients[0]
	if cl.Name != "Kavach CLI" || !slices.Equal(cl.Scopes, []string{"mcp:read", "offline_access"}) {
		t.Errorf("client = %+v; want the name from clientName and the scopes from scope", cl)
	}
	if oc.AdditionalClaims["tenant"] != "acme" || len(oc.AdditionalClaims) != 2 {
		t.Errorf("additional claims = %v", oc.AdditionalClaims)
	}

	for _, bad := range []struct{ body, want string }{
		{head + "  scopes: [a, b, a]\n", `mcp.scopes lists "a" twice`},
		{head + "  scopes: [a]\n  scopePermissions: {b: []}\n", `mcp.scopePermissions.b: mcp.scopes has no scope "b"`},
		{head + "  scopes: {a: [{resource: x, actions: [read]}]}\n  scopePermissions: {a: [{resource: y, actions: [read]}]}\n",
			"mcp.scopePermissions.a: mcp.scopes gives \"a\" permissions already"},
		{head + "  scopes: [\"bad scope\"]\n", "scope"},
		{head + "  additionalClaims: {sub: someone-else}\n", `additional claim "sub" is one the server sets itself`},
		{head + "  claimsWebhook: {url: http://claims.example.com/x, secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}\n", "mcp.claimsWebhook.url must be https"},
		{head + "  claimsWebhook: {url: https://claims.example.com/x}\n", "mcp.claimsWebhook: a secret is required"},
		{head + "  additionalClaims: {kavach_agent: agt_x}\n", `additional claim "kavach_agent"`},
		{head + "  additionalClaims: {aud: https://elsewhere}\n", `additional claim "aud"`},
		{head + "  scopes: [a]\n  preRegisteredClients:\n    - {clientId: c, redirectUris: [\"http://127.0.0.1/cb\"], scope: \"a b\"}\n",
			`client c: scope "b" is not among the configured scopes`},
		{head + "  preRegisteredClients:\n    - {clientId: c, name: x, clientName: y, redirectUris: [\"http://127.0.0.1/cb\"]}\n",
			"mcp.preRegisteredClients[0]: name and clientName differ"},
	} {
		if _, err := load(bad.body); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("config %q: %v; want an error about %s", bad.body, err, bad.want)
		}
	}
}
