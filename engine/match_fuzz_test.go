package engine

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kavach-dev/kavach/domain"
)

// refMatch is the resource-matching rule of the spec, written plainly in Go,
// to check the Rego implementation against.
func refMatch(pattern, resource string) bool {
	if pattern == "*" {
		return true
	}
	p, r := strings.Split(pattern, ":"), strings.Split(resource, ":")
	last := len(p) - 1
	if p[last] == "*" {
		if len(r) <= last {
			return false
		}
		for _, seg := range r[last:] {
			if seg == "" {
				return false
			}
		}
		p, r = p[:last], r[:last]
	} else if len(p) != len(r) {
		return false
	}
	for i := range p {
		if p[i] != r[i] && (p[i] != "*" || r[i] == "") {
			return false
		}
	}
	return true
}

func validPattern(p string) bool {
	for _, seg := range strings.Split(p, ":") {
		if seg == "" || (strings.Contains(seg, "*") && seg != "*") {
			return false
		}
	}
	return true
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
	now := time.Now()
	f.Fuzz(func(t *testing.T, pattern, resource string) {
		// The API accepts only valid UTF-8 (JSON decoding and validation see
		// to it), so the engine is only ever asked about that.
		if !validPattern(pattern) || resource == "" || !utf8.ValidString(pattern) || !utf8.ValidString(resource) {
			t.Skip()
		}
		ctx := t.Context()
		err := e.Apply(ctx, Changes{Agents: []domain.Agent{{ID: "agt_f", OwnerID: "u", Status: domain.StatusActive, TokenHash: "h",
			Permissions: []domain.Permission{{Resource: pattern, Actions: []string{"read"}}}}}})
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.Decide(ctx, Input{AgentID: "agt_f", Action: "read", Resource: resource, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if want := refMatch(pattern, resource); d.Allowed != want {
			t.Errorf("pattern %q, resource %q: Rego allowed=%v; reference says %v", pattern, resource, d.Allowed, want)
		}
	})
}
