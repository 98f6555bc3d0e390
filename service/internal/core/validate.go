// Package core holds what the application layer's use cases share: the
// checks of request fields, the errors they return, agent tokens, and the
// mapping between the domain's types and the API's.
package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
)

// Limits on identifiers, so that a row or an OPA document stays small.
const (
	MaxIDLen       = 256
	MaxNameLen     = 256
	MaxPatternLen  = 1024
	MaxActionLen   = 128
	MaxActions     = 64
	MaxPermissions = 256
)

// ValidateResourcePattern checks a permission's resource pattern against
// the policy's grammar (data.kavach.resources.pattern_error: segments
// separated by ':', none empty, '*' only as a whole segment, no whitespace
// or control characters), after the limits of what Kavach stores: at most
// MaxPatternLen bytes of UTF-8.
func ValidateResourcePattern(p string) error {
	if len(p) > MaxPatternLen {
		return fmt.Errorf("resource pattern is longer than %d bytes", MaxPatternLen)
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
// use and shared (it never changes).
var patternGrammar = sync.OnceValues(func() (*engine.Patterns, error) {
	return engine.NewPatterns(context.Background())
})

// MaxResourceLen bounds a request's resource, as MaxPatternLen a pattern.
const MaxResourceLen = MaxPatternLen

// ValidateResource checks a request's resource: it names one concrete
// resource (data.kavach.resources.resource_error: segments separated by
// ':', none empty, no '*', no whitespace, control, format or invisible
// character), in at most MaxResourceLen bytes of UTF-8. A malformed
// resource is a bad request (400 invalid_field), not a decision.
func ValidateResource(r string) error {
	if r == "" {
		return Invalid("missing_field", "resource is required")
	}
	if len(r) > MaxResourceLen {
		return Invalid("invalid_field", "resource is longer than %d bytes", MaxResourceLen)
	}
	if !utf8.ValidString(r) {
		return Invalid("invalid_field", "resource is not valid UTF-8")
	}
	g, err := patternGrammar()
	if err != nil {
		return err
	}
	if msg := g.ResourceError(r); msg != "" {
		return Invalid("invalid_field", "%s", msg)
	}
	return nil
}

// ValidateAction checks an action name: not empty, bounded, and only of the
// characters a resource segment may hold (data.kavach.resources.forbidden_char).
func ValidateAction(a string) error {
	if a == "" {
		return errors.New("action is empty")
	}
	if len(a) > MaxActionLen {
		return fmt.Errorf("action is longer than %d bytes", MaxActionLen)
	}
	if !utf8.ValidString(a) {
		return fmt.Errorf("action %q: is not valid UTF-8", a)
	}
	g, err := patternGrammar()
	if err != nil {
		return err
	}
	if r, bad := g.ForbiddenChar(a); bad {
		return fmt.Errorf("action %q: contains whitespace or a control, format or invisible character (%s)", a, engine.QuoteChar(r))
	}
	return nil
}

// ValidateRequestAction checks the action of a request: a valid action
// that names one action ("*", any action, is for permissions only).
func ValidateRequestAction(a string) error {
	if a == "" {
		return Invalid("missing_field", "action is required")
	}
	if a == "*" {
		return Invalid("invalid_field", `action "*" is for permissions (any action); a request names one action`)
	}
	if err := ValidateAction(a); err != nil {
		return Invalid("invalid_field", "%v", err)
	}
	return nil
}

// ValidatePermission checks one permission of a request and returns it
// typed: its resource pattern, its actions, then its constraints.
func ValidatePermission(p api.Permission) (domain.Permission, error) {
	if err := ValidateResourcePattern(p.Resource); err != nil {
		return domain.Permission{}, err
	}
	if len(p.Actions) == 0 {
		return domain.Permission{}, fmt.Errorf("permission on %q has no actions", p.Resource)
	}
	if len(p.Actions) > MaxActions {
		return domain.Permission{}, fmt.Errorf("permission on %q has more than %d actions", p.Resource, MaxActions)
	}
	for _, a := range p.Actions {
		if err := ValidateAction(a); err != nil {
			return domain.Permission{}, fmt.Errorf("permission on %q: %w", p.Resource, err)
		}
	}
	c, err := domain.ParseConstraints(p.Constraints)
	if err != nil {
		return domain.Permission{}, err
	}
	return domain.Permission{Resource: p.Resource, Actions: p.Actions, Constraints: c}, nil
}

// CheckID checks an identifier field: present, bounded, printable.
func CheckID(field, v string) error {
	if v == "" {
		return Invalid("missing_field", "%s is required", field)
	}
	if len(v) > MaxIDLen {
		return Invalid("invalid_field", "%s is longer than %d bytes", field, MaxIDLen)
	}
	if HasControl(v) {
		return Invalid("invalid_field", "%s contains a control character", field)
	}
	return nil
}

// HasControl reports control characters (NUL among them: PostgreSQL text
// cannot hold it, and no identifier or resource needs any).
func HasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// CheckName checks a name: present, bounded, no control characters.
func CheckName(name string) error {
	if name == "" {
		return Invalid("missing_field", "name is required")
	}
	if len(name) > MaxNameLen {
		return Invalid("invalid_field", "name is longer than %d bytes", MaxNameLen)
	}
	if HasControl(name) {
		return Invalid("invalid_field", "name contains a control character")
	}
	return nil
}

// CheckPermissions checks the permissions of a request, in order, and returns
// them typed: each one valid, no two with one key, at most MaxPermissions.
func CheckPermissions(perms []api.Permission) ([]domain.Permission, error) {
	if len(perms) > MaxPermissions {
		return nil, Unprocessable("too_many_permissions", "an agent may hold at most %d permissions", MaxPermissions)
	}
	if perms == nil {
		return nil, nil
	}
	out := make([]domain.Permission, len(perms))
	for i, p := range perms {
		var err error
		if out[i], err = ValidatePermission(p); err != nil {
			return nil, Unprocessable("invalid_permission", "permissions[%d]: %v", i, err)
		}
		// Duplicates are reported where they appear, before later
		// permissions are looked at.
		if err := CheckPermissionSet(out[:i+1]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CheckPermissionSet checks a set of valid permissions: its size, and one
// permission per resource pattern and set of actions, since its key
// (rate-limit counts, delegation roots) must name one permission.
func CheckPermissionSet(perms []domain.Permission) error {
	if len(perms) > MaxPermissions {
		return Unprocessable("too_many_permissions", "an agent may hold at most %d permissions", MaxPermissions)
	}
	seen := map[string]int{}
	for i, p := range perms {
		key := engine.PermissionKey(p.Resource, p.Actions)
		if j, dup := seen[key]; dup {
			return Unprocessable("duplicate_permission", "permissions[%d] and permissions[%d] both grant %v on %q; merge their constraints into one", j, i, p.Actions, p.Resource)
		}
		seen[key] = i
	}
	return nil
}

// MaxExpiry keeps expiries within what the policy's nanosecond clock
// (int64, until 2262) can compare.
func MaxExpiry() time.Time { return time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC) }

// CheckExpiry checks an optional expiry: in the future, and before MaxExpiry.
func CheckExpiry(t *time.Time, now time.Time) error {
	if t == nil {
		return nil
	}
	if !t.After(now) {
		return Unprocessable("invalid_expiry", "expiresAt %s is not in the future", api.FormatTime(*t))
	}
	if !t.Before(MaxExpiry()) {
		return Unprocessable("invalid_expiry", "expiresAt %s is too far away: it must be before %s", api.FormatTime(*t), api.FormatTime(MaxExpiry()))
	}
	return nil
}

// CompactJSON is used for arguments so the audit row holds canonical bytes.
func CompactJSON(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if len(raw) == 0 || json.Compact(&b, raw) != nil || b.String() == "null" {
		return nil
	}
	return b.Bytes()
}
