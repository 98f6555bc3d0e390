package sidecar_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/access"
	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/service"
)

// call is one request to a route.
type call struct {
	method, path, body, contentType string
}

// routeCalls builds, for every route of the API, a request that succeeds
// for a caller the policy lets through. Mutating routes get a fresh target
// on every call. A route missing here fails TestEveryRouteByEveryRole, so
// the table cannot go stale.
func routeCalls(t *testing.T, e *oauthEnv, self api.AgentWithToken) map[string]func() call {
	ctx := t.Context()
	var n atomic.Int64
	agent := func() api.AgentWithToken {
		return e.create(t, api.CreateAgentRequest{OwnerID: fmt.Sprintf("route-owner-%d", n.Add(1)), Name: "target",
			Permissions: []api.Permission{perm("mcp:github:*", "read"),
				{Resource: "mcp:deploy:*", Actions: []string{"execute"}, Constraints: map[string]any{"requireApproval": true}}}})
	}
	shared := agent()
	approval := func() string {
		res, err := e.cl.Authorize(ctx, api.AuthorizeRequest{AgentID: shared.ID, Action: "execute",
			Resource: fmt.Sprintf("mcp:deploy:env-%d", n.Add(1))}, "")
		if err != nil || res.ApprovalID == "" {
			t.Fatalf("authorize under requireApproval = %+v, %v; want an approval", res, err)
		}
		return res.ApprovalID
	}
	delegation := func() string {
		to := agent()
		exp := time.Now().Add(time.Hour).UTC()
		d, err := e.cl.Delegate(ctx, api.DelegateRequest{FromAgent: shared.ID, ToAgent: to.ID,
			Permissions: []api.Permission{perm("mcp:github:issues", "read")}, ExpiresAt: api.NewTimePtr(&exp)})
		if err != nil {
			t.Fatalf("Delegate = %v", err)
		}
		return d.ID
	}
	key := func() string {
		k, err := e.cl.CreateKey(ctx, api.CreateKeyRequest{Name: "target", Roles: []string{"auditor"}})
		if err != nil {
			t.Fatalf("CreateKey = %v", err)
		}
		return k.ID
	}
	sharedApproval, sharedDelegation, sharedKey := approval(), delegation(), key()
	accessToken := e.accessToken(t, "route-user", mcpResource)
	get := func(path string) func() call { return func() call { return call{method: "GET", path: path} } }
	post := func(path func() string, body string) func() call {
		return func() call { return call{method: "POST", path: path(), body: body, contentType: "application/json"} }
	}
	fixed := func(s string) func() string { return func() string { return s } }
	form := func(path, body string) func() call {
		return func() call {
			return call{method: "POST", path: path, body: body, contentType: "application/x-www-form-urlencoded"}
		}
	}
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	calls := map[string]func() call{
		"agents.create": post(fixed("/v1/agents"), `{"ownerId":"route-created","name":"n"}`),
		"agents.list":   get("/v1/agents"),
		"agents.get":    get("/v1/agents/" + shared.ID),
		"agents.update": func() call {
			return call{"PATCH", "/v1/agents/" + agent().ID, `{"name":"renamed"}`, "application/json"}
		},
		"agents.rotate":                post(func() string { return "/v1/agents/" + agent().ID + "/rotate" }, ""),
		"agents.revoke":                post(func() string { return "/v1/agents/" + agent().ID + "/revoke" }, ""),
		"agents.resume":                post(func() string { return "/v1/agents/" + agent().ID + "/resume" }, ""),
		"agents.trust":                 get("/v1/agents/" + shared.ID + "/trust"),
		"anomalies.list":               get("/v1/anomalies"),
		"events.stream":                get("/v1/events?follow=false"),
		"webhooks.deliveries":          get("/v1/webhooks/deliveries"),
		"agents.delegations":           get("/v1/agents/" + shared.ID + "/delegations"),
		"agents.effective_permissions": get("/v1/agents/" + self.ID + "/effective-permissions"),
		"authorize":                    nil, // depends on the caller: see below
		"delegations.create": post(fixed("/v1/delegations"), `{"fromAgent":"`+shared.ID+`","toAgent":"`+self.ID+`",`+
			`"permissions":[{"resource":"mcp:github:issues","actions":["read"]}],"expiresAt":"`+exp+`"}`),
		"delegations.get":        get("/v1/delegations/" + sharedDelegation),
		"delegations.revoke":     post(func() string { return "/v1/delegations/" + delegation() + "/revoke" }, ""),
		"approvals.list":         get("/v1/approvals"),
		"approvals.get":          get("/v1/approvals/" + sharedApproval),
		"approvals.approve":      post(func() string { return "/v1/approvals/" + approval() + "/approve" }, `{"onBehalfOf":"alice"}`),
		"approvals.deny":         post(func() string { return "/v1/approvals/" + approval() + "/deny" }, `{}`),
		"keys.create":            post(fixed("/v1/keys"), `{"name":"k","roles":["decider"]}`),
		"keys.list":              get("/v1/keys"),
		"keys.get":               get("/v1/keys/" + sharedKey),
		"keys.revoke":            post(func() string { return "/v1/keys/" + key() + "/revoke" }, ""),
		"policies.get":           get("/v1/policies"),
		"bundle.get":             get("/v1/bundle"),
		"audit.query":            get("/v1/audit"),
		"audit.export":           get("/v1/audit/export?format=csv"),
		"health":                 get("/health"),
		"ready":                  get("/ready"),
		"metrics":                get("/metrics"),
		"oauth.requests.get":     func() call { return call{method: "GET", path: "/v1/oauth/requests/" + e.handle(t, mcpResource)} },
		"oauth.requests.approve": post(func() string { return "/v1/oauth/requests/" + e.handle(t, mcpResource) + "/approve" }, `{"userId":"route-user"}`),
		"oauth.requests.deny":    post(func() string { return "/v1/oauth/requests/" + e.handle(t, mcpResource) + "/deny" }, ""),
		"oauth.verify":           post(fixed("/v1/oauth/verify"), `{"token":"`+accessToken+`","resource":"`+mcpResource+`"}`),
		"oauth.keys.rotate":      post(fixed("/v1/oauth/keys/rotate"), ""),
		"oauth.register": post(fixed("/oauth/register"), `{"client_name":"c","redirect_uris":["`+redirectURI+`"],`+
			`"token_endpoint_auth_method":"none"}`),
		"oauth.authorize":         func() call { return call{method: "GET", path: "/oauth/authorize?client_id=" + e.clientID} },
		"oauth.token":             form("/oauth/token", "grant_type=authorization_code&code=nope&client_id="+e.clientID),
		"oauth.revoke":            form("/oauth/revoke", "token=nope&client_id="+e.clientID),
		"oauth.introspect":        form("/oauth/introspect", "token=nope&client_id="+e.clientID),
		"oauth.jwks":              get("/oauth/jwks"),
		"oauth.metadata":          get("/.well-known/oauth-authorization-server"),
		"oauth.resource_metadata": get("/.well-known/oauth-protected-resource/mcp"),
	}
	return calls
}

// principal is one kind of caller: its Authorization header and what the
// policy sees.
type principal struct {
	name  string
	auth  string
	typ   string
	roles []string
}

// TestEveryRouteByEveryRole walks every route the router has, as every
// role, an agent and a caller without credential, and checks the answer is
// what the API policy decides: 401 with a Bearer challenge without a
// credential, 403 for a wrong role, success for a right one.
func TestEveryRouteByEveryRole(t *testing.T) {
	t.Parallel()
	e := newOAuthEnv(t, service.Options{}, nil)
	ctx := t.Context()
	pol, err := access.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	self := e.create(t, api.CreateAgentRequest{OwnerID: "route-self", Name: "self",
		Permissions: []api.Permission{perm("mcp:github:*", "read")}})
	principals := []principal{{name: "no credential", typ: access.Anonymous},
		{name: "agent token", auth: "Bearer " + self.Token, typ: access.Agent}}
	for _, role := range pol.Roles() {
		k, err := e.cl.CreateKey(ctx, api.CreateKeyRequest{Name: "role-" + role, Roles: []string{role}})
		if err != nil {
			t.Fatal(err)
		}
		principals = append(principals, principal{name: role, auth: "Bearer " + k.Key, typ: access.Key, roles: []string{role}})
	}
	calls := routeCalls(t, e, self)
	seen := map[string]bool{}
	for _, rt := range e.srv.Routes() {
		if seen[rt.Name] {
			continue // the metadata documents are served at several paths
		}
		seen[rt.Name] = true
		build, ok := calls[rt.Name]
		if !ok {
			t.Errorf("route %s (%s) has no case in routeCalls: add one", rt.Name, rt.Pattern)
			continue
		}
		for _, p := range principals {
			t.Run(rt.Name+"/"+p.name, func(t *testing.T) {
				c := call{}
				if rt.Name == "authorize" {
					c = call{"POST", "/v1/authorize", `{"agentId":"` + self.ID + `","action":"read","resource":"mcp:github:repos"}`, "application/json"}
					if p.typ == access.Agent {
						c.body = `{"action":"read","resource":"mcp:github:repos"}`
					}
				} else {
					c = build()
				}
				status, header, body := rawCall(t, e.url, c, p.auth)
				checkAnswer(t, pol.Decide(rt.Name, p.typ, p.roles), pol.Public(rt.Name), p, c, status, header, body)
			})
		}
	}
	for name := range calls {
		if !seen[name] {
			t.Errorf("routeCalls has %s, which the router does not serve", name)
		}
	}
}

// With MCP off, /v1/oauth/… says so to any key holder, and still asks the
// rest for a credential.
func TestOAuthDisabledRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	c := call{method: "GET", path: "/v1/oauth/requests/x"}
	if status, header, _ := rawCall(t, e.url, c, ""); status != http.StatusUnauthorized || header.Get("WWW-Authenticate") == "" {
		t.Errorf("GET %s without credential = %d; want 401 with a challenge", c.path, status)
	}
	if status, _, body := rawCall(t, e.url, c, "Bearer "+testAdminKey); status != http.StatusNotFound || errorCode(t, body) != "mcp_disabled" {
		t.Errorf("GET %s as admin = %d %s; want 404 mcp_disabled", c.path, status, body)
	}
}

func checkAnswer(t *testing.T, d access.Decision, public bool, p principal, c call, status int, header http.Header, body []byte) {
	t.Helper()
	code := errorCode(t, body)
	switch {
	case public:
		// The OAuth endpoints answer by their RFCs (a bad code is 400, an
		// unauthenticated client 401 invalid_client), never with our guard.
		if status >= 500 || code == "unauthenticated" || code == "forbidden" {
			t.Errorf("%s %s as %s = %d %s; want the endpoint's own answer", c.method, c.path, p.name, status, body)
		}
	case !d.Allow && p.typ == access.Anonymous:
		if status != http.StatusUnauthorized || code != "unauthenticated" || !strings.HasPrefix(header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s as %s = %d %s (WWW-Authenticate %q); want 401 unauthenticated with a Bearer challenge",
				c.method, c.path, p.name, status, body, header.Get("WWW-Authenticate"))
		}
	case !d.Allow:
		if status != http.StatusForbidden || code != "forbidden" {
			t.Errorf("%s %s as %s = %d %s; want 403 forbidden", c.method, c.path, p.name, status, body)
		}
	default:
		if status < 200 || status > 299 {
			t.Errorf("%s %s as %s = %d %s; want 2xx (the policy allows it: %s)", c.method, c.path, p.name, status, body, d.Code)
		}
	}
}

// rawCall makes one request with auth as its Authorization header ("" for
// none), without following redirects.
func rawCall(t *testing.T, base string, c call, auth string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, c.method, base+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	resp, err := (&http.Transport{}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}
