package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a length of time as the configuration writes it: a number
// with a unit (500ms, 90s, 5m, 1h30m, 7d, 2w), or, for the keys the seeds
// give as a number (approval.ttl and mcp's TTLs in seconds,
// audit.retentionDays in days), a plain number: `ttl: 300` and `ttl: 5m`
// are the same. The file, environment variables and flags all give it as
// text; Validate reads it with the key's Rule, which names the key in every
// error. "" is unset (the default).
type Duration string

// UnmarshalYAML takes a scalar, a YAML number (300) or text (5m), as
// written; a mapping or a list is an error naming the line (keyErrors turns
// it into the key path).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot read a %s into a duration", n.Line, nodeKind(n.Kind))}}
	}
	if n.ShortTag() == "!!null" {
		*d = ""
		return nil
	}
	*d = Duration(n.Value)
	return nil
}

func nodeKind(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// Rule says what one duration setting takes, and names it in errors.
type Rule struct {
	// Name is the setting as errors name it: its key path, with the flag
	// and environment variable that set it too ("database.timeout
	// (--database-timeout, KAVACH_DATABASE_TIMEOUT)"), or a flag.
	Name string
	// Plain is what a number without a unit counts (time.Second; Day for
	// a key in days); 0 requires a unit.
	Plain time.Duration
	// Min and Max bound the value.
	Min, Max time.Duration
	// Step, if set, is what the value must be a whole number of
	// (time.Second: no 1500ms where only seconds count).
	Step time.Duration
	// Examples are written values shown when one is not a duration
	// ("500ms, 5s, 1m"); by default "5m, 1h, 7d".
	Examples string
	// Unset says what leaving the setting out gives ("the default, 5m").
	Unset string
	// Zero, if set, allows 0 and says what it means ("keeps every row").
	Zero string
}

// Day and Week are the units d and w: 24 hours and 7 days, whatever the
// clock does (no daylight saving).
const (
	Day  = 24 * time.Hour
	Week = 7 * Day
)

// units are the suffixes a duration may use: Go's, and d and w.
var units = map[string]time.Duration{
	"ns": time.Nanosecond, "us": time.Microsecond, "µs": time.Microsecond, "ms": time.Millisecond,
	"s": time.Second, "m": time.Minute, "h": time.Hour, "d": Day, "w": Week,
}

// Parse reads s by the rule: "" is 0 (unset, for the caller's default);
// anything else must be a duration the rule takes, or the error says, by
// the rule's name, what is allowed.
func (r Rule) Parse(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	neg := strings.HasPrefix(s, "-")
	d, plain, ok := parseDuration(strings.TrimPrefix(s, "-"), r.Plain)
	switch {
	case !ok && plain:
		return 0, fmt.Errorf("%s: %q has no unit: use a number with a unit (%s)", r.Name, s, r.examples())
	case !ok:
		return 0, fmt.Errorf("%s: %q is not a duration: use %s", r.Name, s, r.takes())
	case d == 0 && !neg && r.Zero != "":
		return 0, nil
	case neg || d < r.Min || d > r.Max:
		return 0, fmt.Errorf("%s: %q is out of range: use from %s", r.Name, s, r.Range())
	case r.Step > 0 && d%r.Step != 0:
		return 0, fmt.Errorf("%s: %q is not a whole number of %s: use from %s", r.Name, s, unitName(r.Step), r.Range())
	}
	return d, nil
}

// Range says what the rule takes, in the units it is written in:
// "1s to 7d (1 to 604800 seconds); leave it out for the default, 5m".
func (r Rule) Range() string {
	out := FormatDuration(r.Min) + " to " + FormatDuration(r.Max)
	if r.Plain > 0 {
		out += fmt.Sprintf(" (%d to %d %s)", r.Min/r.Plain, r.Max/r.Plain, unitName(r.Plain))
	}
	if r.Zero != "" {
		out += "; 0 " + r.Zero
	}
	if r.Unset != "" {
		out += "; leave it out for " + r.Unset
	}
	return out
}

func (r Rule) examples() string {
	if r.Examples != "" {
		return r.Examples
	}
	return "5m, 1h, 7d"
}

// takes says what a value may look like: "seconds (300) or a number with a
// unit (5m, 1h, 7d)".
func (r Rule) takes() string {
	withUnit := "a number with a unit (" + r.examples() + ")"
	switch r.Plain {
	case 0:
		return withUnit
	case Day:
		return "days (30) or " + withUnit
	}
	return unitName(r.Plain) + " (300) or " + withUnit
}

func unitName(u time.Duration) string {
	switch u {
	case Day:
		return "days"
	case time.Hour:
		return "hours"
	case time.Minute:
		return "minutes"
	case time.Second:
		return "seconds"
	case time.Millisecond:
		return "milliseconds"
	}
	return u.String() + "s"
}

// parseDuration reads a plain whole number (counting plain; plain reports
// one even when plain is 0, to say a unit is missing) or a sequence of
// numbers with units, as time.ParseDuration does, plus d and w: 1h30m,
// 1.5h, 500ms, 7d. Nothing else: no sign, no space. ok is false on
// anything else, and on a value past the largest duration.
func parseDuration(s string, plainUnit time.Duration) (d time.Duration, plain, ok bool) {
	if s == "" {
		return 0, false, false
	}
	if isDigits(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		if plainUnit == 0 {
			return 0, true, n == 0 && err == nil // 0 needs no unit
		}
		if err != nil || n > int64(maxDuration/plainUnit) {
			// Past any range: report it as out of range, not as malformed.
			return maxDuration, true, true
		}
		return time.Duration(n) * plainUnit, true, true
	}
	for s != "" {
		i := 0
		for i < len(s) && numeric(s[i]) {
			i++
		}
		num := s[:i]
		s = s[i:]
		j := 0
		for j < len(s) && !numeric(s[j]) {
			j++
		}
		unit, known := units[s[:j]]
		s = s[j:]
		whole, frac, hasDot := strings.Cut(num, ".")
		if !known || whole == "" && frac == "" || !isDigits(whole+frac) || hasDot && frac == "" {
			return 0, false, false
		}
		v, okPart := component(whole, frac, unit)
		if !okPart || v > maxDuration-d {
			return maxDuration, false, true
		}
		d += v
	}
	return d, false, true
}

// maxDuration is the largest value parsed; anything larger is clamped to
// it, which every rule's Max is below, so it reads as out of range.
const maxDuration = time.Duration(1<<63 - 1)

// component is whole.frac units, false past maxDuration.
func component(whole, frac string, unit time.Duration) (time.Duration, bool) {
	var d time.Duration
	if whole != "" {
		n, err := strconv.ParseInt(whole, 10, 64)
		if err != nil || n > int64(maxDuration/unit) {
			return 0, false
		}
		d = time.Duration(n) * unit
	}
	// The fraction, digit by digit: at most nanosecond precision matters.
	scale := unit
	for _, c := range frac {
		scale /= 10
		if scale == 0 {
			break
		}
		d += time.Duration(c-'0') * scale
	}
	return d, d >= 0
}

// numeric reports whether c belongs to a number: a digit or the point.
func numeric(c byte) bool { return c >= '0' && c <= '9' || c == '.' }

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// FormatDuration writes d the way the configuration does: whole days as
// 7d, else as Go does without trailing zero units (1h30m, 5m, 500ms).
func FormatDuration(d time.Duration) string {
	if d >= Day && d%Day == 0 {
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
