package service

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/store"
)

// Limits on identifiers, so that a row or an OPA document stays small.
const (
	maxIDLen       = 256
	maxNameLen     = 256
	maxPatternLen  = 1024
	maxActionLen   = 128
	maxActions     = 64
	maxPermissions = 256
	// maxCallsPerHour bounds rate limits to what a sliding window can count.
	maxCallsPerHour = 1_000_000
)

// ValidateResourcePattern checks a permission's resource pattern against
// the policy's grammar (data.kavach.resources.pattern_error: segments
// separated by ':', none empty, '*' only as a whole segment, no whitespace
// or control characters), after the limits of what Kavach stores: at most
// maxPatternLen bytes of UTF-8.
func ValidateResourcePattern(p string) error {
	if len(p) > maxPatternLen {
		return fmt.Errorf("resource pattern is longer than %d bytes", maxPatternLen)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("resource pattern %q: is not valid UTF-8", p)
	}
	g, err := patternGrammar()
	if err != nil {
		return err
	}
	// Patterns are checked when written, never on the decision path: a
	// query of its own, without a request's context, is cheap enough.
	msg, err := g.Error(context.Background(), p)
	if err != nil {
		return err
	}
	if msg != "" {
		return errors.New(msg)
	}
	return nil
}

// patternGrammar is the policy's pattern grammar, prepared once on first
// use and shared (like the regexps below, it never changes).
var patternGrammar = sync.OnceValues(func() (*engine.Patterns, error) {
	return engine.NewPatterns(context.Background())
})

func printable(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("contains whitespace or a control character (%q)", r)
		}
	}
	return nil
}

func validateAction(a string) error {
	if a == "" {
		return errors.New("action is empty")
	}
	if len(a) > maxActionLen {
		return fmt.Errorf("action is longer than %d bytes", maxActionLen)
	}
	if err := printable(a); err != nil {
		return fmt.Errorf("action %q: %w", a, err)
	}
	return nil
}

func validatePermission(p store.Permission) error {
	if err := ValidateResourcePattern(p.Resource); err != nil {
		return err
	}
	if len(p.Actions) == 0 {
		return fmt.Errorf("permission on %q has no actions", p.Resource)
	}
	if len(p.Actions) > maxActions {
		return fmt.Errorf("permission on %q has more than %d actions", p.Resource, maxActions)
	}
	for _, a := range p.Actions {
		if err := validateAction(a); err != nil {
			return fmt.Errorf("permission on %q: %w", p.Resource, err)
		}
	}
	return validateConstraints(p.Constraints)
}

// validateConstraints checks the shape of known constraints and rejects
// unknown ones, so a typo never silently weakens a permission.
func validateConstraints(c map[string]any) error {
	for k, v := range c {
		var err error
		switch k {
		case "requireApproval":
			if _, ok := v.(bool); !ok {
				err = errors.New("must be true or false")
			}
		case "maxCallsPerHour":
			if f, ok := v.(float64); !ok || f < 1 || f > maxCallsPerHour || f != float64(int64(f)) {
				err = fmt.Errorf("must be a whole number from 1 to %d", maxCallsPerHour)
			}
		case "timeWindow":
			err = validateTimeWindow(v)
		case "ipAllowlist":
			err = eachString(v, func(s string) error {
				if _, perr := netip.ParsePrefix(s); perr == nil {
					return nil
				}
				if _, perr := netip.ParseAddr(s); perr != nil {
					return fmt.Errorf("%q is neither an IP address nor a CIDR prefix", s)
				}
				return nil
			})
		case "allowedArgPatterns":
			err = eachString(v, func(s string) error {
				if _, rerr := regexp.Compile(s); rerr != nil {
					return fmt.Errorf("invalid RE2 pattern %q: %w", s, rerr)
				}
				return nil
			})
		default:
			return fmt.Errorf("unknown constraint %q (known: requireApproval, maxCallsPerHour, timeWindow, ipAllowlist, allowedArgPatterns)", k)
		}
		if err != nil {
			return fmt.Errorf("constraint %s: %w", k, err)
		}
	}
	return nil
}

var clock = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

func validateTimeWindow(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return errors.New(`must be an object {"start":"HH:MM","end":"HH:MM"}`)
	}
	for _, k := range []string{"start", "end"} {
		s, ok := m[k].(string)
		if !ok || !clock.MatchString(s) {
			return fmt.Errorf("%s must be a time HH:MM", k)
		}
	}
	for k, x := range m {
		switch k {
		case "start", "end":
		case "timezone":
			tz, ok := x.(string)
			if !ok || tz == "" {
				return errors.New("timezone must be an IANA time zone name such as Europe/Berlin")
			}
			if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
				return fmt.Errorf("timezone %q is not an IANA time zone name", tz)
			}
		case "days":
			seen := map[string]bool{}
			if err := eachString(x, func(d string) error {
				if !weekdays[d] {
					return fmt.Errorf("day %q is not one of mon, tue, wed, thu, fri, sat, sun", d)
				}
				if seen[d] {
					return fmt.Errorf("day %q is listed twice", d)
				}
				seen[d] = true
				return nil
			}); err != nil {
				return fmt.Errorf("days: %w", err)
			}
		default:
			return fmt.Errorf("unknown field %q (known: start, end, timezone, days)", k)
		}
	}
	return nil
}

var weekdays = map[string]bool{"mon": true, "tue": true, "wed": true, "thu": true, "fri": true, "sat": true, "sun": true}

func eachString(v any, check func(string) error) error {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return errors.New("must be a non-empty list of strings")
	}
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return errors.New("must be a list of strings")
		}
		if err := check(s); err != nil {
			return err
		}
	}
	return nil
}
