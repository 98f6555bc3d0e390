package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/kavach-dev/kavach/policies"
)

// PatternErrorQuery is the policy's grammar of resource patterns: the
// message saying why a pattern is malformed, undefined when it is not.
const PatternErrorQuery = "data.kavach.resources.pattern_error(input.pattern)"

// Patterns checks resource patterns against the policy's own grammar
// (policies/resources), the one definition of what a pattern may be. It is
// safe for concurrent use.
type Patterns struct {
	check rego.PreparedEvalQuery
}

// NewPatterns prepares the grammar's query on the embedded resource policy.
func NewPatterns(ctx context.Context) (*Patterns, error) {
	mods, err := policies.Modules()
	if err != nil {
		return nil, err
	}
	opts := []func(*rego.Rego){rego.Query(PatternErrorQuery)}
	for name, src := range mods {
		if strings.HasPrefix(name, "policies/resources/") {
			opts = append(opts, rego.Module(name, src))
		}
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", PatternErrorQuery, err)
	}
	return &Patterns{check: pq}, nil
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
