package service

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
)

// Limits on identifiers, so that a row or an OPA document stays small.
const (
	maxIDLen       = 256
	maxNameLen     = 256
	maxPatternLen  = 1024
	maxActionLen   = 128
	maxActions     = 64
	maxPermissions = 256
)

// ValidateResourcePattern checks a permission's resource pattern: segments
// separated by ':', none empty, and '*' only as a whole segment.
func ValidateResourcePattern(p string) error {
	if p == "" {
		return errors.New("resource pattern is empty")
	}
	if len(p) > maxPatternLen {
		return fmt.Errorf("resource pattern is longer than %d bytes", maxPatternLen)
	}
	for i, seg := range strings.Split(p, ":") {
		if seg == "" {
			return fmt.Errorf("resource pattern %q has an empty segment at position %d", p, i+1)
		}
		if strings.Contains(seg, "*") && seg != "*" {
			return fmt.Errorf("resource pattern %q: '*' must be a whole segment, not part of %q", p, seg)
		}
		if err := printable(seg); err != nil {
			return fmt.Errorf("resource pattern %q: %w", p, err)
		}
	}
	return nil
}

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

// validatePermission checks one permission of a request and returns it
// typed: its resource pattern, its actions, then its constraints.
func validatePermission(p api.Permission) (domain.Permission, error) {
	if err := ValidateResourcePattern(p.Resource); err != nil {
		return domain.Permission{}, err
	}
	if len(p.Actions) == 0 {
		return domain.Permission{}, fmt.Errorf("permission on %q has no actions", p.Resource)
	}
	if len(p.Actions) > maxActions {
		return domain.Permission{}, fmt.Errorf("permission on %q has more than %d actions", p.Resource, maxActions)
	}
	for _, a := range p.Actions {
		if err := validateAction(a); err != nil {
			return domain.Permission{}, fmt.Errorf("permission on %q: %w", p.Resource, err)
		}
	}
	c, err := domain.ParseConstraints(p.Constraints)
	if err != nil {
		return domain.Permission{}, err
	}
	return domain.Permission{Resource: p.Resource, Actions: p.Actions, Constraints: c}, nil
}
