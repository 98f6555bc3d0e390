package access

import (
	"testing"
)

var testRoutes = []string{"agents.create", "agents.list", "authorize", "agents.effective_permissions", "approvals.approve",
	"audit.export", "metrics", "health", "oauth.token", "keys.revoke"}

// The table answers every principal exactly as the policy itself does,
// including keys holding several roles (every subset of the roles).
func TestTableMatchesThePolicy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := newEvaluator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	roles := p.Roles()
	if len(roles) < 4 {
		t.Fatalf("Roles() = %v; want admin, approver, auditor, decider at least", roles)
	}
	for _, route := range testRoutes {
		for _, typ := range []string{Anonymous, Agent} {
			want, err := ev.decide(ctx, route, typ, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Decide(route, typ, nil); got != want {
				t.Errorf("Decide(%s, %s) = %+v; want %+v", route, typ, got, want)
			}
		}
		for mask := 0; mask < 1<<len(roles); mask++ {
			held := []string{}
			for i, r := range roles {
				if mask&(1<<i) != 0 {
					held = append(held, r)
				}
			}
			want, err := ev.decide(ctx, route, Key, held)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Decide(route, Key, held); got.Allow != want.Allow {
				t.Errorf("Decide(%s, key %v) = %+v; want %+v", route, held, got, want)
			}
		}
	}
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	p, err := New(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range testRoutes {
		if !p.Known(r) {
			t.Errorf("Known(%s) = false; want true", r)
		}
	}
	if p.Known("agents.purge") {
		t.Error("Known(agents.purge) = true; want false")
	}
	if got := len(p.Routes()); got < 40 {
		t.Errorf("len(Routes()) = %d; want every route of the API", got)
	}
}

func TestDecisions(t *testing.T) {
	t.Parallel()
	p, err := New(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		route, typ string
		roles      []string
		want       Decision
	}{
		{"health", Anonymous, nil, Decision{true, "public"}},
		{"agents.create", Anonymous, nil, Decision{false, "unauthenticated"}},
		{"agents.create", Key, []string{"decider"}, Decision{false, "forbidden"}},
		{"agents.create", Key, []string{"admin"}, Decision{true, "role"}},
		{"authorize", Agent, nil, Decision{true, "self"}},
		{"agents.create", Agent, nil, Decision{false, "forbidden"}},
		{"approvals.approve", Key, []string{"decider", "approver"}, Decision{true, "role"}},
		{"nope", Key, []string{"admin"}, Decision{false, "unknown_route"}},
	} {
		if got := p.Decide(tt.route, tt.typ, tt.roles); got != tt.want {
			t.Errorf("Decide(%s, %s %v) = %+v; want %+v", tt.route, tt.typ, tt.roles, got, tt.want)
		}
	}
}

func TestModules(t *testing.T) {
	t.Parallel()
	p, err := New(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mods := p.Modules()
	if len(mods) != 1 || mods[0].File != "policies/api/api.rego" || len(mods[0].SHA256) != 64 {
		t.Errorf("Modules() = %+v; want policies/api/api.rego with its SHA-256", mods)
	}
}
