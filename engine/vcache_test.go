package engine

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// The pooled virtual cache answers as OPA's own does, frame by frame.
func TestVirtualCacheAgreesWithOPAs(t *testing.T) {
	ours := getVirtualCache()
	defer func() { putVirtualCache(ours) }()
	theirs := topdown.NewVirtualCache()
	ref := func(s string) ast.Ref { return ast.MustParseRef(s) }
	same := func(r ast.Ref) {
		t.Helper()
		v1, u1 := ours.Get(r)
		v2, u2 := theirs.Get(r)
		if u1 != u2 || (v1 == nil) != (v2 == nil) || (v1 != nil && !v1.Equal(v2)) {
			t.Fatalf("Get(%v) = %v, %v; OPA's: %v, %v", r, v1, u1, v2, u2)
		}
	}
	both := func(f func(c topdown.VirtualCache)) { f(ours); f(theirs) }
	reused := ref("data.x.f[1]")
	both(func(c topdown.VirtualCache) { c.Put(ref("data.x.y"), ast.StringTerm("a")) })
	both(func(c topdown.VirtualCache) { c.Put(ref("data.x.z"), nil) })
	both(func(c topdown.VirtualCache) { c.Put(reused, ast.IntNumberTerm(2)) })
	reused[len(reused)-1] = ast.IntNumberTerm(3) // the evaluator reuses its slices
	for _, r := range []string{"data.x.y", "data.x.z", "data.x", "data.x.y.w", "data.x.f[1]", "data.x.f[3]", "data.q"} {
		same(ref(r))
	}
	both(func(c topdown.VirtualCache) { c.Push(); c.Put(ref("data.x.w"), ast.BooleanTerm(true)) })
	for _, r := range []string{"data.x.y", "data.x.w"} {
		same(ref(r))
	}
	if len(ours.Keys()) != 1 || len(theirs.Keys()) != 1 {
		t.Fatalf("keys in a new frame: %v; OPA's: %v", ours.Keys(), theirs.Keys())
	}
	both(func(c topdown.VirtualCache) { c.Pop() })
	for _, r := range []string{"data.x.y", "data.x.w", "data.x.z"} {
		same(ref(r))
	}
	both(func(c topdown.VirtualCache) { c.Put(ref("data.x.y"), ast.StringTerm("b")) })
	same(ref("data.x.y"))
	if len(ours.Keys()) != len(theirs.Keys()) {
		t.Fatalf("keys: %v; OPA's: %v", ours.Keys(), theirs.Keys())
	}

	// Handed back, it comes out empty.
	putVirtualCache(ours)
	ours = getVirtualCache()
	if v, undefined := ours.Get(ref("data.x.y")); v != nil || undefined || len(ours.Keys()) != 0 {
		t.Fatalf("reused cache holds %v, %v, %v", v, undefined, ours.Keys())
	}
}

// The pooled base cache answers as OPA's does: a value cached at a
// reference answers for the references below it; caching a value erases
// what was cached below it; handed back, it comes out empty.
func TestBaseCache(t *testing.T) {
	c := getBaseCache()
	ref := func(s string) ast.Ref { return ast.MustParseRef(s) }
	agent := ast.MustParseTerm(`{"status": "active", "permissions": [{"key": "p"}]}`).Value
	c.Put(ref("data.kavach.agents.a"), agent)
	c.Put(ref("data.kavach.tokens.h"), ast.String("a"))
	for r, want := range map[string]ast.Value{
		"data.kavach.agents.a":                    agent,
		"data.kavach.agents.a.status":             ast.String("active"),
		"data.kavach.agents.a.permissions[0].key": ast.String("p"),
		"data.kavach.agents.a.missing":            nil,
		"data.kavach.agents.b":                    nil,
		"data.kavach":                             nil,
		"data.kavach.tokens.h":                    ast.String("a"),
	} {
		if got := c.Get(ref(r)); (got == nil) != (want == nil) || (got != nil && got.Compare(want) != 0) {
			t.Errorf("Get(%s) = %v, want %v", r, got, want)
		}
	}
	c.Put(ref("data.kavach.agents"), ast.MustParseTerm(`{"b": {"status": "revoked"}}`).Value)
	if got := c.Get(ref("data.kavach.agents.a")); got != nil {
		t.Errorf("after caching the parent, Get(agents.a) = %v, want nil", got)
	}
	if got := c.Get(ref("data.kavach.agents.b.status")); got == nil || got.Compare(ast.String("revoked")) != 0 {
		t.Errorf("Get(agents.b.status) = %v", got)
	}
	putBaseCache(c)
	c = getBaseCache()
	defer putBaseCache(c)
	for _, r := range []string{"data.kavach.agents", "data.kavach.agents.b", "data.kavach.tokens.h"} {
		if got := c.Get(ref(r)); got != nil {
			t.Errorf("reused cache: Get(%s) = %v", r, got)
		}
	}
	c.Put(ref("data.kavach.tokens.h"), ast.String("z"))
	if got := c.Get(ref("data.kavach.tokens.h")); got == nil || got.Compare(ast.String("z")) != 0 {
		t.Errorf("reused cache: Get(tokens.h) = %v", got)
	}
}
