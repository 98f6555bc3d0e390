package grants

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kavach-dev/kavach/api"
)

// A user may grant any set of the configured scopes at once; the grant's
// agent holds their union, so a union no agent may hold is refused at
// start, not at the user's approval.
func TestCheckScopesChecksTheirUnion(t *testing.T) {
	read := api.Permission{Resource: "mcp:github:*", Actions: []string{"read"}}
	limited := api.Permission{Resource: "mcp:github:*", Actions: []string{"read"}, Constraints: map[string]any{"maxCallsPerHour": 5.0}}
	many := func(prefix string, n int) []api.Permission {
		var out []api.Permission
		for i := range n {
			out = append(out, api.Permission{Resource: fmt.Sprintf("%s:%d", prefix, i), Actions: []string{"read"}})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		scopes map[string][]api.Permission
		want   string // "" means accepted
	}{
		{"one scope", map[string][]api.Permission{"a": {read}}, ""},
		{"the same permission in two scopes", map[string][]api.Permission{"a": {read}, "b": {read}}, ""},
		{"one key, two constraints", map[string][]api.Permission{"a": {read}, "b": {limited}}, "a and b both grant"},
		{"a duplicate inside a scope", map[string][]api.Permission{"a": {read, limited}}, "mcp.scopes.a"},
		{"too many together", map[string][]api.Permission{"a": many("x", 200), "b": many("y", 200)}, "at most 256"},
	} {
		err := CheckScopes(tc.scopes)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckScopes(%s) = %v; want %q", tc.name, err, tc.want)
		}
	}
}
