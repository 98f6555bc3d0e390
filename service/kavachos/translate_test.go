package kavachos

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func TestPermissions(t *testing.T) {
	tr, err := newTranslator(t.Context(), "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	type perm struct {
		resource, actions, constraints string
	}
	for _, c := range []struct {
		name  string
		in    []perm
		want  string // the permissions as JSON
		kinds []string
	}{
		{"trailing wildcard", []perm{{"mcp:github:*", `["read"]`, ""}},
			`[{"resource":"mcp:github:*","actions":["read"]}]`, []string{"wildcard_bare_prefix"}},
		{"everything", []perm{{"*", `["*"]`, "null"}}, `[{"resource":"*","actions":["*"]}]`, nil},
		{"mid-pattern wildcard", []perm{{"admin:*:delete", `["write"]`, ""}},
			`[{"resource":"admin:*:delete","actions":["write"]}]`, []string{"wildcard_mid_pattern"}},
		{"mid-pattern wildcard Kavach cannot hold", []perm{{"a:*:x y", `["w"]`, ""}}, `[]`, []string{"wildcard_mid_pattern"}},
		{"leading wildcard with more", []perm{{"*:read", `["r"]`, ""}}, `[{"resource":"*:read","actions":["r"]}]`, []string{"wildcard_mid_pattern"}},
		{"star inside a segment", []perm{{"a:foo*", `["read"]`, ""}}, `[]`, []string{"pattern_unmatchable"}},
		{"duplicate", []perm{{"a:b", `["x","y"]`, ""}, {"a:b", `["y","x"]`, `{"maxCallsPerHour":1}`}},
			`[{"resource":"a:b","actions":["x","y"]}]`, []string{"duplicate_permission"}},
		{"shadowed actions", []perm{{"a:b", `["x"]`, `{"requireApproval":true}`}, {"a:b", `["x","y"]`, ""}},
			`[{"resource":"a:b","actions":["x"],"constraints":{"requireApproval":true}},{"resource":"a:b","actions":["y"]}]`,
			[]string{"approval_flow", "shadowed_actions"}},
		{"shadowed permission", []perm{{"a:*", `["*"]`, `{"maxCallsPerHour":3}`}, {"a:b:c", `["x"]`, ""}},
			`[{"resource":"a:*","actions":["*"],"constraints":{"maxCallsPerHour":3}}]`, []string{"wildcard_bare_prefix", "shadowed_permission"}},
		{"overlap", []perm{{"a:b", `["x"]`, `{"requireApproval":true}`}, {"a:*", `["x","y"]`, ""}},
			`[{"resource":"a:b","actions":["x"],"constraints":{"requireApproval":true}},{"resource":"a:*","actions":["y"]}]`,
			[]string{"approval_flow", "first_match_overlap", "wildcard_bare_prefix"}},
		{"overlap, nothing left", []perm{{"a:b", `["x"]`, `{"requireApproval":true}`}, {"a:*", `["x"]`, ""}},
			`[{"resource":"a:b","actions":["x"],"constraints":{"requireApproval":true}}]`,
			[]string{"approval_flow", "first_match_overlap"}},
		{"covered, but any action", []perm{{"a:*", `["x"]`, `{"maxCallsPerHour":1}`}, {"a:b", `["*"]`, ""}},
			`[{"resource":"a:*","actions":["x"],"constraints":{"maxCallsPerHour":1}}]`,
			[]string{"wildcard_bare_prefix", "first_match_overlap"}},
		{"unconstrained first shadows nothing", []perm{{"a:b", `["x"]`, ""}, {"a:b", `["x","y"]`, `{"maxCallsPerHour":2}`}},
			`[{"resource":"a:b","actions":["x"]},{"resource":"a:b","actions":["x","y"],"constraints":{"maxCallsPerHour":2}}]`, nil},
		{"time window", []perm{{"t:a", `["r"]`, `{"timeWindow":{"start":"09:00","end":"17:00"}}`}},
			`[{"resource":"t:a","actions":["r"],"constraints":{"timeWindow":{"end":"17:01","start":"09:00","timezone":"Europe/Berlin"}}}]`, nil},
		{"time window to midnight", []perm{{"t:a", `["r"]`, `{"timeWindow":{"start":"09:00","end":"23:59"}}`}},
			`[{"resource":"t:a","actions":["r"],"constraints":{"timeWindow":{"end":"00:00","start":"09:00","timezone":"Europe/Berlin"}}}]`, nil},
		{"time window all day", []perm{{"t:a", `["r"]`, `{"timeWindow":{"start":"00:00","end":"23:59"}}`}},
			`[{"resource":"t:a","actions":["r"]}]`, nil},
		{"time window across midnight never opens", []perm{{"t:a", `["r"]`, `{"timeWindow":{"start":"22:00","end":"06:00"}}`}},
			`[]`, []string{"never_allowed"}},
		{"time window unpadded", []perm{{"t:a", `["r"]`, `{"timeWindow":{"start":"9:00","end":"17:00"}}`}},
			`[]`, []string{"never_allowed"}},
		{"ip allowlist", []perm{{"i:a", `["r"]`, `{"ipAllowlist":["10.0.0.1/8","::1/128","bad","10.1.2.3"]}`}},
			`[{"resource":"i:a","actions":["r"],"constraints":{"ipAllowlist":["10.0.0.0/8","10.1.2.3"]}}]`, []string{"ip_entries_dropped"}},
		{"ip allowlist of IPv6 prefixes never matches", []perm{{"i:a", `["r"]`, `{"ipAllowlist":["fe80::/10"]}`}},
			`[]`, []string{"ip_entries_dropped", "never_allowed"}},
		{"empty ip allowlist", []perm{{"i:a", `["r"]`, `{"ipAllowlist":[]}`}}, `[{"resource":"i:a","actions":["r"]}]`, nil},
		{"rate rounded up", []perm{{"r:a", `["r"]`, `{"maxCallsPerHour":2.5}`}},
			`[{"resource":"r:a","actions":["r"],"constraints":{"maxCallsPerHour":3}}]`, nil},
		{"rate zero is none", []perm{{"r:a", `["r"]`, `{"maxCallsPerHour":0}`}}, `[{"resource":"r:a","actions":["r"]}]`, nil},
		{"rate negative", []perm{{"r:a", `["r"]`, `{"maxCallsPerHour":-1}`}}, `[]`, []string{"never_allowed"}},
		{"rate clamped", []perm{{"r:a", `["r"]`, `{"maxCallsPerHour":2000000}`}},
			`[{"resource":"r:a","actions":["r"],"constraints":{"maxCallsPerHour":1000000}}]`, []string{"rate_limit_clamped"}},
		{"rate not a number", []perm{{"r:a", `["r"]`, `{"maxCallsPerHour":"5"}`}}, `[]`, []string{"constraint_untranslatable", "never_allowed"}},
		{"one arg pattern", []perm{{"g:a", `["r"]`, `{"allowedArgPatterns":["^/tmp/","^/tmp/"]}`}},
			`[{"resource":"g:a","actions":["r"],"constraints":{"allowedArgPatterns":["^/tmp/"]}}]`, []string{"arg_patterns_nested"}},
		{"several arg patterns", []perm{{"g:a", `["r"]`, `{"allowedArgPatterns":["^a","b$"]}`}}, `[]`, []string{"arg_patterns_all", "never_allowed"}},
		{"arg pattern not RE2", []perm{{"g:a", `["r"]`, `{"allowedArgPatterns":["^(?=x)"]}`}}, `[]`, []string{"arg_pattern_not_re2", "never_allowed"}},
		{"unknown constraint", []perm{{"u:a", `["r"]`, `{"budget":5}`}}, `[{"resource":"u:a","actions":["r"]}]`, []string{"unknown_constraint"}},
		{"truthy approval", []perm{{"u:a", `["r"]`, `{"requireApproval":"yes"}`}},
			`[{"resource":"u:a","actions":["r"],"constraints":{"requireApproval":true}}]`, []string{"approval_flow"}},
		{"actions not a list", []perm{{"u:a", `"read"`, ""}}, `[]`, []string{"invalid_permission"}},
		{"action Kavach refuses", []perm{{"u:a", `["re ad"]`, ""}}, `[]`, []string{"invalid_action", "invalid_permission"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows := make([]permRow, len(c.in))
			for i, p := range c.in {
				rows[i] = permRow{Resource: p.resource, Actions: p.actions, Constraints: p.constraints}
			}
			var found []string
			got := tr.permissions(rows, func(kind string, _ int, _, _ string) { found = append(found, kind) })
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != c.want {
				t.Errorf("permissions = %s; want %s", b, c.want)
			}
			slices.Sort(found)
			want := slices.Clone(c.kinds)
			slices.Sort(want)
			if !slices.Equal(found, want) {
				t.Errorf("findings = %v; want %v", found, want)
			}
			for _, k := range found {
				if kinds[k] == "" {
					t.Errorf("finding %q has no effect", k)
				}
			}
		})
	}
}

func TestKOSPattern(t *testing.T) {
	for _, c := range []struct {
		p, q             string
		covers, overlaps bool
	}{
		{"*", "a:b", true, true},
		{"a:*", "a", true, true},
		{"a:*", "a:b:c", true, true},
		{"a:*:x", "a:y:z", true, true}, // KavachOS ignores what follows '*'
		{"a:b", "a:*", false, true},
		{"a:b", "a:c", false, false},
		{"a:b:*", "a:*", false, true},
		{"a:b", "a:b:c", false, false},
		{"a:b:c", "a:*", false, true},
	} {
		p, q := parseKOS(c.p), parseKOS(c.q)
		if got := p.covers(q); got != c.covers {
			t.Errorf("%q covers %q = %v; want %v", c.p, c.q, got, c.covers)
		}
		if got := p.overlaps(q); got != c.overlaps {
			t.Errorf("%q overlaps %q = %v; want %v", c.p, c.q, got, c.overlaps)
		}
	}
}

func TestToTime(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, c := range []struct {
		in   any
		want time.Time
		ok   bool
	}{
		{int64(at.Unix()), at, true},
		{at.UnixMilli(), at, true},
		{float64(at.Unix()), at, true},
		{"1772600767", at, true},
		{[]byte("2026-03-04 05:06:07.000"), at, true},
		{"2026-03-04T06:06:07+01:00", at, true},
		{at.In(time.FixedZone("x", 3600)), at, true},
		{nil, time.Time{}, false},
	} {
		got, ok, err := toTime(c.in)
		if err != nil || ok != c.ok || !got.Equal(c.want) {
			t.Errorf("toTime(%v) = %v, %v, %v; want %v, %v", c.in, got, ok, err, c.want, c.ok)
		}
	}
	if _, _, err := toTime("yesterday"); err == nil {
		t.Errorf("toTime(yesterday) did not fail")
	}
}
