package tests

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

// refusedWith checks that err is the HTTP status and code wanted, with a
// message holding every part of want.
func refusedWith(t *testing.T, what string, err error, status int, code string, want ...string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Errorf("%s = %v; want %d %s", what, err, status, code)
		return
	}
	for _, w := range want {
		if !strings.Contains(e.Message, w) {
			t.Errorf("%s: message %q lacks %q", what, e.Message, w)
		}
	}
}

// TestValidationHooks loads examples/extensions/validation.rego into the
// real binary: agent creates and updates and new delegations that its
// deny_agent and deny_delegation refuse are 422 policy_violation, write
// nothing and are audited with the caller; a failing rule refuses with 500
// policy_error; a reload without the rules allows again.
func TestValidationHooks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ext := filepath.Join(dir, "ext")
	if err := os.Mkdir(ext, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join("..", "examples", "extensions", "validation.rego"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(ext, "validation.rego"), string(src))
	s := start(t, "--database", filepath.Join(dir, "kavach.db"), "--policy-dir", ext)
	key := s.mintKey(t, "ops", "admin")
	cl := client.New(s.URL).WithAPIKey(key.Key)
	ctx := t.Context()

	const owner = "team-payments"
	soon := time.Now().Add(10 * 24 * time.Hour)
	late := time.Now().Add(40 * 24 * time.Hour)
	create := func(name, typ string, exp time.Time, perms ...api.Permission) (api.AgentWithToken, error) {
		return cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: owner, Name: name, Type: typ, Permissions: perms, ExpiresAt: api.NewTimePtr(&exp)})
	}

	_, err = create("wild", "", soon, perm("mcp:github:repos", "read"), perm("*", "read"))
	refusedWith(t, "create with a * resource", err, http.StatusUnprocessableEntity, "policy_violation",
		`permissions[1]: resource "*" has a wildcard segment; name the resources`)
	_, err = create("far", "", late, perm("mcp:github:repos", "read"))
	refusedWith(t, "create expiring in 40 days", err, http.StatusUnprocessableEntity, "policy_violation", "is more than 30 days away")
	_, err = cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "team-contractors", Name: "svc", Type: "service",
		Permissions: []api.Permission{perm("*", "read")}, ExpiresAt: api.NewTimePtr(&soon)})
	// Every message, sorted.
	refusedWith(t, "create of a contractor's service agent", err, http.StatusUnprocessableEntity, "policy_violation",
		`may not have service agents; permissions[0]: resource "*" has a wildcard segment`)
	if list, err := cl.ListAgents(ctx, client.AgentFilter{}); err != nil || len(list.Agents) != 0 {
		t.Fatalf("agents after refused creates = %+v, %v; want none", list.Agents, err)
	}

	a, err := create("reader", "", soon, perm("mcp:github:repos", "read"))
	if err != nil {
		t.Fatalf("create of a fine agent = %v", err)
	}
	wild := []api.Permission{perm("mcp:github:repos", "read"), perm("mcp:*", "read")}
	_, err = cl.UpdateAgent(ctx, a.ID, api.UpdateAgentRequest{Permissions: &wild})
	refusedWith(t, "update adding mcp:*", err, http.StatusUnprocessableEntity, "policy_violation", `resource "mcp:*" has a wildcard segment`)
	if got, err := cl.GetAgent(ctx, a.ID); err != nil || !reflect.DeepEqual(got, a.Agent) {
		t.Errorf("agent after a refused update = %+v, %v; want it unchanged: %+v", got, err, a.Agent)
	}
	far, _ := json.Marshal(api.NewTime(late))
	_, err = cl.UpdateAgent(ctx, a.ID, api.UpdateAgentRequest{ExpiresAt: far})
	refusedWith(t, "update pushing the expiry out", err, http.StatusUnprocessableEntity, "policy_violation", "more than 30 days away")
	name := "renamed"
	if _, err := cl.UpdateAgent(ctx, a.ID, api.UpdateAgentRequest{Name: &name}); err != nil {
		t.Errorf("a fine update = %v", err)
	}

	b, err := create("peer", "delegated", soon, perm("mcp:slack:post", "write"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "team-ops", Name: "ops bot", Type: "service",
		Permissions: []api.Permission{}, ExpiresAt: api.NewTimePtr(&soon)})
	if err != nil {
		t.Fatal(err)
	}
	depth := 1
	delegateUntil := func(to string, exp time.Time) error {
		_, err := cl.Delegate(ctx, api.DelegateRequest{FromAgent: a.ID, ToAgent: to, Permissions: []api.Permission{perm("mcp:github:repos", "read")},
			ExpiresAt: api.NewTimePtr(&exp), MaxDepth: &depth})
		return err
	}
	refusedWith(t, "delegation for 40 days", delegateUntil(b.ID, late), http.StatusUnprocessableEntity, "policy_violation",
		"deny_delegation", "is more than 30 days away")
	refusedWith(t, "delegation to another owner's service agent", delegateUntil(svc.ID, soon), http.StatusUnprocessableEntity,
		"policy_violation", `agent "`+svc.ID+`" is a service agent of owner "team-ops"`)
	for _, id := range []string{a.ID, b.ID, svc.ID} {
		if list, err := cl.ListDelegations(ctx, id, client.Page{}); err != nil || len(list.Delegations) != 0 {
			t.Errorf("delegations of %s after refusals = %+v, %v; want none", id, list.Delegations, err)
		}
	}
	if err := delegateUntil(b.ID, soon); err != nil {
		t.Errorf("a fine delegation = %v", err)
	}

	// The CLI goes through the same API.
	_, errOut, code := cli(t, nil, "agent", "create", "--server", s.URL, "--owner", owner, "--name", "cli", "-p", "docs:*=read", "--expires-in", "1d")
	if code == 0 || !strings.Contains(errOut, "policy_violation") || !strings.Contains(errOut, `resource "docs:*"`) {
		t.Errorf("agent create by the CLI: exit %d, stderr %q; want the policy_violation", code, errOut)
	}

	// Every refusal is audited, with the caller and what it named.
	refusals := func(action string) []api.AuditEntry {
		t.Helper()
		page, err := cl.QueryAudit(ctx, client.AuditFilter{Kind: "event", Action: action, Result: "denied", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return page.Entries
	}
	creates := refusals("agent.create")
	if len(creates) != 4 {
		t.Fatalf("refused creates audited: %d (%+v); want 4", len(creates), creates)
	}
	byTarget := map[string]api.AuditEntry{}
	for _, e := range creates {
		byTarget[e.Resource] = e
	}
	if e := byTarget["wild"]; e.Code != "policy_violation" || e.Actor.Type != "key" || e.Actor.ID != key.ID || e.OwnerID != owner ||
		!strings.Contains(e.Reason, `resource "*" has a wildcard segment`) {
		t.Errorf("audit row of the refused create = %+v; want policy_violation by %s", e, key.ID)
	}
	if e := byTarget["cli"]; e.Actor.Type != "admin_env" {
		t.Errorf("audit row of the CLI's refused create = %+v; want the admin key as actor", e)
	}
	updates := refusals("agent.update")
	if len(updates) != 2 || updates[0].AgentID != a.ID || updates[0].Resource != a.ID || updates[0].Actor.ID != key.ID || updates[0].Code != "policy_violation" {
		t.Errorf("refused updates audited: %+v; want 2 naming %s, by %s", updates, a.ID, key.ID)
	}
	delegations := refusals("delegation.create")
	if len(delegations) != 2 || delegations[0].Actor.ID != key.ID || delegations[0].Code != "policy_violation" {
		t.Errorf("refused delegations audited: %+v; want 2 by %s", delegations, key.ID)
	}

	// A rule failing at run time refuses (fail closed), with nothing written.
	before := policiesOf(t, cl).Revision
	writeFile(t, filepath.Join(ext, "boom.rego"), "package kavach.ext\n\n_f(x) := 1 if x == \"boom\"\n\n_f(x) := 2 if x == \"boom\"\n\n"+
		"deny_agent contains \"never\" if _f(input.agent.name) == 1\n")
	waitFor(t, "boom.rego to load", func() bool { return policiesOf(t, cl).Revision != before })
	_, err = create("boom", "", soon, perm("mcp:github:repos", "read"))
	refusedWith(t, "create under a failing rule", err, http.StatusInternalServerError, "policy_error", "deny_agent")
	if list, err := cl.ListAgents(ctx, client.AgentFilter{OwnerID: owner}); err != nil || len(list.Agents) != 2 {
		t.Errorf("agents of %s = %d, %v; want the 2 created", owner, len(list.Agents), err)
	}

	// Without the rules, the same writes are allowed again.
	for _, f := range []string{"validation.rego", "boom.rego"} {
		if err := os.Remove(filepath.Join(ext, f)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the rules to be unloaded", func() bool {
		_, err := create("wild", "", soon, perm("*", "read"))
		return err == nil
	})
	if _, err := cl.UpdateAgent(ctx, a.ID, api.UpdateAgentRequest{Permissions: &wild}); err != nil {
		t.Errorf("update adding mcp:* without the rules = %v", err)
	}
	if err := delegateUntil(svc.ID, late); err != nil {
		t.Errorf("delegation without the rules = %v", err)
	}
}
