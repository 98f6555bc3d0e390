package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
)

// exampleExtensions reads examples/extensions, as the sidecar would
// (tests skipped).
func exampleExtensions(t *testing.T) map[string]string {
	t.Helper()
	mods := map[string]string{}
	for _, name := range []string{"freeze.rego", "validation.rego"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", "extensions", name))
		if err != nil {
			t.Fatal(err)
		}
		mods[name] = string(b)
	}
	return mods
}

var validateNow = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func sampleAgentCheck(op string, perms ...string) AgentCheck {
	exp := api.NewTime(validateNow.Add(10 * 24 * time.Hour))
	a := api.Agent{OwnerID: "team-payments", Name: "reader", Type: "autonomous", Status: domain.StatusActive,
		Metadata: map[string]any{"team": "payments"}, ExpiresAt: &exp, Permissions: []api.Permission{},
		CreatedAt: api.NewTime(validateNow), UpdatedAt: api.NewTime(validateNow)}
	if op == OperationUpdate {
		a.ID = "agt_1"
	}
	for _, p := range perms {
		a.Permissions = append(a.Permissions, api.Permission{Resource: p, Actions: []string{"read"}})
	}
	return AgentCheck{Operation: op, Agent: a, Actor: domain.Actor{Type: domain.ActorKey, ID: "key_1", Name: "ci"}, Now: validateNow.UnixNano()}
}

func sampleDelegationCheck(toType, toOwner string, perms ...string) DelegationCheck {
	d := DelegationCheck{
		Delegation: ProposedDelegation{FromAgent: "agt_a", ToAgent: "agt_b", ExpiresAt: api.NewTime(validateNow.Add(24 * time.Hour)), MaxDepth: 1, Depth: 1},
		From:       Summarize(domain.Agent{ID: "agt_a", OwnerID: "team-payments", Name: "a", Type: "autonomous", Status: domain.StatusActive}),
		To:         Summarize(domain.Agent{ID: "agt_b", OwnerID: toOwner, Name: "b", Type: toType, Status: domain.StatusActive}),
		Actor:      domain.Actor{Type: domain.ActorAdminEnv},
		Now:        validateNow.UnixNano(),
	}
	for _, p := range perms {
		d.Delegation.Permissions = append(d.Delegation.Permissions, api.Permission{Resource: p, Actions: []string{"read"}})
	}
	return d
}

func TestValidationRulesOfTheExample(t *testing.T) {
	e, err := New(t.Context(), exampleExtensions(t))
	if err != nil {
		t.Fatal(err)
	}
	if a, d := e.Validates(); !a || !d {
		t.Fatalf("Validates() = %v, %v; want both rules defined", a, d)
	}
	far := sampleAgentCheck(OperationCreate, "mcp:github:repos")
	exp := api.NewTime(validateNow.Add(40 * 24 * time.Hour))
	far.Agent.ExpiresAt = &exp
	service := sampleAgentCheck(OperationCreate, "mcp:github:repos")
	service.Agent.Type, service.Agent.OwnerID = "service", "team-contractors"
	for name, tc := range map[string]struct {
		in   AgentCheck
		want []string
	}{
		"fine": {sampleAgentCheck(OperationCreate, "mcp:github:repos"), nil},
		"wildcard": {sampleAgentCheck(OperationUpdate, "mcp:github:repos", "*", "mcp:*"), []string{
			`permissions[1]: resource "*" has a wildcard segment; name the resources`,
			`permissions[2]: resource "mcp:*" has a wildcard segment; name the resources`,
		}},
		"far expiry": {far, []string{"expiresAt 2027-01-02T00:00:00.000Z is more than 30 days away"}},
		"service":    {service, []string{`owner "team-contractors" may not have service agents`}},
	} {
		got, err := e.DenyAgent(t.Context(), tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) && (len(got) != 0 || len(tc.want) != 0) {
			t.Errorf("DenyAgent(%s) = %q, %v; want %q", name, got, err, tc.want)
		}
	}
	for name, tc := range map[string]struct {
		in   DelegationCheck
		want int
	}{
		"fine":                    {sampleDelegationCheck("delegated", "team-ops", "mcp:github:repos"), 0},
		"own service agent":       {sampleDelegationCheck("service", "team-payments", "mcp:github:repos"), 0},
		"another's service agent": {sampleDelegationCheck("service", "team-ops", "mcp:github:repos"), 1},
		"wildcard":                {sampleDelegationCheck("delegated", "team-ops", "mcp:*", "db:*"), 2},
	} {
		if got, err := e.DenyDelegation(t.Context(), tc.in); err != nil || len(got) != tc.want {
			t.Errorf("DenyDelegation(%s) = %q, %v; want %d messages", name, got, err, tc.want)
		}
	}
}

func TestValidationWithoutRulesCostsNothing(t *testing.T) {
	for name, ext := range map[string]map[string]string{
		"no extensions":   nil,
		"only deny rules": {"freeze.rego": exampleExtensions(t)["freeze.rego"]},
	} {
		e, err := New(t.Context(), ext)
		if err != nil {
			t.Fatal(err)
		}
		if a, d := e.Validates(); a || d {
			t.Errorf("%s: Validates() = %v, %v; want neither rule", name, a, d)
		}
		if got, err := e.DenyAgent(t.Context(), sampleAgentCheck(OperationCreate, "*")); got != nil || err != nil {
			t.Errorf("%s: DenyAgent = %q, %v; want nothing", name, got, err)
		}
		if got, err := e.DenyDelegation(t.Context(), sampleDelegationCheck("service", "x", "*")); got != nil || err != nil {
			t.Errorf("%s: DenyDelegation = %q, %v; want nothing", name, got, err)
		}
	}
}

func TestValidationRulesReloadAndFailClosed(t *testing.T) {
	ctx := t.Context()
	e, err := New(ctx, map[string]string{"v.rego": "package kavach.ext\n\ndeny_agent contains \"b second\" if true\n\ndeny_agent contains \"a first\" if true\n"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.DenyAgent(ctx, sampleAgentCheck(OperationCreate)); err != nil || !reflect.DeepEqual(got, []string{"a first", "b second"}) {
		t.Errorf("DenyAgent = %q, %v; want both messages, sorted", got, err)
	}

	// A message that is not a string still refuses, as its JSON.
	if err := e.SetExtensions(ctx, map[string]string{"v.rego": "package kavach.ext\n\ndeny_agent contains {\"why\": input.agent.name} if true\n"}); err != nil {
		t.Fatal(err)
	}
	if got, err := e.DenyAgent(ctx, sampleAgentCheck(OperationCreate)); err != nil || !reflect.DeepEqual(got, []string{`{"why": "reader"}`}) {
		t.Errorf("DenyAgent with an object message = %q, %v", got, err)
	}

	// A run-time error the samples do not reach fails the evaluation.
	boom := "package kavach.ext\n\n_f(x) := 1 if x == \"boom\"\n\n_f(x) := 2 if x == \"boom\"\n\n" +
		"deny_agent contains \"m\" if _f(input.agent.name) == 1\n\ndeny_delegation contains \"m\" if _f(input.to.name) == 1\n"
	if err := e.SetExtensions(ctx, map[string]string{"v.rego": boom}); err != nil {
		t.Fatal(err)
	}
	in := sampleAgentCheck(OperationCreate)
	if got, err := e.DenyAgent(ctx, in); err != nil || len(got) != 0 {
		t.Errorf("DenyAgent = %q, %v; want no message", got, err)
	}
	in.Agent.Name = "boom"
	if got, err := e.DenyAgent(ctx, in); err == nil || !strings.Contains(err.Error(), "deny_agent") {
		t.Errorf("DenyAgent on a conflict = %q, %v; want an error naming deny_agent", got, err)
	}
	d := sampleDelegationCheck("delegated", "x")
	d.To.Name = "boom"
	if got, err := e.DenyDelegation(ctx, d); err == nil {
		t.Errorf("DenyDelegation on a conflict = %q, %v; want an error", got, err)
	}

	// Removing the rule allows again.
	if err := e.SetExtensions(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := e.DenyAgent(ctx, in); got != nil || err != nil {
		t.Errorf("DenyAgent without extensions = %q, %v", got, err)
	}
}

func TestBadValidationRulesAreRefusedAtLoad(t *testing.T) {
	for name, tc := range map[string]struct{ src, want string }{
		"not a set":       {"package kavach.ext\n\ndeny_agent := \"no\"\n", "must be a set of messages"},
		"not a set, too":  {"package kavach.ext\n\ndeny_delegation[\"x\"] := true\n", "must be a set of messages"},
		"runtime error":   {"package kavach.ext\n\n_v := 1 if input.now > 0\n\n_v := 2 if input.now > 0\n\ndeny_agent contains \"m\" if _v == 1\n", "sample agent"},
		"runtime error 2": {"package kavach.ext\n\n_v := 1 if input.now > 0\n\n_v := 2 if input.now > 0\n\ndeny_delegation contains \"m\" if _v == 1\n", "sample delegation"},
	} {
		if _, err := New(t.Context(), map[string]string{"v.rego": tc.src}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v; want an error with %q", name, err, tc.want)
		}
	}
}

// What DenyAgent and DenyDelegation evaluate matches the schemas the
// example names for them.
func TestValidationInputsMatchSchemas(t *testing.T) {
	sc := newSchemaCheck(t)
	full := sampleAgentCheck(OperationUpdate, "mcp:github:repos")
	full.Agent.Permissions[0].Constraints = map[string]any{"maxCallsPerHour": 5, "requireApproval": true}
	revoked := api.NewTime(validateNow)
	full.Agent.RevokedAt = &revoked
	full.Agent.Status = domain.StatusRevoked
	noExpiry := sampleAgentCheck(OperationCreate)
	noExpiry.Agent.ExpiresAt = nil
	noExpiry.Actor = domain.Actor{Type: domain.ActorAgent, ID: "agt_x", OnBehalfOf: "alice"}
	for _, in := range []AgentCheck{full, noExpiry} {
		if errs := sc.errors(t, jsonDoc(t, in), "deny_agent_input.json"); errs != nil {
			t.Errorf("agent check %+v: %v", in, errs)
		}
	}
	d := sampleDelegationCheck("service", "team-ops", "mcp:github:repos")
	exp := validateNow.Add(time.Hour)
	d.From = Summarize(domain.Agent{ID: "agt_a", OwnerID: "o", Name: "a", Type: "service", Status: domain.StatusActive, ExpiresAt: &exp,
		Metadata: map[string]any{"k": []any{1, "x"}}})
	if errs := sc.errors(t, jsonDoc(t, d), "deny_delegation_input.json"); errs != nil {
		t.Errorf("delegation check: %v", errs)
	}
}

// jsonDoc is v as its JSON decodes, as denyMessages encodes it.
func jsonDoc(t *testing.T, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}
