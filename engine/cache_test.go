package engine

import (
	"math"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/kavach-dev/kavach/domain"
)

// The cache must never answer what a fresh evaluation would not.
func TestDecisionCacheNeverServesStaleDecisions(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC) // a Wednesday
	exp := now.Add(time.Hour)
	agent := domain.Agent{ID: "a", OwnerID: "u", Status: domain.StatusActive, TokenHash: "h", ExpiresAt: &exp, Permissions: []domain.Permission{
		{Resource: "docs:*", Actions: []string{"read"}},
		{Resource: "ops:*", Actions: []string{"run"}, Constraints: domain.Constraints{TimeWindow: &domain.TimeWindow{Start: "10:00", End: "11:00"}}},
	}}
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, Changes{Agents: []domain.Agent{agent}}); err != nil {
		t.Fatal(err)
	}
	decide := func(action, resource string, at time.Time) string {
		t.Helper()
		d, err := e.Decide(ctx, Input{AgentID: "a", Action: action, Resource: resource, Now: at})
		if err != nil {
			t.Fatal(err)
		}
		return d.Code
	}
	for range 2 { // the second round is served from the cache
		if c := decide("read", "docs:x", now); c != CodeAllowed {
			t.Fatalf("read docs = %s", c)
		}
		if c := decide("write", "docs:x", now); c != CodeNoPermission {
			t.Fatalf("write docs = %s", c)
		}
	}
	// A cached allow and a cached denial stop holding when the agent expires.
	if c := decide("read", "docs:x", exp); c != CodeAgentExpired {
		t.Errorf("read docs at expiry = %s; want agent_expired", c)
	}
	if c := decide("write", "docs:x", exp); c != CodeAgentExpired {
		t.Errorf("write docs at expiry = %s; want agent_expired", c)
	}
	// A time-dependent allow is never cached.
	if c := decide("run", "ops:x", now); c != CodeAllowed {
		t.Fatalf("run in window = %s", c)
	}
	if c := decide("run", "ops:x", now.Add(40*time.Minute)); c != "outside_time_window" {
		t.Errorf("run after the window = %s; want outside_time_window (not a cached allow)", c)
	}
	// A write invalidates at once.
	agent.Status = domain.StatusRevoked
	if err := e.Apply(ctx, Changes{Agents: []domain.Agent{agent}}); err != nil {
		t.Fatal(err)
	}
	if c := decide("read", "docs:x", now); c != CodeAgentRevoked {
		t.Errorf("after revoke = %s; want agent_revoked", c)
	}
}

func TestDecisionCacheIsOffForAllowsWithExtensions(t *testing.T) {
	ctx := t.Context()
	e, err := New(ctx, map[string]string{"clock.rego": `package kavach.ext

deny contains {"code": "late", "reason": "after 11:00"} if time.clock([input.now, "UTC"])[0] >= 11
`})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, Changes{Agents: []domain.Agent{{ID: "a", OwnerID: "u", Status: domain.StatusActive, TokenHash: "h",
		Permissions: []domain.Permission{{Resource: "*", Actions: []string{"*"}}}}}}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 10, 59, 0, 0, time.UTC)
	d1, _ := e.Decide(ctx, Input{AgentID: "a", Action: "read", Resource: "x", Now: at})
	d2, _ := e.Decide(ctx, Input{AgentID: "a", Action: "read", Resource: "x", Now: at.Add(2 * time.Minute)})
	if d1.Code != CodeAllowed || d2.Code != "late" {
		t.Errorf("decisions at 10:59 and 11:01 = %s, %s; want allowed, late", d1.Code, d2.Code)
	}
}

// An extension may deny with a core code; such a decision depends on the
// extension's inputs and must not be cached.
func TestDecisionCacheIgnoresExtensionDenialsWithCoreCodes(t *testing.T) {
	ctx := t.Context()
	e, err := New(ctx, map[string]string{"ip.rego": `package kavach.ext

deny contains {"code": "no_permission", "reason": "not from there"} if input.ip == "8.8.8.8"
`})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, Changes{Agents: []domain.Agent{{ID: "a", OwnerID: "u", Status: domain.StatusActive, TokenHash: "h",
		Permissions: []domain.Permission{{Resource: "*", Actions: []string{"*"}}}}}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	d1, _ := e.Decide(ctx, Input{AgentID: "a", Action: "read", Resource: "x", IP: "8.8.8.8", Now: now})
	d2, _ := e.Decide(ctx, Input{AgentID: "a", Action: "read", Resource: "x", IP: "10.0.0.1", Now: now})
	if d1.Code != CodeNoPermission || d2.Code != CodeAllowed {
		t.Errorf("decisions from 8.8.8.8 and 10.0.0.1 = %s, %s; want no_permission (extension), allowed", d1.Code, d2.Code)
	}
}

// Extensions that compile but fail at run time never replace working ones.
func TestExtensionsFailingAtRunTimeAreRefused(t *testing.T) {
	ctx := t.Context()
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := e.Policies().Revision
	err = e.SetExtensions(ctx, map[string]string{"conflict.rego": `package kavach.ext

v := 1 if input.action == "read"

v := 2 if input.action == "read"

deny contains {"code": "c", "reason": "r"} if v == 1
`})
	if err == nil {
		t.Fatal("an extension with a run-time conflict was accepted")
	}
	if e.Policies().Revision != before {
		t.Error("the refused extension replaced the policies in use")
	}
}

// The policy's cache field is what the engine caches by; an extension's
// denial is never cached, even under a code the core policy caches when it
// decides it itself (agent_revoked holds until the data changes).
func TestDecisionCacheIgnoresExtensionDenialsWithAgentCodes(t *testing.T) {
	ctx := t.Context()
	e, err := New(ctx, map[string]string{"ip.rego": `package kavach.ext

deny contains {"code": "agent_revoked", "reason": "not from there"} if input.ip == "8.8.8.8"
`})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, Changes{Agents: []domain.Agent{{ID: "a", OwnerID: "u", Status: domain.StatusActive, TokenHash: "h",
		Permissions: []domain.Permission{{Resource: "*", Actions: []string{"*"}}}}}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	d1, _ := e.Decide(ctx, Input{AgentID: "a", Action: "read", Resource: "x", IP: "8.8.8.8", Now: now})
	d2, _ := e.Decide(ctx, Input{AgentID: "a", Action: "read", Resource: "x", IP: "8.8.8.8", Now: now})
	d3, _ := e.Decide(ctx, Input{AgentID: "a", Action: "read", Resource: "x", IP: "10.0.0.1", Now: now})
	if d1.Code != CodeAgentRevoked || d2.Code != CodeAgentRevoked || d3.Code != CodeAllowed {
		t.Errorf("decisions from 8.8.8.8 (twice) and 10.0.0.1 = %s, %s, %s; want agent_revoked (extension) twice, then allowed",
			d1.Code, d2.Code, d3.Code)
	}
}

func TestDecodeCache(t *testing.T) {
	for _, tt := range []struct {
		doc   string
		until int64
		ok    bool
	}{
		{`false`, 0, false},
		{`{"until": null}`, math.MaxInt64, true},
		{`{"until": 1772620200000000000}`, 1772620200000000000, true},
		{`{}`, 0, false},
		{`{"until": 1.5}`, 0, false},
		{`{"until": "soon"}`, 0, false},
		{`true`, 0, false},
	} {
		v, err := ast.ParseTerm(tt.doc)
		if err != nil {
			t.Fatal(err)
		}
		if until, ok := decodeCache(v.Value); until != tt.until || ok != tt.ok {
			t.Errorf("decodeCache(%s) = %d, %v; want %d, %v", tt.doc, until, ok, tt.until, tt.ok)
		}
	}
}

// The engine reads consumes from the decision: allows that use quota or an
// approval, and approval failures.
func TestDecideReadsConsumes(t *testing.T) {
	ctx := t.Context()
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, Changes{Agents: []domain.Agent{{ID: "a", OwnerID: "u", Status: domain.StatusActive, TokenHash: "h",
		Permissions: []domain.Permission{
			{Resource: "docs:*", Actions: []string{"read"}},
			{Resource: "api:*", Actions: []string{"call"}, Constraints: domain.Constraints{MaxCallsPerHour: 5}},
			{Resource: "deploy:*", Actions: []string{"ship"}, Constraints: domain.Constraints{RequireApproval: &yes}},
		}}}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tt := range []struct {
		action, resource, code string
		consumes               bool
	}{
		{"read", "docs:x", CodeAllowed, false},
		{"write", "docs:x", CodeNoPermission, false},
		{"call", "api:x", CodeAllowed, true},
		{"ship", "deploy:x", CodeApprovalRequired, true},
	} {
		d, err := e.Decide(ctx, Input{AgentID: "a", Action: tt.action, Resource: tt.resource, Now: now})
		if err != nil || d.Code != tt.code || d.Consumes != tt.consumes {
			t.Errorf("Decide(%s %s) = %s consumes=%v, %v; want %s consumes=%v", tt.action, tt.resource, d.Code, d.Consumes, err, tt.code, tt.consumes)
		}
	}
}

// A suspended agent's denial is cached like a revoked one's, until the data
// changes: the write that resumes it is answered at once. A level change is
// a write too, so what trust decides never outlives the level it saw.
func TestDecisionCacheFollowsSuspensionAndTrust(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC)
	agent := domain.Agent{ID: "a", OwnerID: "u", Status: domain.StatusSuspended, TokenHash: "h",
		Trust: domain.Trust{Score: 52, Level: domain.TrustLimited, ComputedAt: now}, Permissions: []domain.Permission{
			{Resource: "docs:*", Actions: []string{"read"}},
			{Resource: "deploy:*", Actions: []string{"ship"}, Constraints: domain.Constraints{RequireApprovalBelow: domain.TrustTrusted}},
			{Resource: "prod:*", Actions: []string{"drop"}, Constraints: domain.Constraints{MinTrustLevel: domain.TrustStandard}},
		}}
	e, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write := func() {
		t.Helper()
		if err := e.Apply(ctx, Changes{Agents: []domain.Agent{agent}}); err != nil {
			t.Fatal(err)
		}
	}
	decide := func(in Input) Decision {
		t.Helper()
		in.AgentID, in.Now = "a", now
		d, err := e.Decide(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	write()
	for range 2 { // the second round is served from the cache
		if d := decide(Input{Action: "read", Resource: "docs:x"}); d.Code != CodeAgentSuspended {
			t.Fatalf("read while suspended = %s; want agent_suspended", d.Code)
		}
	}
	if d, _ := e.Decide(ctx, Input{TokenHash: "h", Action: "read", Resource: "docs:x", Now: now}); d.Code != CodeAgentSuspended {
		t.Fatalf("read by token while suspended = %s; want agent_suspended", d.Code)
	}
	agent.Status = domain.StatusActive // resumed
	write()
	for _, tt := range []struct {
		action, resource, code string
		consumes               bool
	}{
		{"read", "docs:x", CodeAllowed, false},
		{"ship", "deploy:x", CodeApprovalRequired, true},
		{"drop", "prod:x", CodeTrustInsufficient, false},
	} {
		if d := decide(Input{Action: tt.action, Resource: tt.resource}); d.Code != tt.code || d.Consumes != tt.consumes {
			t.Errorf("resumed, limited: Decide(%s %s) = %s consumes=%v; want %s consumes=%v", tt.action, tt.resource, d.Code, d.Consumes, tt.code, tt.consumes)
		}
	}
	agent.Trust = domain.Trust{Score: 83, Level: domain.TrustTrusted, ComputedAt: now}
	write()
	for _, tt := range []struct{ action, resource string }{{"ship", "deploy:x"}, {"drop", "prod:x"}} {
		if d := decide(Input{Action: tt.action, Resource: tt.resource}); d.Code != CodeAllowed || d.Consumes {
			t.Errorf("trusted: Decide(%s %s) = %s consumes=%v; want allowed, consuming nothing", tt.action, tt.resource, d.Code, d.Consumes)
		}
	}
	agent.Trust = domain.Trust{Score: 38, Level: domain.TrustUntrusted, ComputedAt: now}
	write()
	if d := decide(Input{Action: "drop", Resource: "prod:x"}); d.Code != CodeTrustInsufficient {
		t.Errorf("untrusted again: drop = %s; want trust_insufficient", d.Code)
	}
}
