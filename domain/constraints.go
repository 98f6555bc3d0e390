package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// MaxCallsPerHour bounds rate limits to what a sliding window can count.
const MaxCallsPerHour = 1_000_000

// Constraints narrow a permission. The zero value constrains nothing. The
// policy (policies/authz/constraints.rego) reads them with these JSON names.
type Constraints struct {
	// RequireApproval asks a human to approve each call. A stored false is
	// kept as false, not dropped.
	RequireApproval *bool `json:"requireApproval,omitempty"`
	// RequireApprovalBelow, a trust level, asks for approval only while the
	// calling agent's level ranks below it: agents earn autonomy. It is
	// requireApproval written with a level name instead of true; at most one
	// of RequireApproval and RequireApprovalBelow is set.
	RequireApprovalBelow string `json:"-"`
	// MinTrustLevel, a trust level, refuses calls while the calling agent's
	// level ranks below it (trust_insufficient).
	MinTrustLevel string `json:"minTrustLevel,omitempty"`
	// MaxCallsPerHour limits calls in a sliding hour; 0 means no limit.
	MaxCallsPerHour int64 `json:"maxCallsPerHour,omitempty"`
	// TimeWindow limits calls to a time of day and days of the week.
	TimeWindow *TimeWindow `json:"timeWindow,omitempty"`
	// IPAllowlist lists the addresses and CIDR prefixes calls may come from.
	IPAllowlist []string `json:"ipAllowlist,omitempty"`
	// AllowedArgPatterns are RE2 patterns every string argument must match.
	AllowedArgPatterns []string `json:"allowedArgPatterns,omitempty"`
	// Unknown holds, for a stored row only, constraints this version does
	// not know (written by a newer replica during an upgrade): they are
	// kept and passed on as they are, never dropped. ParseConstraints, the
	// check at the API's edge, refuses them.
	Unknown map[string]any `json:"-"`
}

// TimeWindow is a daily window "HH:MM" to "HH:MM" (it may cross
// midnight), in Timezone (IANA name; UTC when empty), on Days (mon…sun;
// every day when empty).
type TimeWindow struct {
	Start    string   `json:"start"`
	End      string   `json:"end"`
	Timezone string   `json:"timezone,omitempty"`
	Days     []string `json:"days,omitempty"`
}

// IsZero reports whether c constrains nothing.
func (c Constraints) IsZero() bool {
	return c.RequireApproval == nil && c.RequireApprovalBelow == "" && c.MinTrustLevel == "" && c.MaxCallsPerHour == 0 && c.TimeWindow == nil &&
		c.IPAllowlist == nil && c.AllowedArgPatterns == nil && len(c.Unknown) == 0
}

// Map is c as the JSON object the API and the policy data carry; nil when
// c is zero.
func (c Constraints) Map() map[string]any {
	if c.IsZero() {
		return nil
	}
	m := map[string]any{}
	for k, v := range c.Unknown {
		m[k] = v
	}
	if c.RequireApproval != nil {
		m["requireApproval"] = *c.RequireApproval
	}
	if c.RequireApprovalBelow != "" {
		m["requireApproval"] = c.RequireApprovalBelow
	}
	if c.MinTrustLevel != "" {
		m["minTrustLevel"] = c.MinTrustLevel
	}
	if c.MaxCallsPerHour != 0 {
		m["maxCallsPerHour"] = c.MaxCallsPerHour
	}
	if w := c.TimeWindow; w != nil {
		tw := map[string]any{"start": w.Start, "end": w.End}
		if w.Timezone != "" {
			tw["timezone"] = w.Timezone
		}
		if w.Days != nil {
			tw["days"] = anyList(w.Days)
		}
		m["timeWindow"] = tw
	}
	if c.IPAllowlist != nil {
		m["ipAllowlist"] = anyList(c.IPAllowlist)
	}
	if c.AllowedArgPatterns != nil {
		m["allowedArgPatterns"] = anyList(c.AllowedArgPatterns)
	}
	return m
}

func anyList(list []string) []any {
	out := make([]any, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
}

// ParseConstraints checks a constraints object as JSON decodes it (numbers
// as float64) and returns it typed. Unknown constraints are refused, so a
// typo never silently weakens a permission.
func ParseConstraints(m map[string]any) (Constraints, error) {
	var c Constraints
	for k, v := range m {
		var err error
		switch k {
		case "requireApproval":
			switch x := v.(type) {
			case bool:
				c.RequireApproval = &x
			case string:
				c.RequireApprovalBelow, err = trustLevel(x)
			default:
				err = fmt.Errorf("must be true, false or a trust level (%s)", trustLevelNames)
			}
		case "minTrustLevel":
			s, ok := v.(string)
			if !ok {
				err = fmt.Errorf("must be a trust level (%s)", trustLevelNames)
				break
			}
			c.MinTrustLevel, err = trustLevel(s)
		case "maxCallsPerHour":
			f, ok := number(v)
			if !ok || f < 1 || f > MaxCallsPerHour || f != float64(int64(f)) {
				err = fmt.Errorf("must be a whole number from 1 to %d", MaxCallsPerHour)
			}
			c.MaxCallsPerHour = int64(f)
		case "timeWindow":
			c.TimeWindow, err = parseTimeWindow(v)
		case "ipAllowlist":
			c.IPAllowlist, err = eachString(v, func(s string) error {
				if _, perr := netip.ParsePrefix(s); perr == nil {
					return nil
				}
				if _, perr := netip.ParseAddr(s); perr != nil {
					return fmt.Errorf("%q is neither an IP address nor a CIDR prefix", s)
				}
				return nil
			})
		case "allowedArgPatterns":
			c.AllowedArgPatterns, err = eachString(v, func(s string) error {
				if _, rerr := regexp.Compile(s); rerr != nil {
					return fmt.Errorf("invalid RE2 pattern %q: %w", s, rerr)
				}
				return nil
			})
		default:
			return Constraints{}, fmt.Errorf("unknown constraint %q (known: requireApproval, minTrustLevel, maxCallsPerHour, timeWindow, ipAllowlist, allowedArgPatterns)", k)
		}
		if err != nil {
			return Constraints{}, fmt.Errorf("constraint %s: %w", k, err)
		}
	}
	return c, nil
}

// trustLevelNames lists the levels for messages, lowest first.
var trustLevelNames = strings.Join(TrustLevels, ", ")

// trustLevel returns s if it names a trust level.
func trustLevel(s string) (string, error) {
	if TrustRank(s) < 0 {
		return "", fmt.Errorf("%q is not a trust level (%s)", s, trustLevelNames)
	}
	return s, nil
}

// number accepts the numbers JSON and YAML decoders produce.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

var clock = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

func parseTimeWindow(v any) (*TimeWindow, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New(`must be an object {"start":"HH:MM","end":"HH:MM"}`)
	}
	var w TimeWindow
	for _, k := range []string{"start", "end"} {
		s, ok := m[k].(string)
		if !ok || !clock.MatchString(s) {
			return nil, fmt.Errorf("%s must be a time HH:MM", k)
		}
	}
	w.Start, w.End = m["start"].(string), m["end"].(string)
	for k, x := range m {
		switch k {
		case "start", "end":
		case "timezone":
			tz, ok := x.(string)
			if !ok || tz == "" {
				return nil, errors.New("timezone must be an IANA time zone name such as Europe/Berlin")
			}
			if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
				return nil, fmt.Errorf("timezone %q is not an IANA time zone name", tz)
			}
			w.Timezone = tz
		case "days":
			seen := map[string]bool{}
			days, err := eachString(x, func(d string) error {
				if !weekdays[d] {
					return fmt.Errorf("day %q is not one of mon, tue, wed, thu, fri, sat, sun", d)
				}
				if seen[d] {
					return fmt.Errorf("day %q is listed twice", d)
				}
				seen[d] = true
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("days: %w", err)
			}
			w.Days = days
		default:
			return nil, fmt.Errorf("unknown field %q (known: start, end, timezone, days)", k)
		}
	}
	return &w, nil
}

var weekdays = map[string]bool{"mon": true, "tue": true, "wed": true, "thu": true, "fri": true, "sat": true, "sun": true}

func eachString(v any, check func(string) error) ([]string, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, errors.New("must be a non-empty list of strings")
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, errors.New("must be a list of strings")
		}
		if err := check(s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// MarshalJSON writes c as Map does, unknown constraints included.
func (c Constraints) MarshalJSON() ([]byte, error) {
	m := c.Map()
	if m == nil {
		m = map[string]any{}
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads constraints as the database and the policy hold
// them. It checks their JSON types, not their values: a row written by an
// earlier or later version (a time zone since dropped from the tz
// database, a constraint this version does not know) still loads, as it
// did when constraints were a plain map, rather than stop every replica
// from loading its agents. Numbers may take any JSON form (1e+06).
// Requests are checked by ParseConstraints.
func (c *Constraints) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	var out Constraints
	for k, v := range m {
		var ok bool
		switch k {
		case "requireApproval":
			switch x := v.(type) {
			case bool:
				out.RequireApproval, ok = &x, true
			case string:
				out.RequireApprovalBelow, ok = x, x != ""
			}
		case "minTrustLevel":
			out.MinTrustLevel, ok = v.(string)
			ok = ok && out.MinTrustLevel != ""
		case "maxCallsPerHour":
			var f float64
			f, ok = number(v)
			out.MaxCallsPerHour = int64(f)
		case "timeWindow":
			out.TimeWindow, ok = storedTimeWindow(v)
		case "ipAllowlist":
			out.IPAllowlist, ok = stringList(v)
		case "allowedArgPatterns":
			out.AllowedArgPatterns, ok = stringList(v)
		default:
			if out.Unknown == nil {
				out.Unknown = map[string]any{}
			}
			out.Unknown[k], ok = v, true
		}
		if !ok {
			return fmt.Errorf("constraint %s: unexpected JSON %v", k, v)
		}
	}
	*c = out
	return nil
}

func storedTimeWindow(v any) (*TimeWindow, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	var w TimeWindow
	w.Start, _ = m["start"].(string)
	w.End, _ = m["end"].(string)
	w.Timezone, _ = m["timezone"].(string)
	if d, has := m["days"]; has {
		if w.Days, ok = stringList(d); !ok {
			return nil, false
		}
	}
	return &w, true
}

func stringList(v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}
