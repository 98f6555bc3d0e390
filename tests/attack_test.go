package tests

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

// guardResult is the answer to one raw HTTP call.
type guardResult struct {
	status int
	header http.Header
	body   []byte
	code   string // the error body's code, if any
}

// guardCall sends method path to s over raw HTTP: authorization, if set,
// is the whole Authorization header; body, if set, goes as JSON.
func guardCall(t *testing.T, s *sidecar, method, path, authorization string, body any) guardResult {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb api.ErrorBody
	_ = json.Unmarshal(b, &eb)
	return guardResult{status: resp.StatusCode, header: resp.Header, body: b, code: eb.Error.Code}
}

// ownDecision is the decision an agent asks for itself: POST /v1/authorize
// with its token as the bearer and no agentId.
func ownDecision(t *testing.T, s *sidecar, token, action, resource string) (guardResult, api.AuthorizeResponse) {
	t.Helper()
	r := guardCall(t, s, http.MethodPost, "/v1/authorize", "Bearer "+token, map[string]string{"action": action, "resource": resource})
	var d api.AuthorizeResponse
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &d); err != nil {
			t.Fatalf("decision %s: %v", r.body, err)
		}
	}
	return r, d
}

// refusedCall is what the audit trail must hold for one refused call.
type refusedCall struct {
	route     string
	actorType string
	actorID   string
	status    int
	code      string
}

func (r refusedCall) String() string {
	return fmt.Sprintf("%s by %s %q: %d %s", r.route, r.actorType, r.actorID, r.status, r.code)
}

// waitForRefusals polls the audit log (refusals are written in the
// background) until it holds at least n api.refused rows, and returns
// them.
func waitForRefusals(t *testing.T, admin *client.Client, n int) []api.AuditEntry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, err := admin.QueryAudit(t.Context(), client.AuditFilter{Kind: "event", Action: "api.refused", Limit: 1000})
		if err != nil {
			t.Fatalf("audit query: %v", err)
		}
		if len(page.Entries) >= n || time.Now().After(deadline) {
			return page.Entries
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// refusalsOf turns audit rows into refusedCalls, sorted, to compare with
// what the test expects as multisets.
func refusalsOf(t *testing.T, rows []api.AuditEntry) []string {
	t.Helper()
	var out []string
	for _, e := range rows {
		var ch struct {
			Status int `json:"status"`
		}
		if err := json.Unmarshal(e.Changes, &ch); err != nil {
			t.Errorf("api.refused row %s: changes %s: %v", e.ID, e.Changes, err)
		}
		if e.Kind != "event" || e.Result != "denied" {
			t.Errorf("api.refused row %s: kind %q, result %q; want event, denied", e.ID, e.Kind, e.Result)
		}
		out = append(out, refusedCall{route: e.Resource, actorType: e.Actor.Type, actorID: e.Actor.ID, status: ch.Status, code: e.Code}.String())
	}
	slices.Sort(out)
	return out
}

func sortedStrings(calls []refusedCall) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.String()
	}
	slices.Sort(out)
	return out
}

// refusedMetric reads kavach_api_refused_total{status,code} from /metrics.
func refusedMetric(t *testing.T, s *sidecar, status int, code string) int {
	t.Helper()
	r := guardCall(t, s, http.MethodGet, "/metrics", "Bearer "+adminKey, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics as admin = %d %s; want 200", r.status, r.body)
	}
	prefix := fmt.Sprintf("kavach_api_refused_total{status=%q,code=%q} ", strconv.Itoa(status), code)
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("metric line %q: %v", sc.Text(), err)
			}
			return n
		}
	}
	return 0
}

// attackVerifier is the PKCE verifier of every consent request the
// attack tests start.
var attackVerifier = strings.Repeat("v", 50)

// deployScope is an MCP scope granting deploys anywhere.
const deployScope = `tools:deploy:
      - {resource: "mcp:deploy:*", actions: [execute]}`

// mcpSidecar starts a sidecar with the MCP authorization server on its
// main listener and the given scopes (YAML under mcp.scopes), and returns
// it and its issuer.
func mcpSidecar(t *testing.T, scopes string) (*sidecar, string) {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf(`
secret: `+mcpSecret+`
mcp:
  enabled: true
  issuer: %s
  scopes:
    %s
  allowedResources: [%s]
  loginPage: https://app.example.test/login
`, issuer, scopes, mcpResource))
	return start(t, "--database", filepath.Join(dir, "k.db"), "--config", cfg, "--addr", fmt.Sprintf("127.0.0.1:%d", port)), issuer
}

// consentRequest registers a public client and starts an authorization
// request as an MCP client would; it returns the client and the request
// handle the login page gets, which whoever follows the redirect holds.
func consentRequest(t *testing.T, issuer string) (clientID, handle string) {
	t.Helper()
	var reg struct {
		ClientID string `json:"client_id"`
	}
	postJSON(t, http.DefaultClient, issuer+"/oauth/register", map[string]any{"client_name": "attacker's MCP client",
		"redirect_uris": []string{"http://127.0.0.1/cb"}, "token_endpoint_auth_method": "none"}, http.StatusCreated, &reg)
	sum := sha256.Sum256([]byte(attackVerifier))
	q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {"http://127.0.0.1:4567/cb"},
		"scope": {"tools:deploy"}, "state": {"st"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "resource": {mcpResource}}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(issuer + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	login, _ := url.Parse(resp.Header.Get("Location"))
	handle = login.Query().Get("request")
	if resp.StatusCode != http.StatusFound || handle == "" {
		t.Fatalf("authorize = %d to %q; want 302 to the login page with a request handle", resp.StatusCode, login)
	}
	return reg.ClientID, handle
}

// TestAttackerHoldingOnlyItsOwnToken plays the attacker against the real
// binary: an agent holding only its own token (and, the same, a caller
// with no credential at all) tries each attack on the API. Every one is
// refused (403 forbidden for the token, 401 unauthenticated with a Bearer
// challenge for none), changes nothing, is audited as api.refused with its
// route and actor, and is counted in /metrics; the agent's own decisions
// and its own effective permissions still work.
func TestAttackerHoldingOnlyItsOwnToken(t *testing.T) {
	t.Parallel()
	// MCP is on, so the consent API the attacker tries to abuse exists.
	s, issuer := mcpSidecar(t, deployScope)
	admin := s.adminClient()
	ctx := t.Context()

	// The victim holds what the attacker wants: deploys anywhere.
	victim, err := admin.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "victim-user", Name: "deployer",
		Permissions: []api.Permission{{Resource: "mcp:deploy:*", Actions: []string{"execute"}}}})
	if err != nil {
		t.Fatal(err)
	}
	// The attacker reads GitHub, and deploys production only with a
	// human's approval.
	attackerPerms := []api.Permission{
		{Resource: "mcp:github:*", Actions: []string{"read"}},
		{Resource: "mcp:deploy:production", Actions: []string{"execute"}, Constraints: map[string]any{"requireApproval": true}},
	}
	attacker, err := admin.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "user-123", Name: "reader", Permissions: attackerPerms})
	if err != nil {
		t.Fatal(err)
	}
	attackerPerms = attacker.Permissions // as the sidecar stores them
	agentsBefore, err := admin.ListAgents(ctx, client.AgentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	keysBefore, err := admin.ListKeys(ctx, client.Page{})
	if err != nil {
		t.Fatal(err)
	}

	// Its own approval request, pending a human.
	r, opened := ownDecision(t, s, attacker.Token, "execute", "mcp:deploy:production")
	if r.status != http.StatusOK || opened.Code != "approval_required" || opened.ApprovalID == "" {
		t.Fatalf("attacker's deploy to production = %d %s; want approval_required with an approvalId", r.status, r.body)
	}
	approvalID := opened.ApprovalID

	// A consent request, started as an MCP client would: the attacker
	// follows the redirect and so holds the request's handle.
	_, handle := consentRequest(t, issuer)

	// Checks that an attack changed nothing.
	decisionOf := func(t *testing.T, action, resource string) string {
		t.Helper()
		r, d := ownDecision(t, s, attacker.Token, action, resource)
		if r.status != http.StatusOK {
			t.Fatalf("attacker's own %s on %s = %d %s; want 200", action, resource, r.status, r.body)
		}
		return d.Code
	}
	permissionsUnchanged := func(t *testing.T) {
		t.Helper()
		a, err := admin.GetAgent(ctx, attacker.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a.Permissions, attackerPerms) {
			t.Errorf("attacker's permissions = %+v; want unchanged %+v", a.Permissions, attackerPerms)
		}
		if code := decisionOf(t, "write", "mcp:anything"); code != "no_permission" {
			t.Errorf("attacker's write on mcp:anything = %s; want no_permission", code)
		}
	}
	noNewAgent := func(t *testing.T) {
		t.Helper()
		agents, err := admin.ListAgents(ctx, client.AgentFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(agents.Agents) != len(agentsBefore.Agents) {
			t.Errorf("agents = %d; want still %d", len(agents.Agents), len(agentsBefore.Agents))
		}
	}
	noDelegation := func(t *testing.T) {
		t.Helper()
		for _, id := range []string{victim.ID, attacker.ID} {
			if ds, err := admin.ListDelegations(ctx, id, client.Page{}); err != nil || len(ds.Delegations) != 0 {
				t.Errorf("delegations of %s = %+v, %v; want none", id, ds, err)
			}
		}
		if code := decisionOf(t, "execute", "mcp:deploy:staging"); code != "no_permission" {
			t.Errorf("attacker's deploy to staging = %s; want no_permission", code)
		}
	}
	// The victim's token still reads its own agent: it was not rotated.
	victimTokenValid := func(t *testing.T) {
		t.Helper()
		r := guardCall(t, s, http.MethodGet, "/v1/agents/"+victim.ID+"/effective-permissions", "Bearer "+victim.Token, nil)
		if r.status != http.StatusOK {
			t.Errorf("victim's own effective permissions with its token = %d %s; want 200 (the token was not rotated)", r.status, r.body)
		}
	}
	approvalPending := func(t *testing.T) {
		t.Helper()
		a, err := admin.GetApproval(ctx, approvalID)
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != "pending" || a.RespondedBy != "" || a.OnBehalfOf != "" {
			t.Errorf("approval after the attack = %+v; want still pending, unanswered", a)
		}
		if code := decisionOf(t, "execute", "mcp:deploy:production"); code != "approval_required" {
			t.Errorf("attacker's deploy to production = %s; want approval_required still", code)
		}
	}
	consentPending := func(t *testing.T) {
		t.Helper()
		r := guardCall(t, s, http.MethodGet, "/v1/oauth/requests/"+handle, "Bearer "+adminKey, nil)
		var p struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(r.body, &p); r.status != http.StatusOK || err != nil || p.Status != "pending" {
			t.Errorf("consent request after the attack = %d %s; want 200, status pending", r.status, r.body)
		}
		if agents, err := admin.ListAgents(ctx, client.AgentFilter{OwnerID: "victim-user"}); err != nil || len(agents.Agents) != 1 {
			t.Errorf("agents of victim-user = %d, %v; want only the victim (no grant agent)", len(agents.Agents), err)
		}
	}
	noNewKey := func(t *testing.T) {
		t.Helper()
		if keys, err := admin.ListKeys(ctx, client.Page{}); err != nil || len(keys.Keys) != len(keysBefore.Keys) {
			t.Errorf("API keys = %d, %v; want still %d", len(keys.Keys), err, len(keysBefore.Keys))
		}
	}
	noVictimDecision := func(t *testing.T) {
		t.Helper()
		page, err := admin.QueryAudit(ctx, client.AuditFilter{Kind: "decision", AgentID: victim.ID})
		if err != nil || len(page.Entries) != 0 {
			t.Errorf("decisions of the victim = %+v, %v; want none", page.Entries, err)
		}
	}
	everything := []map[string]any{{"resource": "*", "actions": []string{"*"}}}
	inAnHour := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)

	attacks := []struct {
		name, method, path string
		body               any
		route              string
		unchanged          func(*testing.T)
	}{
		{"list every agent", http.MethodGet, "/v1/agents", nil, "agents.list", nil},
		{"grant itself everything", http.MethodPatch, "/v1/agents/" + attacker.ID,
			map[string]any{"permissions": everything}, "agents.update", permissionsUnchanged},
		{"create an agent for any owner", http.MethodPost, "/v1/agents",
			map[string]any{"ownerId": "victim-user", "name": "sleeper", "permissions": everything}, "agents.create", noNewAgent},
		{"delegate everything from the victim to itself", http.MethodPost, "/v1/delegations",
			map[string]any{"fromAgent": victim.ID, "toAgent": attacker.ID, "permissions": everything, "expiresAt": inAnHour},
			"delegations.create", noDelegation},
		// A delegation the admin could make: refused for the caller, not
		// for its content.
		{"delegate the victim's deploys to itself", http.MethodPost, "/v1/delegations",
			map[string]any{"fromAgent": victim.ID, "toAgent": attacker.ID, "expiresAt": inAnHour,
				"permissions": []map[string]any{{"resource": "mcp:deploy:*", "actions": []string{"execute"}}}},
			"delegations.create", noDelegation},
		{"rotate the victim's token", http.MethodPost, "/v1/agents/" + victim.ID + "/rotate", nil, "agents.rotate", victimTokenValid},
		{"approve its own approval", http.MethodPost, "/v1/approvals/" + approvalID + "/approve",
			map[string]any{"respondedBy": "alice"}, "approvals.approve", approvalPending},
		{"approve an MCP consent for another user", http.MethodPost, "/v1/oauth/requests/" + handle + "/approve",
			map[string]any{"userId": "victim-user"}, "oauth.requests.approve", consentPending},
		{"read the audit log", http.MethodGet, "/v1/audit", nil, "audit.query", nil},
		{"export the audit log", http.MethodGet, "/v1/audit/export", nil, "audit.export", nil},
		{"read the bundle", http.MethodGet, "/v1/bundle", nil, "bundle.get", nil},
		{"create an admin key", http.MethodPost, "/v1/keys",
			map[string]any{"name": "x", "roles": []string{"admin"}}, "keys.create", noNewKey},
		{"read the metrics", http.MethodGet, "/metrics", nil, "metrics", nil},
		{"ask for the victim's decision", http.MethodPost, "/v1/authorize",
			map[string]any{"agentId": victim.ID, "action": "execute", "resource": "mcp:deploy:staging"}, "authorize", noVictimDecision},
		{"read the victim's effective permissions", http.MethodGet, "/v1/agents/" + victim.ID + "/effective-permissions",
			nil, "agents.effective_permissions", nil},
	}
	callers := []struct {
		name          string
		authorization string
		status        int
		code          string
		actor         api.Actor
	}{
		{"own agent token", "Bearer " + attacker.Token, http.StatusForbidden, "forbidden", api.Actor{Type: "agent", ID: attacker.ID}},
		{"no credential", "", http.StatusUnauthorized, "unauthenticated", api.Actor{Type: "anonymous"}},
	}
	var want []refusedCall
	for _, a := range attacks {
		for _, c := range callers {
			t.Run(a.name+"/"+c.name, func(t *testing.T) {
				r := guardCall(t, s, a.method, a.path, c.authorization, a.body)
				if r.status != c.status || r.code != c.code {
					t.Errorf("%s %s = %d %s; want %d %s", a.method, a.path, r.status, r.body, c.status, c.code)
				}
				challenge := r.header.Get("WWW-Authenticate")
				if c.status == http.StatusUnauthorized && challenge != `Bearer realm="kavach"` {
					t.Errorf("WWW-Authenticate = %q; want Bearer realm=\"kavach\"", challenge)
				}
				// A refusal tells the attacker nothing about the victim.
				if strings.Contains(string(r.body), victim.ID) || strings.Contains(string(r.body), "victim-user") {
					t.Errorf("refusal body %s names the victim", r.body)
				}
				if a.unchanged != nil {
					a.unchanged(t)
				}
			})
			want = append(want, refusedCall{route: a.route, actorType: c.actor.Type, actorID: c.actor.ID, status: c.status, code: c.code})
		}
	}
	// Stay within the audit budget, so every refusal has its own row.
	if len(want) > 60 {
		t.Fatalf("the test makes %d refusals; the audit budget is 60 a minute", len(want))
	}

	// The attacker's own decisions and its own effective permissions still
	// work with its token.
	if r, d := ownDecision(t, s, attacker.Token, "read", "mcp:github:repos"); r.status != http.StatusOK || !d.Allowed {
		t.Errorf("attacker's own read of mcp:github:repos = %d %s; want allowed", r.status, r.body)
	}
	r = guardCall(t, s, http.MethodGet, "/v1/agents/"+attacker.ID+"/effective-permissions", "Bearer "+attacker.Token, nil)
	var eff api.EffectivePermissions
	if err := json.Unmarshal(r.body, &eff); r.status != http.StatusOK || err != nil || eff.AgentID != attacker.ID ||
		len(eff.Permissions) != len(attackerPerms) {
		t.Errorf("attacker's own effective permissions = %d %s; want 200 with its %d permissions", r.status, r.body, len(attackerPerms))
	}
	// And nothing changed, all attacks taken together.
	permissionsUnchanged(t)
	noNewAgent(t)
	noDelegation(t)
	victimTokenValid(t)
	approvalPending(t)
	consentPending(t)
	noNewKey(t)

	// Every refusal is audited, with its route and who was refused.
	rows := waitForRefusals(t, admin, len(want))
	if got, w := refusalsOf(t, rows), sortedStrings(want); !slices.Equal(got, w) {
		t.Errorf("api.refused rows =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
	}
	for _, e := range rows {
		// A refused agent's rows are found by its ID and its owner's, as
		// its decisions are.
		if e.Actor.Type == "agent" && (e.AgentID != attacker.ID || e.OwnerID != attacker.OwnerID) {
			t.Errorf("api.refused row of %s by the attacker: agentId %q, ownerId %q; want %s, %s",
				e.Resource, e.AgentID, e.OwnerID, attacker.ID, attacker.OwnerID)
		}
		for _, secret := range []string{attacker.Token, victim.Token, handle} {
			if strings.Contains(e.Reason, secret) || strings.Contains(string(e.Changes), secret) {
				t.Errorf("api.refused row of %s holds a secret: %q", e.Resource, e.Reason)
			}
		}
	}
	if page, err := admin.QueryAudit(ctx, client.AuditFilter{Kind: "event", Action: "api.refused.suppressed"}); err != nil || len(page.Entries) != 0 {
		t.Errorf("api.refused.suppressed rows = %+v, %v; want none (within the budget)", page.Entries, err)
	}

	// And counted.
	for _, c := range callers {
		n := 0
		for _, w := range want {
			if w.status == c.status && w.code == c.code {
				n++
			}
		}
		if got := refusedMetric(t, s, c.status, c.code); got != n {
			t.Errorf("kavach_api_refused_total{status=%q,code=%q} = %d; want %d", strconv.Itoa(c.status), c.code, got, n)
		}
	}

	for _, secret := range []string{attacker.Token, victim.Token, adminKey, handle} {
		if strings.Contains(s.log(), secret) {
			t.Errorf("the sidecar's log holds the secret %.8s…", secret)
		}
	}
}

// TestBadCredentialsAreRefusedWithStableCodes sends bad credentials to a
// protected route: each is a 401 with a Bearer challenge and a stable code
// a client can act on (never a 500), is audited as an anonymous refusal,
// and no key or token ever reaches the sidecar's log.
func TestBadCredentialsAreRefusedWithStableCodes(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "k.db"))
	admin := s.adminClient()
	ctx := t.Context()

	newKey := func(name string, expires *time.Time) api.KeyWithSecret {
		t.Helper()
		k, err := admin.CreateKey(ctx, api.CreateKeyRequest{Name: name, Roles: []string{"auditor", "decider"}, ExpiresAt: api.NewTimePtr(expires)})
		if err != nil {
			t.Fatal(err)
		}
		// It works before it is revoked or expires: what refuses it later
		// is that, not its roles.
		if r := guardCall(t, s, http.MethodGet, "/v1/agents", "Bearer "+k.Key, nil); r.status != http.StatusOK {
			t.Fatalf("GET /v1/agents with the new key %s = %d %s; want 200", name, r.status, r.body)
		}
		return k
	}
	revoked := newKey("to-revoke", nil)
	if _, err := admin.RevokeKey(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(2 * time.Second)
	expiring := newKey("short-lived", &soon)
	// Poll until the key expires: it is accepted until then, and refused
	// as expired from then on.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := guardCall(t, s, http.MethodGet, "/v1/agents", "Bearer "+expiring.Key, nil)
		if r.status == http.StatusUnauthorized {
			break
		}
		if r.status != http.StatusOK {
			t.Fatalf("GET /v1/agents with the expiring key = %d %s; want 200 until it expires, then 401", r.status, r.body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key that expires at %s is still accepted at %s", soon.Format(time.RFC3339Nano), time.Now().Format(time.RFC3339Nano))
		}
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	unknown := "kvk_" + base64.RawURLEncoding.EncodeToString(b[:])

	cases := []struct {
		name, authorization, code string
	}{
		{"not a Kavach credential", "Bearer abc", "malformed_credential"},
		{"Basic scheme", "Basic x", "malformed_credential"},
		{"Bearer without a credential", "Bearer ", "malformed_credential"},
		{"key too short", "Bearer kvk_short", "malformed_credential"},
		{"key not base64url", "Bearer kvk_" + strings.Repeat("!", 43), "malformed_credential"},
		{"agent token too short", "Bearer kv_short", "malformed_credential"},
		{"wrong admin key", "Bearer " + strings.Replace(adminKey, "e2e", "e3e", 1), "malformed_credential"},
		{"unknown key", "Bearer " + unknown, "invalid_key"},
		{"revoked key", "Bearer " + revoked.Key, "key_revoked"},
		{"expired key", "Bearer " + expiring.Key, "key_expired"},
	}
	// Both kinds of route: one that reads keys from the database, and
	// authorize, which authenticates them from memory.
	routes := []struct{ name, method, path string }{
		{"agents.list", http.MethodGet, "/v1/agents"},
		{"authorize", http.MethodPost, "/v1/authorize"},
	}
	// The expired key's first refusal, in the polling loop above.
	want := []refusedCall{{route: "agents.list", actorType: "anonymous", status: http.StatusUnauthorized, code: "key_expired"}}
	for _, tc := range cases {
		for _, rt := range routes {
			t.Run(tc.name+"/"+rt.name, func(t *testing.T) {
				var body any
				if rt.method == http.MethodPost {
					body = map[string]any{"agentId": "agt_x", "action": "read", "resource": "mcp:github:repos"}
				}
				r := guardCall(t, s, rt.method, rt.path, tc.authorization, body)
				if r.status != http.StatusUnauthorized || r.code != tc.code {
					t.Errorf("%s %s with %s = %d %s; want 401 %s", rt.method, rt.path, tc.name, r.status, r.body, tc.code)
				}
				// A credential was sent and is no good: RFC 6750 §3.1's invalid_token.
				if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="kavach", error="invalid_token"` {
					t.Errorf("WWW-Authenticate = %q; want Bearer realm=\"kavach\", error=\"invalid_token\"", got)
				}
			})
			want = append(want, refusedCall{route: rt.name, actorType: "anonymous", status: http.StatusUnauthorized, code: tc.code})
		}
	}

	rows := waitForRefusals(t, admin, len(want))
	if got, w := refusalsOf(t, rows), sortedStrings(want); !slices.Equal(got, w) {
		t.Errorf("api.refused rows =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
	}
	secrets := []string{adminKey, unknown, revoked.Key, expiring.Key}
	for _, e := range rows {
		for _, secret := range secrets {
			if strings.Contains(e.Reason, secret) || strings.Contains(string(e.Changes), secret) {
				t.Errorf("api.refused row of %s holds a key: %q", e.Resource, e.Reason)
			}
		}
	}
	log := s.log()
	for _, secret := range secrets {
		// The random part alone is as good as the key.
		if strings.Contains(log, secret) || strings.Contains(log, strings.TrimPrefix(secret, "kvk_")) {
			t.Errorf("the sidecar's log holds the key %.8s…", secret)
		}
	}
}

// TestAttackerWithAnMCPAccessToken: an MCP access token is its grant
// agent's own credential, and no more: the attacks an agent token is
// refused are refused for it too, and audited as its grant agent.
func TestAttackerWithAnMCPAccessToken(t *testing.T) {
	t.Parallel()
	s, issuer := mcpSidecar(t, deployScope)
	admin := s.adminClient()
	ctx := t.Context()
	victim, err := admin.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "victim-user", Name: "deployer",
		Permissions: []api.Permission{{Resource: "mcp:deploy:*", Actions: []string{"execute"}}}})
	if err != nil {
		t.Fatal(err)
	}

	// The attacker's MCP client gets a token the legitimate way: a user
	// consents, the client redeems the code.
	clientID, handle := consentRequest(t, issuer)
	var approved struct {
		RedirectURL string `json:"redirectUrl"`
	}
	r := guardCall(t, s, http.MethodPost, "/v1/oauth/requests/"+handle+"/approve", "Bearer "+adminKey, map[string]any{"userId": "mcp-user"})
	if err := json.Unmarshal(r.body, &approved); r.status != http.StatusOK || err != nil {
		t.Fatalf("consent by the admin = %d %s; want 200", r.status, r.body)
	}
	back, _ := url.Parse(approved.RedirectURL)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	body := form(t, http.DefaultClient, issuer+"/oauth/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID},
		"code": {back.Query().Get("code")}, "redirect_uri": {"http://127.0.0.1:4567/cb"}, "code_verifier": {attackVerifier},
		"resource": {mcpResource}}, http.StatusOK)
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token response %s: %v", body, err)
	}
	grants, err := admin.ListAgents(ctx, client.AgentFilter{OwnerID: "mcp-user"})
	if err != nil || len(grants.Agents) != 1 {
		t.Fatalf("agents of mcp-user = %+v, %v; want the grant agent", grants, err)
	}
	grant := grants.Agents[0]
	if r, d := ownDecision(t, s, tok.AccessToken, "execute", "mcp:deploy:staging"); r.status != http.StatusOK || !d.Allowed {
		t.Fatalf("the token's own deploy to staging = %d %s; want allowed", r.status, r.body)
	}
	// Another user's consent the attacker would like to answer.
	_, otherHandle := consentRequest(t, issuer)

	attacks := []struct {
		name, method, path string
		body               any
		route              string
	}{
		{"list every agent", http.MethodGet, "/v1/agents", nil, "agents.list"},
		{"grant itself everything", http.MethodPatch, "/v1/agents/" + grant.ID,
			map[string]any{"permissions": []map[string]any{{"resource": "*", "actions": []string{"*"}}}}, "agents.update"},
		{"create an agent", http.MethodPost, "/v1/agents",
			map[string]any{"ownerId": "victim-user", "name": "sleeper"}, "agents.create"},
		{"approve a consent for another user", http.MethodPost, "/v1/oauth/requests/" + otherHandle + "/approve",
			map[string]any{"userId": "victim-user"}, "oauth.requests.approve"},
		{"ask for the victim's decision", http.MethodPost, "/v1/authorize",
			map[string]any{"agentId": victim.ID, "action": "execute", "resource": "mcp:deploy:production"}, "authorize"},
		{"read the victim's effective permissions", http.MethodGet, "/v1/agents/" + victim.ID + "/effective-permissions",
			nil, "agents.effective_permissions"},
	}
	var want []refusedCall
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			r := guardCall(t, s, a.method, a.path, "Bearer "+tok.AccessToken, a.body)
			if r.status != http.StatusForbidden || r.code != "forbidden" {
				t.Errorf("%s %s = %d %s; want 403 forbidden", a.method, a.path, r.status, r.body)
			}
		})
		want = append(want, refusedCall{route: a.route, actorType: "agent", actorID: grant.ID, status: http.StatusForbidden, code: "forbidden"})
	}

	// Nothing changed.
	if a, err := admin.GetAgent(ctx, grant.ID); err != nil || !reflect.DeepEqual(a.Permissions, grant.Permissions) {
		t.Errorf("grant agent's permissions = %+v, %v; want unchanged %+v", a.Permissions, err, grant.Permissions)
	}
	if agents, err := admin.ListAgents(ctx, client.AgentFilter{}); err != nil || len(agents.Agents) != 2 {
		t.Errorf("agents = %d, %v; want 2 (the victim, the grant agent)", len(agents.Agents), err)
	}
	r = guardCall(t, s, http.MethodGet, "/v1/oauth/requests/"+otherHandle, "Bearer "+adminKey, nil)
	if !strings.Contains(string(r.body), `"status":"pending"`) {
		t.Errorf("the other consent request = %d %s; want still pending", r.status, r.body)
	}
	// Its own effective permissions are its own to read.
	if r := guardCall(t, s, http.MethodGet, "/v1/agents/"+grant.ID+"/effective-permissions", "Bearer "+tok.AccessToken, nil); r.status != http.StatusOK {
		t.Errorf("the token's own effective permissions = %d %s; want 200", r.status, r.body)
	}

	rows := waitForRefusals(t, admin, len(want))
	if got, w := refusalsOf(t, rows), sortedStrings(want); !slices.Equal(got, w) {
		t.Errorf("api.refused rows =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
	}
	for _, e := range rows {
		if e.AgentID != grant.ID || e.OwnerID != "mcp-user" {
			t.Errorf("api.refused row of %s: agentId %q, ownerId %q; want %s, mcp-user", e.Resource, e.AgentID, e.OwnerID, grant.ID)
		}
	}
	for _, secret := range []string{tok.AccessToken, handle, otherHandle} {
		if strings.Contains(s.log(), secret) {
			t.Errorf("the sidecar's log holds the secret %.8s…", secret)
		}
	}
}
