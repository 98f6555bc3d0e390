package kavachos

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service/internal/core"
)

// How KavachOS v0.2.1 decides (packages/core/src/permission/engine.ts),
// and how each of its permissions becomes Kavach's:
//
//   - It takes the first permission whose pattern and actions match and
//     decides by its constraints alone; Kavach allows if any matching
//     permission does. So the actions a later permission shares with an
//     earlier, constrained one are removed from it: exactly when the
//     earlier one covers it (KavachOS never reached them), stricter when
//     they only overlap (first_match_overlap).
//   - A '*' segment matches the whole remainder, none included, and what
//     follows it is ignored; Kavach's '*' is one segment, a trailing one
//     one or more. The pattern is kept with Kavach's stricter meaning and
//     reported (wildcard_bare_prefix, wildcard_mid_pattern).
//   - Constraints: maxCallsPerHour as is (rounded up); allowedArgPatterns
//     (every top-level string must match every pattern) as is when there is
//     one pattern; timeWindow (server local time, end minute included,
//     never crossing midnight) rewritten to the same minutes; ipAllowlist
//     without the entries that could never match; requireApproval as is.
//     A permission whose constraints can never be met is dropped.

// permission is a KavachOS permission on its way to Kavach's.
type permission struct {
	pos         int // 1-based position in KavachOS's order
	resource    string
	actions     []string
	constraints domain.Constraints
	// constrained: KavachOS's constraints may deny a call this permission
	// matches (never: they always do).
	constrained, never bool
	dropped            bool
}

// translator turns KavachOS permissions into Kavach's, reporting where
// the meaning moves.
type translator struct {
	patterns *engine.Patterns
	// zone is the KavachOS server's time zone (IANA), in which its time
	// windows were read; "" is UTC.
	zone string
	// valid caches pattern checks: most agents share a few patterns.
	valid map[string]bool
}

func newTranslator(ctx context.Context, zone string) (*translator, error) {
	p, err := engine.NewPatterns(ctx)
	if err != nil {
		return nil, err
	}
	if zone == "UTC" {
		zone = ""
	}
	return &translator{patterns: p, zone: zone, valid: map[string]bool{}}, nil
}

// validPattern reports whether Kavach accepts p as a resource pattern.
func (t *translator) validPattern(p string) bool {
	ok, seen := t.valid[p]
	if !seen {
		ok = core.ValidateResourcePattern(p) == nil
		if len(t.valid) >= 100_000 {
			clear(t.valid)
		}
		t.valid[p] = ok
	}
	return ok
}

// note reports a finding about a permission.
type note func(kind string, pos int, resource, detail string)

// permissions translates one agent's permissions, in KavachOS's order.
func (t *translator) permissions(rows []permRow, report note) []domain.Permission {
	perms := make([]*permission, 0, len(rows))
	for i, r := range rows {
		p := &permission{pos: i + 1, resource: r.Resource}
		if err := json.Unmarshal([]byte(r.Actions), &p.actions); err != nil {
			report("invalid_permission", p.pos, r.Resource, "actions are not a list of strings: dropped")
			continue
		}
		t.constraints(p, r.Constraints, report)
		perms = append(perms, p)
	}
	shadow(perms, report)
	out := make([]domain.Permission, 0, len(perms))
	seen := map[string]int{}
	for _, p := range perms {
		switch {
		case p.dropped:
			continue
		case p.never:
			report("never_allowed", p.pos, p.resource, "its constraints can never be met in KavachOS: not imported")
			continue
		}
		if !t.pattern(p, report) || !t.checkActions(p, report) {
			continue
		}
		key := engine.PermissionKey(p.resource, p.actions)
		if j, dup := seen[key]; dup {
			report("duplicate_permission", p.pos, p.resource, fmt.Sprintf("the same resource and actions as permission %d, which KavachOS always reached first: not imported", j))
			continue
		}
		if len(out) == core.MaxPermissions {
			report("too_many_permissions", p.pos, p.resource, fmt.Sprintf("Kavach holds at most %d permissions per agent: not imported", core.MaxPermissions))
			continue
		}
		seen[key] = p.pos
		out = append(out, domain.Permission{Resource: p.resource, Actions: p.actions, Constraints: p.constraints})
	}
	return out
}

// pattern checks p's resource pattern, reporting where Kavach's meaning
// is stricter; false when Kavach cannot hold it.
func (t *translator) pattern(p *permission, report note) bool {
	segs := strings.Split(p.resource, ":")
	star := slices.Index(segs, "*")
	valid := t.validPattern(p.resource)
	switch {
	case p.resource == "*":
	case star >= 0 && star < len(segs)-1:
		what := "kept with Kavach's meaning: '*' matches one segment, and what follows it must match"
		if !valid {
			what = "not imported: Kavach cannot hold the pattern"
		}
		matched := fmt.Sprintf("every resource starting with %q", strings.Join(segs[:star], ":"))
		if star == 0 {
			matched = "every resource"
		}
		report("wildcard_mid_pattern", p.pos, p.resource, fmt.Sprintf("KavachOS matched %s (the '*' took the whole remainder); %s", matched, what))
	case star > 0 && valid:
		report("wildcard_bare_prefix", p.pos, p.resource, fmt.Sprintf("KavachOS also matched %q itself; Kavach's trailing '*' needs one more segment", strings.Join(segs[:star], ":")))
	}
	if !valid && (star < 0 || star == len(segs)-1) {
		report("pattern_unmatchable", p.pos, p.resource, "matches no resource Kavach accepts (an empty segment, a '*' inside a segment, whitespace or a control character): not imported")
	}
	return valid
}

// checkActions checks p's actions; false when none is left.
func (t *translator) checkActions(p *permission, report note) bool {
	kept := p.actions[:0:0]
	for _, a := range p.actions {
		if err := core.ValidateAction(a); err != nil {
			report("invalid_action", p.pos, p.resource, fmt.Sprintf("action dropped: %v", err))
			continue
		}
		if !slices.Contains(kept, a) {
			kept = append(kept, a)
		}
	}
	if len(kept) > core.MaxActions {
		report("too_many_actions", p.pos, p.resource, fmt.Sprintf("Kavach holds at most %d actions per permission: not imported", core.MaxActions))
		return false
	}
	if len(kept) == 0 {
		report("invalid_permission", p.pos, p.resource, "no action Kavach accepts: not imported")
		return false
	}
	p.actions = kept
	return true
}

// kosPattern is a KavachOS pattern as it matches: the literal segments
// before the first '*', and whether there is one (then any remainder,
// none included, matches).
type kosPattern struct {
	lits []string
	star bool
}

func parseKOS(p string) kosPattern {
	if p == "*" {
		return kosPattern{star: true}
	}
	segs := strings.Split(p, ":")
	if i := slices.Index(segs, "*"); i >= 0 {
		return kosPattern{lits: segs[:i], star: true}
	}
	return kosPattern{lits: segs}
}

// covers reports whether every resource q matches, p matches (KavachOS).
func (p kosPattern) covers(q kosPattern) bool {
	if !p.star {
		return !q.star && slices.Equal(p.lits, q.lits)
	}
	return len(q.lits) >= len(p.lits) && slices.Equal(q.lits[:len(p.lits)], p.lits)
}

// overlaps reports whether some resource matches both (KavachOS).
func (p kosPattern) overlaps(q kosPattern) bool {
	n := min(len(p.lits), len(q.lits))
	if !slices.Equal(p.lits[:n], q.lits[:n]) {
		return false
	}
	switch {
	case p.star && q.star:
		return true
	case p.star:
		return len(q.lits) >= len(p.lits)
	case q.star:
		return len(p.lits) >= len(q.lits)
	}
	return len(p.lits) == len(q.lits)
}

// shadow applies KavachOS's first match. A permission's actions that an
// earlier, constrained permission also grants were decided by that one
// on the resources both match: they are removed. When the earlier one
// covers this one, that is exact (KavachOS never reached them); when the
// two only overlap, it is stricter (KavachOS allowed them on the
// resources only this one matches), for Kavach would otherwise allow what
// the earlier one's constraints denied. A "*" that cannot be narrowed to
// the other actions takes the whole permission with it.
func shadow(perms []*permission, report note) {
	for j, q := range perms {
		qp := parseKOS(q.resource)
		for _, p := range perms[:j] {
			if !p.constrained || q.dropped {
				continue
			}
			pp := parseKOS(p.resource)
			if !pp.overlaps(qp) || !actionsOverlap(p.actions, q.actions) {
				continue
			}
			all := slices.Contains(p.actions, "*")
			star := slices.Contains(q.actions, "*") && !all
			kept := slices.DeleteFunc(slices.Clone(q.actions), func(a string) bool { return star || all || slices.Contains(p.actions, a) })
			removed := slices.DeleteFunc(slices.Clone(q.actions), func(a string) bool { return slices.Contains(kept, a) })
			by := fmt.Sprintf("permission %d (%q, constrained), which comes first", p.pos, p.resource)
			switch exact := pp.covers(qp) && !star; {
			case exact && len(kept) == 0:
				report("shadowed_permission", q.pos, q.resource, "KavachOS never reached it: "+by+", decided all its calls; not imported")
			case exact:
				report("shadowed_actions", q.pos, q.resource, fmt.Sprintf("actions %v removed: KavachOS decided them by %s", removed, by))
			case len(kept) == 0:
				report("first_match_overlap", q.pos, q.resource, fmt.Sprintf(
					"KavachOS decided the calls it shares with %s by that one's constraints, and Kavach would allow them through this one: not imported, so the calls only it matched are denied too", by))
			default:
				report("first_match_overlap", q.pos, q.resource, fmt.Sprintf(
					"actions %v removed: KavachOS decided the calls it shares with %s by that one's constraints, and Kavach would allow them through this one; they are denied where only it matched too", removed, by))
			}
			if len(kept) == 0 {
				q.dropped = true
				continue
			}
			q.actions = kept
		}
	}
}

func actionsOverlap(a, b []string) bool {
	if slices.Contains(a, "*") || slices.Contains(b, "*") {
		return true
	}
	return slices.ContainsFunc(a, func(x string) bool { return slices.Contains(b, x) })
}

// constraints translates p's KavachOS constraints (JSON) into p.
func (t *translator) constraints(p *permission, raw string, report note) {
	var v any
	if raw == "" || json.Unmarshal([]byte(raw), &v) != nil {
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		// KavachOS reads no constraint from a list or a string.
		return
	}
	// Any object, even {}, makes KavachOS decide by it, but only one with
	// a constraint that may deny shadows later permissions.
	m := map[string]any{}
	untranslatable := func(key, why string) {
		p.never = true
		report("constraint_untranslatable", p.pos, p.resource, fmt.Sprintf("%s: %s; the permission is not imported", key, why))
	}
	for key, x := range obj {
		switch key {
		case "maxCallsPerHour":
			n, isNum := x.(float64)
			switch {
			case x == nil, isNum && n == 0, x == false:
				// Falsy: no limit.
			case !isNum:
				untranslatable(key, "not a number")
			case n < 0:
				p.never = true
			case n > domain.MaxCallsPerHour:
				m[key] = float64(domain.MaxCallsPerHour)
				report("rate_limit_clamped", p.pos, p.resource, fmt.Sprintf("maxCallsPerHour %v lowered to Kavach's maximum, %d", n, domain.MaxCallsPerHour))
			default:
				m[key] = math.Ceil(n)
			}
		case "requireApproval":
			if truthy(x) {
				m[key] = true
				report("approval_flow", p.pos, p.resource, "requireApproval: KavachOS denied every call; Kavach denies it and opens an approval request, and allows the call once a human approves")
			}
		case "allowedArgPatterns":
			t.argPatterns(p, x, m, report, untranslatable)
		case "timeWindow":
			t.timeWindow(p, x, m, untranslatable)
		case "ipAllowlist":
			ipAllowlist(p, x, m, report, untranslatable)
		default:
			report("unknown_constraint", p.pos, p.resource, fmt.Sprintf("constraint %q, which KavachOS ignores, is not imported", key))
		}
	}
	c, err := domain.ParseConstraints(m)
	if err != nil {
		// What the functions above build always parses.
		untranslatable("constraints", err.Error())
		return
	}
	p.constraints = c
	p.constrained = p.never || !c.IsZero()
}

func truthy(x any) bool {
	switch v := x.(type) {
	case nil:
		return false
	case bool:
		return v
	case float64:
		return v != 0
	case string:
		return v != ""
	}
	return true
}

// argPatterns: KavachOS requires every top-level string argument to match
// every pattern (JavaScript RegExp, unanchored); Kavach every string, at
// any depth, to match one (RE2, unanchored). One pattern means the same,
// but for the depth (stricter here); several cannot be written in Kavach.
func (t *translator) argPatterns(p *permission, x any, m map[string]any, report note, untranslatable func(string, string)) {
	const key = "allowedArgPatterns"
	list, ok := x.([]any)
	if !ok {
		if truthy(x) {
			untranslatable(key, "not a list")
		}
		return
	}
	var pats []any
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			untranslatable(key, "not a list of strings")
			return
		}
		if !slices.Contains(pats, any(s)) {
			pats = append(pats, s)
		}
	}
	switch len(pats) {
	case 0:
		return
	case 1:
		if _, err := regexp.Compile(pats[0].(string)); err != nil {
			p.never = true
			report("arg_pattern_not_re2", p.pos, p.resource, fmt.Sprintf("pattern %q is not an RE2 expression (%v): the permission is not imported", pats[0], err))
			return
		}
		m[key] = pats
		report("arg_patterns_nested", p.pos, p.resource, "KavachOS checked the top-level string arguments; Kavach checks every string, at any depth")
	default:
		p.never = true
		report("arg_patterns_all", p.pos, p.resource, fmt.Sprintf(
			"KavachOS required every string argument to match all %d patterns; Kavach requires one to match, so the permission is not imported (write one pattern for their intersection)", len(pats)))
	}
}

// timeWindow: KavachOS allows a call when the server's local time, as
// "HH:MM", lies between start and end as strings, both included; Kavach's
// end is excluded and a start after the end crosses midnight. The minutes
// KavachOS allows are one run (the comparison follows the clock), written
// here as Kavach's window over the same minutes.
func (t *translator) timeWindow(p *permission, x any, m map[string]any, untranslatable func(string, string)) {
	const key = "timeWindow"
	w, ok := x.(map[string]any)
	if !ok {
		return
	}
	start, okStart := w["start"].(string)
	end, okEnd := w["end"].(string)
	if !okStart || !okEnd {
		if w["start"] != nil || w["end"] != nil {
			untranslatable(key, "start and end are not both strings")
		}
		return
	}
	first, last := -1, -1
	for minute := range 24 * 60 {
		hhmm := clock(minute)
		if hhmm >= start && hhmm <= end {
			if first < 0 {
				first = minute
			}
			last = minute
		}
	}
	switch {
	case first < 0:
		p.never = true
	case first == 0 && last == 24*60-1:
		// The whole day: no window.
	default:
		tw := map[string]any{"start": clock(first), "end": clock((last + 1) % (24 * 60))}
		if t.zone != "" {
			tw["timezone"] = t.zone
		}
		m[key] = tw
	}
}

func clock(minute int) string { return fmt.Sprintf("%02d:%02d", minute/60, minute%60) }

// ipAllowlist: KavachOS compares an exact entry as a string and a CIDR
// entry as IPv4 only; entries that could never match are dropped, and a
// list left empty never matches.
func ipAllowlist(p *permission, x any, m map[string]any, report note, untranslatable func(string, string)) {
	const key = "ipAllowlist"
	list, ok := x.([]any)
	if !ok {
		if truthy(x) {
			untranslatable(key, "not a list")
		}
		return
	}
	if len(list) == 0 {
		return
	}
	var kept []any
	var dropped []string
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			untranslatable(key, "not a list of strings")
			return
		}
		if strings.Contains(s, "/") {
			if pf, err := netip.ParsePrefix(s); err == nil && pf.Addr().Is4() {
				kept = append(kept, pf.Masked().String())
				continue
			}
		} else if a, err := netip.ParseAddr(s); err == nil && a.String() == s {
			kept = append(kept, s)
			continue
		}
		dropped = append(dropped, s)
	}
	if len(dropped) > 0 {
		report("ip_entries_dropped", p.pos, p.resource, fmt.Sprintf("entries %q are not an IPv4 CIDR prefix or an address as KavachOS compared them (as text): dropped", dropped))
	}
	if len(kept) == 0 {
		p.never = true
		return
	}
	m[key] = kept
}
