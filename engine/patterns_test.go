package engine

import (
	"context"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/kavach-dev/kavach/policies"
)

// resourcesQuery prepares a query over the embedded resource policy alone.
func resourcesQuery(tb testing.TB, query string) rego.PreparedEvalQuery {
	tb.Helper()
	mods, err := policies.Modules()
	if err != nil {
		tb.Fatal(err)
	}
	opts := []func(*rego.Rego){rego.Query(query)}
	for name, src := range mods {
		if strings.HasPrefix(name, "policies/resources/") {
			opts = append(opts, rego.Module(name, src))
		}
	}
	pq, err := rego.New(opts...).PrepareForEval(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return pq
}

// defaultIgnorable is Unicode's Default_Ignorable_Code_Point among the
// characters that are letters, marks, numbers, punctuation or symbols: the
// derived property is Other_Default_Ignorable_Code_Point, the format
// characters (Cf) and the variation selectors, less a few; the format
// characters are refused as such.
func defaultIgnorable(r rune) bool {
	return unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) || unicode.Is(unicode.Variation_Selector, r) ||
		unicode.Is(unicode.Cf, r)
}

// allowedInSegment is what the policy's forbidden_char says in words: a
// letter, mark, number, punctuation or symbol that is not default-ignorable.
func allowedInSegment(r rune) bool {
	return (unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsNumber(r) || unicode.IsPunct(r) || unicode.IsSymbol(r)) &&
		!defaultIgnorable(r)
}

// The characters of Unicode: the policy's forbidden_char, compiled by Go,
// refuses exactly the characters allowedInSegment refuses; and OPA's own
// regex.find_n, run by the policy, finds the same ones (over the Basic
// Multilingual Plane, the emoji and the tags and variation selectors: all
// of Unicode takes OPA seconds).
func TestForbiddenCharIsEveryCharacterButVisibleOnes(t *testing.T) {
	t.Parallel()
	p, err := NewPatterns(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// One string of the characters, searched once: every one but in the
	// planes where Unicode assigns none (4 to 13) or only private use (15,
	// 16), which are sampled: under the race detector, searching them all
	// takes seconds.
	var every, sample strings.Builder
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if inGoSample(r) {
			every.WriteRune(r)
			if inOPASample(r) {
				sample.WriteRune(r)
			}
		}
	}
	forbidden := make([]bool, unicode.MaxRune+1)
	for _, loc := range p.forbidden.FindAllStringIndex(every.String(), -1) {
		r, _ := utf8.DecodeRuneInString(every.String()[loc[0]:loc[1]])
		forbidden[r] = true
	}
	var want []string
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !inGoSample(r) {
			continue
		}
		if forbidden[r] != !allowedInSegment(r) {
			t.Errorf("forbidden_char refuses %U: %v; want %v", r, forbidden[r], !allowedInSegment(r))
		}
		if forbidden[r] && inOPASample(r) {
			want = append(want, string(r))
		}
	}
	// ForbiddenChar says the same, from its ASCII table and from the
	// expression (after a first non-ASCII character).
	for r := rune(0); r < 0x3000; r++ {
		for _, prefix := range []string{"a", "é"} {
			c, bad := p.ForbiddenChar(prefix + string(r) + "b")
			if bad != forbidden[r] || bad && c != r {
				t.Errorf("ForbiddenChar(%+q) = %U, %v; want forbidden=%v", prefix+string(r)+"b", c, bad, forbidden[r])
			}
		}
	}
	// The characters the issue names, spelled out.
	for _, r := range []rune{0, '\n', 0x7f, 0x85, 0xa0, 0xad, 0x34f, 0x61c, 0x115f, 0x180e, 0x200b, 0x200c, 0x200d,
		0x200e, 0x200f, 0x202a, 0x202e, 0x2060, 0x2064, 0x2066, 0x2069, 0x3000, 0x3164, 0xfe0f, 0xfeff, 0xffa0,
		0xe000, 0xe0001, 0xe0041, 0xe007f, 0xe0100, 0xe01ef} {
		if c, bad := p.ForbiddenChar("a" + string(r) + "b"); !bad || c != r {
			t.Errorf("ForbiddenChar(%+q) = %U, %v; want %U refused", "a"+string(r)+"b", c, bad, r)
		}
	}
	for _, r := range []rune{'a', 'Z', '0', '-', '_', '.', '/', '@', 'é', '日', 'ü', 0x1f600, 0x0301, ':', '*'} {
		if c, bad := p.ForbiddenChar(string(r)); bad {
			t.Errorf("ForbiddenChar(%U) = %U; want it allowed", r, c)
		}
	}
	pq := resourcesQuery(t, `x := regex.find_n(data.kavach.resources.forbidden_char, input.s, -1)`)
	rs, err := pq.Eval(t.Context(), rego.EvalParsedInput(ast.NewObject(ast.Item(ast.StringTerm("s"), ast.StringTerm(sample.String())))))
	if err != nil || len(rs) != 1 {
		t.Fatalf("regex.find_n: %v, %v", rs, err)
	}
	found := rs[0].Bindings["x"].([]any)
	if len(found) != len(want) {
		t.Fatalf("OPA's regex.find_n finds %d forbidden characters; Go's regexp %d", len(found), len(want))
	}
	for i, c := range found {
		if c.(string) != want[i] {
			t.Fatalf("OPA's regex.find_n finds %q as forbidden character %d; Go's regexp %q", c, i, want[i])
		}
	}
}

// inGoSample reports the characters checked in Go: every one (not the
// surrogates: no valid UTF-8 holds them) but in the planes without assigned
// characters or with private use only, where one in 97.
func inGoSample(r rune) bool {
	return utf8.ValidRune(r) && (r < 0x40000 || 0xe0000 <= r && r < 0xf0000 || r%97 == 0)
}

// inOPASample reports the characters OPA checks too.
func inOPASample(r rune) bool {
	return r < 0x10000 || 0x1f000 <= r && r < 0x1fb00 || 0xe0000 <= r && r < 0xe0200
}

// policyResourceErrors evaluates data.kavach.resources.resource_error for
// each resource, "" where it is undefined.
type policyResourceErrors struct{ pq rego.PreparedEvalQuery }

func newPolicyResourceErrors(tb testing.TB) policyResourceErrors {
	return policyResourceErrors{resourcesQuery(tb, `x := {r: msg | some r in input.resources; msg := data.kavach.resources.resource_error(r)}`)}
}

func (p policyResourceErrors) eval(ctx context.Context, tb testing.TB, resources []string) map[string]string {
	tb.Helper()
	terms := make([]*ast.Term, len(resources))
	for i, r := range resources {
		terms[i] = ast.StringTerm(r)
	}
	rs, err := p.pq.Eval(ctx, rego.EvalParsedInput(ast.NewObject(ast.Item(ast.StringTerm("resources"), ast.ArrayTerm(terms...)))))
	if err != nil || len(rs) != 1 {
		tb.Fatalf("resource_error: %v, %v", rs, err)
	}
	out := map[string]string{}
	for r, msg := range rs[0].Bindings["x"].(map[string]any) {
		out[r] = msg.(string)
	}
	return out
}

// Every resource of up to three segments over an alphabet of the faults a
// segment can have (empty, '*', a forbidden character, several at once):
// ResourceError says what the policy's resource_error says, word for word.
func TestResourceErrorAgreesWithPolicy(t *testing.T) {
	p, err := NewPatterns(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	alphabet := []string{"a", "", "*", "a*", " ", "b\u200b", "\u202e", "\u3164", "é日", "x\x00", "*\t", "-_.@/"}
	resources := []string{"mcp:github:repos", "*", ":", "::"}
	last := []string{""}
	for n := range 3 {
		var next []string
		for _, prefix := range last {
			for _, s := range alphabet {
				if n > 0 {
					s = prefix + ":" + s
				}
				next = append(next, s)
			}
		}
		resources, last = append(resources, next...), next
	}
	want := newPolicyResourceErrors(t).eval(t.Context(), t, resources)
	for _, r := range resources {
		if got := p.ResourceError(r); got != want[r] {
			t.Errorf("ResourceError(%q) = %q; the policy says %q", r, got, want[r])
		}
	}
	if len(resources) < 1500 {
		t.Fatalf("checked %d resources; the generator should give more", len(resources))
	}
}

func FuzzResourceError(f *testing.F) {
	for _, s := range []string{"mcp:github:repos", "mcp:github:*", "", ":", "a::b", "a:", "mcp:git*",
		"mcp:github:re\u202eos", "a\u200bb", "a b", "\u3164", "é:日本", "x\x00:y", "a:b:c:d:e"} {
		f.Add(s)
	}
	p, err := NewPatterns(f.Context())
	if err != nil {
		f.Fatal(err)
	}
	policy := newPolicyResourceErrors(f)
	f.Fuzz(func(t *testing.T, resource string) {
		if !utf8.ValidString(resource) {
			t.Skip() // refused before: no request holds invalid UTF-8
		}
		want := policy.eval(t.Context(), t, []string{resource})[resource]
		if got := p.ResourceError(resource); got != want {
			t.Errorf("ResourceError(%q) = %q; the policy says %q", resource, got, want)
		}
		// A resource is a pattern without wildcards.
		if !strings.Contains(resource, "*") {
			msg, err := p.Error(t.Context(), resource)
			if err != nil || (msg == "") != (want == "") {
				t.Errorf("resource %q: pattern_error %q, %v; resource_error %q", resource, msg, err, want)
			}
		}
	})
}

func TestCovers(t *testing.T) {
	p, err := NewPatterns(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		parent, child string
		want          bool
	}{
		{"*", "a:b", true},
		{"mcp:github:*", "mcp:github:issues", true},
		{"mcp:github:*", "mcp:github", false},
		{"mcp:*:read", "mcp:x:read", true},
		{"mcp:*:read", "mcp:x:write", false},
		{"mcp:x:read", "mcp:*:read", false},
		{"a:b", "a:b", true},
	} {
		got, err := p.Covers(t.Context(), c.parent, c.child)
		if err != nil || got != c.want {
			t.Errorf("Covers(%q, %q) = %v, %v; want %v", c.parent, c.child, got, err, c.want)
		}
	}
}
