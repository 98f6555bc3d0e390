package engine

import (
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

func testAgent(id, hash string, perms ...domain.Permission) domain.Agent {
	return domain.Agent{ID: id, OwnerID: "user-1", Status: domain.StatusActive, TokenHash: hash, Permissions: perms}
}

func TestDecide(t *testing.T) {
	ctx := t.Context()
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	past := now.Add(-time.Second)
	expired := testAgent("agt_expired", "h-expired", domain.Permission{Resource: "*", Actions: []string{"*"}})
	expired.ExpiresAt = &past
	revoked := testAgent("agt_revoked", "h-revoked", domain.Permission{Resource: "*", Actions: []string{"*"}})
	revoked.Status = domain.StatusRevoked
	suspended := testAgent("agt_suspended", "h-suspended", domain.Permission{Resource: "*", Actions: []string{"*"}})
	suspended.Status = domain.StatusSuspended
	earning := testAgent("agt_earning", "h-earning",
		domain.Permission{Resource: "mcp:deploy:*", Actions: []string{"execute"}, Constraints: domain.Constraints{RequireApprovalBelow: domain.TrustStandard}},
		domain.Permission{Resource: "mcp:db:*", Actions: []string{"drop"}, Constraints: domain.Constraints{MinTrustLevel: domain.TrustTrusted}})
	n, err := e.Load(ctx, memSource{agents: []domain.Agent{
		testAgent("agt_reader", "h-reader",
			domain.Permission{Resource: "mcp:github:*", Actions: []string{"read"}},
			domain.Permission{Resource: "mcp:github:issues", Actions: []string{"read", "comment"}}),
		testAgent("agt_deploy", "h-deploy",
			domain.Permission{Resource: "mcp:deploy:production", Actions: []string{"execute"},
				Constraints: domain.Constraints{RequireApproval: &yes}}),
		expired, revoked, suspended, earning,
	}})
	if err != nil || n.Agents != 6 {
		t.Fatalf("Load = %+v, %v; want 6, nil", n, err)
	}
	tests := []struct {
		name string
		in   Input
		code string
	}{
		{"wildcard allows", Input{AgentID: "agt_reader", Action: "read", Resource: "mcp:github:repos"}, CodeAllowed},
		{"second permission allows", Input{AgentID: "agt_reader", Action: "comment", Resource: "mcp:github:issues"}, CodeAllowed},
		{"by token", Input{TokenHash: "h-reader", Action: "read", Resource: "mcp:github:repos:x"}, CodeAllowed},
		{"no permission", Input{AgentID: "agt_reader", Action: "write", Resource: "mcp:github:repos"}, CodeNoPermission},
		{"unknown agent", Input{AgentID: "agt_nope", Action: "read", Resource: "x"}, CodeAgentNotFound},
		{"unknown token", Input{TokenHash: "nope", Action: "read", Resource: "x"}, CodeInvalidToken},
		{"expired", Input{AgentID: "agt_expired", Action: "read", Resource: "x"}, CodeAgentExpired},
		{"expired by token", Input{TokenHash: "h-expired", Action: "read", Resource: "x"}, CodeAgentExpired},
		{"revoked", Input{AgentID: "agt_revoked", Action: "read", Resource: "x"}, CodeAgentRevoked},
		{"approval required", Input{AgentID: "agt_deploy", Action: "execute", Resource: "mcp:deploy:production"}, CodeApprovalRequired},
		{"suspended", Input{AgentID: "agt_suspended", Action: "read", Resource: "x"}, CodeAgentSuspended},
		{"suspended by token", Input{TokenHash: "h-suspended", Action: "read", Resource: "x"}, CodeAgentSuspended},
		// An agent with no trust yet is at the initial score's level, limited.
		{"approval below a level", Input{AgentID: "agt_earning", Action: "execute", Resource: "mcp:deploy:production"}, CodeApprovalRequired},
		{"trust insufficient", Input{AgentID: "agt_earning", Action: "drop", Resource: "mcp:db:main"}, CodeTrustInsufficient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Now = now
			d, err := e.Decide(ctx, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Code != tt.code || d.Allowed != (tt.code == CodeAllowed) || d.Reason == "" {
				t.Errorf("Decide(%+v) = %+v; want code %s", tt.in, d, tt.code)
			}
		})
	}

	// Rotating replaces the token index entry: the old hash stops working.
	rotated := testAgent("agt_reader", "h-new", domain.Permission{Resource: "mcp:github:*", Actions: []string{"read"}})
	if err := e.Apply(ctx, Changes{Agents: []domain.Agent{rotated}}); err != nil {
		t.Fatal(err)
	}
	for hash, want := range map[string]string{"h-reader": CodeInvalidToken, "h-new": CodeAllowed} {
		d, err := e.Decide(ctx, Input{TokenHash: hash, Action: "read", Resource: "mcp:github:repos", Now: now})
		if err != nil || d.Code != want {
			t.Errorf("after rotate, Decide(token %s) = %+v, %v; want %s", hash, d, err, want)
		}
	}
	// Permissions are replaced, not merged.
	d, _ := e.Decide(ctx, Input{AgentID: "agt_reader", Action: "comment", Resource: "mcp:github:issues", Now: now})
	if d.Code != CodeNoPermission {
		t.Errorf("after permission replace, comment = %s; want %s", d.Code, CodeNoPermission)
	}
	if d.OwnerID != "user-1" || d.AgentID != "agt_reader" {
		t.Errorf("decision identity = %q/%q; want agt_reader/user-1", d.AgentID, d.OwnerID)
	}
}

// yes is true, for constraints that take a *bool.
var yes = true

// Limits are integers end to end: the documented maximum decides like any
// other limit (it once became 1e+06 in the data and a policy error).
func TestLargestRateLimitDecides(t *testing.T) {
	ctx := t.Context()
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, max := range []int64{1, 999_999, domain.MaxCallsPerHour} {
		a := testAgent("agt_limited", "h-limited", domain.Permission{Resource: "api:*", Actions: []string{"call"},
			Constraints: domain.Constraints{MaxCallsPerHour: max}})
		if err := e.Apply(ctx, Changes{Agents: []domain.Agent{a}}); err != nil {
			t.Fatal(err)
		}
		key := PermissionKey("api:*", []string{"call"})
		for calls, want := range map[int64]string{max - 1: CodeAllowed, max: CodeRateLimited} {
			d, err := e.Decide(ctx, Input{AgentID: "agt_limited", Action: "call", Resource: "api:x", Now: time.Now(),
				Calls: map[string]int{key: int(calls)}})
			if err != nil || d.Code != want {
				t.Errorf("max %d, %d calls: Decide = %s (%s), %v; want %s", max, calls, d.Code, d.Reason, err, want)
			}
		}
	}
}

// The delegation check carries trust constraints through to the grants it
// returns, typed as they were given (the service stores those).
func TestCheckDelegationKeepsTrustConstraints(t *testing.T) {
	ctx := t.Context()
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Load(ctx, memSource{agents: []domain.Agent{
		testAgent("orch", "h1", domain.Permission{Resource: "mcp:*", Actions: []string{"read"},
			Constraints: domain.Constraints{MinTrustLevel: domain.TrustLimited}}),
		testAgent("worker", "h2"),
	}}); err != nil {
		t.Fatal(err)
	}
	want := domain.Constraints{MinTrustLevel: domain.TrustStandard, RequireApprovalBelow: domain.TrustTrusted}
	v, err := e.CheckDelegation(ctx, DelegationRequest{FromAgent: "orch", ToAgent: "worker", MaxDepth: 1,
		Permissions: []domain.Permission{{Resource: "mcp:github:*", Actions: []string{"read"}, Constraints: want}}}, time.Now())
	if err != nil || !v.OK || len(v.Grants) != 1 {
		t.Fatalf("CheckDelegation = %+v, %v; want one grant", v, err)
	}
	if got := v.Grants[0].Constraints; got.MinTrustLevel != want.MinTrustLevel || got.RequireApprovalBelow != want.RequireApprovalBelow || got.RequireApproval != nil {
		t.Errorf("grant constraints = %+v; want %+v", got, want)
	}
}
