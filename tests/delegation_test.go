package tests

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

func delegate(t *testing.T, cl *client.Client, from, to string, maxDepth int, perms ...api.Permission) (api.Delegation, error) {
	t.Helper()
	exp := time.Now().Add(time.Hour).UTC()
	return cl.Delegate(t.Context(), api.DelegateRequest{FromAgent: from, ToAgent: to, Permissions: perms, ExpiresAt: api.NewTimePtr(&exp), MaxDepth: &maxDepth})
}

func perm(resource string, actions ...string) api.Permission {
	return api.Permission{Resource: resource, Actions: actions}
}

// TestDelegationChains drives delegation over HTTP against the real binary:
// chains, escalation, depth, cycles, revocation cutting off downstream, and
// authorization by token.
func TestDelegationChains(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	cl := s.adminClient()
	ctx := t.Context()
	orch := mustCreate(t, cl, perm("mcp:github:*", "read", "comment"),
		constrained("mcp:deploy:*", map[string]any{"requireApproval": true}, "execute"))
	worker := mustCreate(t, cl)
	helper := mustCreate(t, cl)
	leaf := mustCreate(t, cl)

	d1, err := delegate(t, cl, orch.ID, worker.ID, 2, perm("mcp:github:issues", "read", "comment"), perm("mcp:deploy:staging", "execute"))
	if err != nil || !strings.HasPrefix(d1.ID, "dlg_") || d1.Depth != 1 || d1.MaxDepth != 2 {
		t.Fatalf("delegate orch->worker = %+v, %v; want dlg_…, depth 1, maxDepth 2", d1, err)
	}
	// A direct grant copies nothing: the root's own constraints apply live.
	if g := d1.Permissions[1]; len(g.Inherited) != 0 || g.CoveredBy == "" {
		t.Errorf("direct grant = %+v; want no snapshot and the covering permission's key", g)
	}
	d2, err := delegate(t, cl, worker.ID, helper.ID, 5, perm("mcp:github:issues", "read"))
	if err != nil || d2.Depth != 2 || d2.MaxDepth != 2 || len(d2.Permissions[0].Chain) != 1 || d2.Permissions[0].Chain[0].DelegationID != d1.ID {
		t.Fatalf("re-delegate worker->helper = %+v, %v; want depth 2, maxDepth capped at 2, chained to %s", d2, err, d1.ID)
	}

	// By token: the app forwarding the agent's token beside its key, and
	// the agent asking for itself with its token alone.
	self := client.New(s.URL)
	check := func(agent api.AgentWithToken, byToken bool, action, resource, code string) {
		t.Helper()
		req, token := api.AuthorizeRequest{AgentID: agent.ID, Action: action, Resource: resource}, ""
		if byToken {
			req.AgentID, token = "", agent.Token
		}
		res, err := cl.Authorize(ctx, req, token)
		if err != nil || res.Code != code {
			t.Errorf("Authorize(%s, %s %s, byToken=%v) = %+v, %v; want %s", agent.Name, action, resource, byToken, res, err, code)
		}
		if byToken {
			if res, err := self.Authorize(ctx, req, token); err != nil || res.Code != code {
				t.Errorf("Authorize(%s, %s %s) with its own token = %+v, %v; want %s", agent.Name, action, resource, res, err, code)
			}
		}
	}
	check(worker, false, "comment", "mcp:github:issues", "allowed")
	check(worker, true, "comment", "mcp:github:issues", "allowed")
	check(worker, false, "read", "mcp:github:repos", "no_permission")
	check(worker, false, "execute", "mcp:deploy:staging", "approval_required")
	check(helper, false, "read", "mcp:github:issues", "allowed")
	check(helper, true, "read", "mcp:github:issues", "allowed")
	check(helper, false, "comment", "mcp:github:issues", "no_permission")

	eff, err := cl.EffectivePermissions(ctx, helper.ID)
	if err != nil || len(eff.Permissions) != 1 || eff.Permissions[0].Source != "delegation" ||
		eff.Permissions[0].DelegationID != d2.ID || eff.Permissions[0].FromAgent != worker.ID || eff.Permissions[0].ExpiresAt == nil {
		t.Errorf("effective permissions of helper = %+v, %v", eff, err)
	}
	effOrch, _ := cl.EffectivePermissions(ctx, orch.ID)
	if len(effOrch.Permissions) != 2 || effOrch.Permissions[0].Source != "own" {
		t.Errorf("effective permissions of orch = %+v; want its two own", effOrch)
	}

	for _, tt := range []struct {
		name     string
		from, to string
		depth    int
		perms    []api.Permission
		status   int
		code     string
	}{
		{"wider resource", worker.ID, leaf.ID, 1, []api.Permission{perm("mcp:github:*", "read")}, 422, "delegation_escalation"},
		{"more actions", worker.ID, leaf.ID, 1, []api.Permission{perm("mcp:github:issues", "read", "delete")}, 422, "delegation_escalation"},
		{"wildcard action", worker.ID, leaf.ID, 1, []api.Permission{perm("mcp:github:issues", "*")}, 422, "delegation_escalation"},
		{"too deep", helper.ID, leaf.ID, 9, []api.Permission{perm("mcp:github:issues", "read")}, 422, "delegation_depth_exceeded"},
		{"cycle to the root", helper.ID, orch.ID, 9, []api.Permission{perm("mcp:github:issues", "read")}, 422, "delegation_cycle"},
		{"cycle to the middle", helper.ID, worker.ID, 9, []api.Permission{perm("mcp:github:issues", "read")}, 422, "delegation_cycle"},
		{"cycle one link back", worker.ID, orch.ID, 2, []api.Permission{perm("mcp:github:issues", "read")}, 422, "delegation_cycle"},
		{"self", orch.ID, orch.ID, 1, []api.Permission{perm("mcp:github:issues", "read")}, 422, "self_delegation"},
		{"unknown target", orch.ID, "agt_nope", 1, []api.Permission{perm("mcp:github:issues", "read")}, 404, "agent_not_found"},
		{"unknown source", "agt_nope", leaf.ID, 1, []api.Permission{perm("mcp:github:issues", "read")}, 404, "agent_not_found"},
		{"bad pattern", orch.ID, leaf.ID, 1, []api.Permission{perm("mcp::x", "read")}, 422, "invalid_permission"},
		{"no permissions", orch.ID, leaf.ID, 1, nil, 400, "missing_field"},
		{"zero depth", orch.ID, leaf.ID, 0, []api.Permission{perm("mcp:github:issues", "read")}, 422, "invalid_max_depth"},
	} {
		_, err := delegate(t, cl, tt.from, tt.to, tt.depth, tt.perms...)
		if apiStatus(err) != tt.status || apiCode(err) != tt.code {
			t.Errorf("%s: %v; want %d %s", tt.name, err, tt.status, tt.code)
		}
	}
	past := time.Now().Add(-time.Minute)
	if _, err := cl.Delegate(ctx, api.DelegateRequest{FromAgent: orch.ID, ToAgent: leaf.ID, Permissions: []api.Permission{perm("mcp:github:issues", "read")}, ExpiresAt: api.NewTimePtr(&past)}); apiCode(err) != "invalid_expiry" {
		t.Errorf("expiry in the past: %v; want invalid_expiry", err)
	}
	revokedAgent := mustCreate(t, cl)
	if _, err := cl.RevokeAgent(ctx, revokedAgent.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := delegate(t, cl, orch.ID, revokedAgent.ID, 1, perm("mcp:github:issues", "read")); apiStatus(err) != 409 || apiCode(err) != "agent_revoked" {
		t.Errorf("delegating to a revoked agent: %v; want 409 agent_revoked", err)
	}
	if ds, _ := cl.ListDelegations(ctx, leaf.ID, client.Page{}); len(ds.Delegations) != 0 {
		t.Errorf("rejected delegations wrote %d rows", len(ds.Delegations))
	}
	if ds, _ := cl.ListDelegations(ctx, worker.ID, client.Page{}); len(ds.Delegations) != 2 {
		t.Errorf("delegations of worker = %d; want 2 (one in, one out)", len(ds.Delegations))
	}

	// Revoking the first link cuts off everything downstream at once.
	if _, err := cl.RevokeDelegation(ctx, d1.ID); err != nil {
		t.Fatal(err)
	}
	check(worker, false, "comment", "mcp:github:issues", "delegation_revoked")
	check(helper, true, "read", "mcp:github:issues", "delegation_revoked")
	if eff, _ := cl.EffectivePermissions(ctx, helper.ID); len(eff.Permissions) != 0 {
		t.Errorf("effective permissions after revoke = %+v; want none", eff.Permissions)
	}
	if _, err := delegate(t, cl, worker.ID, leaf.ID, 1, perm("mcp:github:issues", "read")); apiCode(err) != "delegation_escalation" {
		t.Errorf("re-delegating through a revoked link: %v; want delegation_escalation", err)
	}

	// Revoking an agent cuts off what it delegated.
	d3, err := delegate(t, cl, orch.ID, leaf.ID, 1, perm("mcp:github:issues", "read"))
	if err != nil {
		t.Fatal(err)
	}
	check(leaf, false, "read", "mcp:github:issues", "allowed")
	if _, err := cl.RevokeAgent(ctx, orch.ID); err != nil {
		t.Fatal(err)
	}
	check(leaf, false, "read", "mcp:github:issues", "delegation_revoked")
	if _, err := cl.RevokeDelegation(ctx, "dlg_nope"); apiStatus(err) != 404 {
		t.Errorf("revoking an unknown delegation: %v; want 404", err)
	}
	_ = d3
}

func TestDelegationCLI(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	srv := "--server=" + s.URL
	cl := s.adminClient()
	orch := mustCreate(t, cl, perm("mcp:github:*", "read"))
	sub := mustCreate(t, cl)
	out, errOut, code := cli(t, nil, "delegate", srv, "--from", orch.ID, "--to", sub.ID, "-p", "mcp:github:issues=read", "--expires-in", "1h", "--max-depth", "2")
	if code != 0 {
		t.Fatalf("kavach delegate exited %d: %s", code, errOut)
	}
	d := decodeJSON[api.Delegation](t, out)
	out, _, code = cli(t, nil, "agent", "permissions", srv, sub.ID)
	if eff := decodeJSON[api.EffectivePermissions](t, out); code != 0 || len(eff.Permissions) != 1 || eff.Permissions[0].Resource != "mcp:github:issues" {
		t.Errorf("kavach agent permissions = %s", out)
	}
	out, _, code = cli(t, nil, "delegation", "list", srv, sub.ID)
	if list := decodeJSON[api.DelegationList](t, out); code != 0 || len(list.Delegations) != 1 || list.Delegations[0].ID != d.ID {
		t.Errorf("kavach delegation list = %s", out)
	}
	if _, errOut, code := cli(t, nil, "delegation", "revoke", srv, d.ID); code != 0 {
		t.Fatalf("kavach delegation revoke exited %d: %s", code, errOut)
	}
	_, _, code = cli(t, nil, "authorize", srv, "--agent", sub.ID, "--action", "read", "--resource", "mcp:github:issues")
	if code != 3 {
		t.Errorf("authorize after revoke exited %d; want 3 (denied)", code)
	}
	_, errOut, code = cli(t, nil, "delegate", srv, "--from", sub.ID, "--to", orch.ID, "-p", "mcp:github:issues=read", "--expires-in", "1h")
	if code != 1 || !strings.Contains(errOut, "delegation_escalation") {
		t.Errorf("escalating delegate: exit %d, %q; want 1 and delegation_escalation", code, errOut)
	}
}
