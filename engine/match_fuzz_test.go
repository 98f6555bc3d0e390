package engine

import (
	"context"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/policies"
)

// regoMatch evaluates the policy's own matching rule,
// data.kavach.resources.match, segment by segment: the reference the
// globs the sync derives (ResourceGlob) are checked against.
type regoMatch struct{ pq rego.PreparedEvalQuery }

func newRegoMatch(tb testing.TB) regoMatch {
	tb.Helper()
	mods, err := policies.Modules()
	if err != nil {
		tb.Fatal(err)
	}
	opts := []func(*rego.Rego){rego.Query(`x := count([1 | data.kavach.resources.match(input.pattern, input.resource)]) > 0; y := glob.match(input.glob, [":"], input.resource)`)}
	for name, src := range mods {
		opts = append(opts, rego.Module(name, src))
	}
	pq, err := rego.New(opts...).PrepareForEval(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return regoMatch{pq}
}

// eval returns whether the pattern matches the resource by the policy's
// rule, and by the glob the sync derives from the pattern.
func (m regoMatch) eval(ctx context.Context, tb testing.TB, pattern, resource string) (rule, glob bool) {
	tb.Helper()
	input := ast.NewObject(
		ast.Item(ast.StringTerm("pattern"), ast.StringTerm(pattern)),
		ast.Item(ast.StringTerm("resource"), ast.StringTerm(resource)),
		ast.Item(ast.StringTerm("glob"), ast.StringTerm(ResourceGlob(pattern))),
	)
	rs, err := m.pq.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil || len(rs) != 1 {
		tb.Fatalf("match %q, %q: %v, %v", pattern, resource, rs, err)
	}
	return rs[0].Bindings["x"].(bool), rs[0].Bindings["y"].(bool)
}

// wellFormed reports whether a resource has no empty segment: only for
// those does the policy use the globs (resources with empty segments take
// the segment rule).
func wellFormed(resource string) bool {
	if resource == "" || resource[0] == ':' || resource[len(resource)-1] == ':' {
		return false
	}
	for i := 1; i < len(resource); i++ {
		if resource[i] == ':' && resource[i-1] == ':' {
			return false
		}
	}
	return true
}

// Every pattern of up to three segments over a small alphabet (glob
// metacharacters included), against every resource of up to four: the glob
// the sync derives matches exactly what the policy's rule matches.
// FuzzResourceMatch explores further.
func TestResourceGlobAgreesWithPolicy(t *testing.T) {
	ctx := t.Context()
	mods, err := policies.Modules()
	if err != nil {
		t.Fatal(err)
	}
	opts := []func(*rego.Rego){rego.Query(`bad := [r |
		some r in input.resources
		rule := count([1 | data.kavach.resources.match(input.pattern, r)]) > 0
		glob.match(input.glob, [":"], r) != rule
	]`)}
	for name, src := range mods {
		opts = append(opts, rego.Module(name, src))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	words := func(alphabet []string, n int) []string {
		out, last := []string{}, []string{""}
		for range n {
			var next []string
			for _, prefix := range last {
				for _, s := range alphabet {
					if prefix != "" {
						s = prefix + ":" + s
					}
					next = append(next, s)
				}
			}
			out, last = append(out, next...), next
		}
		return out
	}
	patterns := words([]string{"a", "*", "?", "\\"}, 3)
	resources := words([]string{"a", "?", "\\", "a*"}, 4)
	terms := make([]*ast.Term, len(resources))
	for i, r := range resources {
		terms[i] = ast.StringTerm(r)
	}
	checked := 0
	for _, p := range patterns {
		input := ast.NewObject(
			ast.Item(ast.StringTerm("pattern"), ast.StringTerm(p)),
			ast.Item(ast.StringTerm("glob"), ast.StringTerm(ResourceGlob(p))),
			ast.Item(ast.StringTerm("resources"), ast.ArrayTerm(terms...)),
		)
		rs, err := pq.Eval(ctx, rego.EvalParsedInput(input))
		if err != nil || len(rs) != 1 {
			t.Fatalf("pattern %q: %v, %v", p, rs, err)
		}
		if bad := rs[0].Bindings["bad"].([]any); len(bad) > 0 {
			t.Errorf("pattern %q (glob %q): the glob and data.kavach.resources.match disagree on %v", p, ResourceGlob(p), bad)
		}
		checked += len(resources)
	}
	if checked < 25_000 {
		t.Fatalf("checked %d pairs; the generator should give more", checked)
	}
}

func FuzzResourceMatch(f *testing.F) {
	for _, seed := range [][2]string{
		{"*", "a"}, {"mcp:github:*", "mcp:github:repos"}, {"mcp:github:*", "mcp:github"},
		{"mcp:github:*", "mcp:github:repos:issues"}, {"admin:*:delete", "admin:projects:delete"},
		{"admin:*:delete", "admin:x:create"}, {"a:b", "a:b"}, {"a:*", "a::"}, {"*:*", "a"}, {"a", "A"},
	} {
		f.Add(seed[0], seed[1])
	}
	e, err := New(f.Context())
	if err != nil {
		f.Fatal(err)
	}
	patterns, err := NewPatterns(f.Context())
	if err != nil {
		f.Fatal(err)
	}
	m := newRegoMatch(f)
	now := time.Now()
	f.Fuzz(func(t *testing.T, pattern, resource string) {
		// The API accepts only valid UTF-8 (JSON decoding and validation see
		// to it), and only patterns the policy's grammar accepts.
		if resource == "" || !utf8.ValidString(pattern) || !utf8.ValidString(resource) {
			t.Skip()
		}
		ctx := t.Context()
		if msg, err := patterns.Error(ctx, pattern); err != nil || msg != "" {
			t.Skip()
		}
		err := e.Apply(ctx, Changes{Agents: []domain.Agent{{ID: "agt_f", OwnerID: "u", Status: domain.StatusActive, TokenHash: "h",
			Permissions: []domain.Permission{{Resource: pattern, Actions: []string{"read"}}}}}})
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.Decide(ctx, Input{AgentID: "agt_f", Action: "read", Resource: resource, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		rule, glob := m.eval(ctx, t, pattern, resource)
		if d.Allowed != rule {
			t.Errorf("pattern %q, resource %q: decision allowed=%v; data.kavach.resources.match says %v", pattern, resource, d.Allowed, rule)
		}
		if wellFormed(resource) && glob != rule {
			t.Errorf("pattern %q (glob %q), resource %q: glob %v; data.kavach.resources.match says %v", pattern, ResourceGlob(pattern), resource, glob, rule)
		}
	})
}
