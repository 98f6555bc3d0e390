package engine

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/kavach-dev/kavach/policies"
)

// PatternErrorQuery is the policy's grammar of resource patterns: the
// message saying why a pattern is malformed, undefined when it is not.
const PatternErrorQuery = "data.kavach.resources.pattern_error(input.pattern)"

// CoversQuery is the policy's coverage of one pattern by another: true
// when every resource the child pattern matches is matched by the parent.
const CoversQuery = "data.kavach.resources.covers(input.parent, input.child)"

// ForbiddenCharQuery is the policy's definition of the characters no
// segment of a pattern or resource, and no action, may hold: an RE2
// expression, which Go's regexp (OPA's own) compiles as the policy's
// regex built-ins do.
const ForbiddenCharQuery = "data.kavach.resources.forbidden_char"

// Patterns checks resource patterns, request resources and actions against
// the policy's own grammar (policies/resources), the one definition of what
// each may be. It is safe for concurrent use.
type Patterns struct {
	check     rego.PreparedEvalQuery
	covers    rego.PreparedEvalQuery
	forbidden *regexp.Regexp
	// ascii is forbidden's verdict on each ASCII character, asked once:
	// most resources and actions are ASCII, and a table is faster than
	// the expression's Unicode classes.
	ascii [utf8.RuneSelf]bool
}

// NewPatterns prepares the grammar's query on the embedded resource policy
// and compiles its forbidden characters.
func NewPatterns(ctx context.Context) (*Patterns, error) {
	mods, err := policies.Modules()
	if err != nil {
		return nil, err
	}
	var modules []func(*rego.Rego)
	for name, src := range mods {
		if strings.HasPrefix(name, "policies/resources/") {
			modules = append(modules, rego.Module(name, src))
		}
	}
	pq, err := rego.New(append(modules, rego.Query(PatternErrorQuery))...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", PatternErrorQuery, err)
	}
	rs, err := rego.New(append(modules, rego.Query(ForbiddenCharQuery))...).Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", ForbiddenCharQuery, err)
	}
	var expr string
	if len(rs) == 1 {
		expr, _ = rs[0].Expressions[0].Value.(string)
	}
	if expr == "" {
		return nil, fmt.Errorf("%s is not a string: %v", ForbiddenCharQuery, rs)
	}
	forbidden, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%s is not a regular expression: %w", ForbiddenCharQuery, err)
	}
	cq, err := rego.New(append(modules, rego.Query(CoversQuery))...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", CoversQuery, err)
	}
	p := &Patterns{check: pq, covers: cq, forbidden: forbidden}
	for c := range utf8.RuneSelf {
		p.ascii[c] = forbidden.MatchString(string(rune(c)))
	}
	return p, nil
}

// Error returns why the pattern is malformed, "" if it is well formed.
func (p *Patterns) Error(ctx context.Context, pattern string) (string, error) {
	input := ast.NewObject(ast.Item(ast.StringTerm("pattern"), ast.StringTerm(pattern)))
	rs, err := p.check.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return "", fmt.Errorf("check resource pattern: %w", err)
	}
	if len(rs) == 0 {
		return "", nil
	}
	msg, ok := rs[0].Expressions[0].Value.(string)
	if !ok || msg == "" {
		return "", fmt.Errorf("check resource pattern: the policy's message is %v", rs[0].Expressions[0].Value)
	}
	return msg, nil
}

// Covers reports whether every resource the pattern child matches is
// matched by the pattern parent (data.kavach.resources.covers), as the
// delegation policy decides what a delegator holds.
func (p *Patterns) Covers(ctx context.Context, parent, child string) (bool, error) {
	input := ast.NewObject(ast.Item(ast.StringTerm("parent"), ast.StringTerm(parent)),
		ast.Item(ast.StringTerm("child"), ast.StringTerm(child)))
	rs, err := p.covers.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return false, fmt.Errorf("check coverage: %w", err)
	}
	return len(rs) == 1 && rs[0].Expressions[0].Value == true, nil
}

// ForbiddenChar returns the first character of s that no segment and no
// action may hold (data.kavach.resources.forbidden_char), if there is one.
// s must be valid UTF-8.
func (p *Patterns) ForbiddenChar(s string) (rune, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < utf8.RuneSelf {
			if p.ascii[c] {
				return rune(c), true
			}
			continue
		}
		// From the first non-ASCII character on, the expression itself.
		loc := p.forbidden.FindStringIndex(s[i:])
		if loc == nil {
			return 0, false
		}
		r, _ := utf8.DecodeRuneInString(s[i+loc[0]:])
		return r, true
	}
	return 0, false
}

// QuoteChar quotes a character as the policy's messages do: as Go quotes
// a rune, in ASCII ('\t', ' ', '\u200b'), so an invisible character is
// never shown as itself.
func QuoteChar(r rune) string {
	q := strconv.QuoteToASCII(string(r))
	return "'" + q[1:len(q)-1] + "'"
}

// ResourceError returns why a request's resource does not name one
// concrete resource, "" if it does: the answer, message for message, of
// the policy's data.kavach.resources.resource_error (segments separated by
// ':', none empty, none holding '*' or a forbidden character; the first
// fault of the first faulty segment), computed in Go because every request
// is checked (TestResourceErrorAgreesWithPolicy and FuzzResourceError hold
// the two together). resource must be valid UTF-8.
func (p *Patterns) ResourceError(resource string) string {
	if resource == "" {
		return "resource is empty"
	}
	rest := resource
	for i := 1; ; i++ {
		seg, after, more := strings.Cut(rest, ":")
		switch {
		case seg == "":
			return fmt.Sprintf("resource %q has an empty segment at position %d", resource, i)
		case strings.Contains(seg, "*"):
			return fmt.Sprintf("resource %q: '*' is for permission patterns; a request names one resource", resource)
		}
		if r, bad := p.ForbiddenChar(seg); bad {
			return fmt.Sprintf("resource %q: contains whitespace or a control, format or invisible character (%s)", resource, QuoteChar(r))
		}
		if !more {
			return ""
		}
		rest = after
	}
}
