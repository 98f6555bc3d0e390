// Package access decides who may call each route of Kavach's own API. The
// decisions are made by the Rego policy in policies/api (as OPA's
// system.authz makes them for OPA): at start-up, for every route the
// router serves and every principal shape, once; requests are then
// answered from that table, so authorization costs a map lookup.
package access

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/kavach-dev/kavach/policies"
)

// Principal types, as the policy sees them.
const (
	Anonymous = "anonymous"
	Agent     = "agent"
	Key       = "key"
)

// Decision is the policy's answer for one call.
type Decision struct {
	Allow bool
	// Code says why: public, self (an agent for itself), role; or why not:
	// unauthenticated, forbidden, unknown_route.
	Code string
}

// rule is what the policy decided for one route.
type rule struct {
	anonymous Decision
	agent     Decision
	roles     map[string]Decision // one role at a time
	noRole    Decision            // a key without roles
}

// Policy is the route table the API policy produced. Safe for concurrent
// use; immutable.
type Policy struct {
	rules   map[string]rule
	roles   []string
	modules []Module
}

// Module is one file of the API policy, as GET /v1/policies lists it.
type Module struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// New evaluates the API policy for every route it names (in public or
// grants) and every principal shape. Check that each route the router
// serves is Known: one added without a policy entry must stop the sidecar.
func New(ctx context.Context) (*Policy, error) {
	ev, err := newEvaluator(ctx)
	if err != nil {
		return nil, err
	}
	roles, err := ev.strings(ctx, ev.roleSet, "roles")
	if err != nil {
		return nil, err
	}
	routes, err := ev.strings(ctx, ev.routeSet, "routes")
	if err != nil {
		return nil, err
	}
	p := &Policy{rules: map[string]rule{}, roles: roles, modules: ev.modules}
	var unknown []string
	for _, route := range routes {
		r := rule{roles: map[string]Decision{}}
		if r.anonymous, err = ev.decide(ctx, route, Anonymous, nil); err != nil {
			return nil, err
		}
		if r.anonymous.Code == "unknown_route" {
			unknown = append(unknown, route)
			continue
		}
		if r.agent, err = ev.decide(ctx, route, Agent, nil); err != nil {
			return nil, err
		}
		if r.noRole, err = ev.decide(ctx, route, Key, []string{}); err != nil {
			return nil, err
		}
		for _, role := range roles {
			if r.roles[role], err = ev.decide(ctx, route, Key, []string{role}); err != nil {
				return nil, err
			}
		}
		p.rules[route] = r
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("policies/api: routes %s are undecided", strings.Join(unknown, ", "))
	}
	return p, nil
}

// Known reports whether the policy has an entry for route.
func (p *Policy) Known(route string) bool {
	_, ok := p.rules[route]
	return ok
}

// Routes are the route names the policy has entries for, sorted.
func (p *Policy) Routes() []string {
	rs := make([]string, 0, len(p.rules))
	for r := range p.rules {
		rs = append(rs, r)
	}
	sort.Strings(rs)
	return rs
}

// Modules are the policy's files, with their SHA-256.
func (p *Policy) Modules() []Module { return slices.Clone(p.modules) }

// Roles are the roles an API key may hold, sorted.
func (p *Policy) Roles() []string { return slices.Clone(p.roles) }

// Decide answers for a principal of type typ holding roles (for a key).
func (p *Policy) Decide(route, typ string, roles []string) Decision {
	r, ok := p.rules[route]
	if !ok {
		return Decision{Code: "unknown_route"}
	}
	switch typ {
	case Anonymous:
		return r.anonymous
	case Agent:
		return r.agent
	}
	d := r.noRole
	for _, role := range roles {
		if rd, ok := r.roles[role]; ok && rd.Allow {
			return rd
		} else if ok {
			d = rd
		}
	}
	return d
}

// Public reports whether route answers without a credential.
func (p *Policy) Public(route string) bool {
	return p.rules[route].anonymous.Allow
}

// evaluator runs the API policy itself; New uses it to build the table and
// tests to check the table against it.
type evaluator struct {
	decision, roleSet, routeSet rego.PreparedEvalQuery
	modules                     []Module
}

func newEvaluator(ctx context.Context) (*evaluator, error) {
	mods, err := policies.APIModules()
	if err != nil {
		return nil, err
	}
	opts := func(q string) []func(*rego.Rego) {
		o := []func(*rego.Rego){rego.Query(q)}
		for name, src := range mods {
			o = append(o, rego.Module(name, src))
		}
		return o
	}
	ev := &evaluator{}
	for name, src := range mods {
		sum := sha256.Sum256([]byte(src))
		ev.modules = append(ev.modules, Module{File: name, SHA256: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ev.modules, func(i, j int) bool { return ev.modules[i].File < ev.modules[j].File })
	if ev.decision, err = rego.New(opts(policies.APIDecisionQuery)...).PrepareForEval(ctx); err != nil {
		return nil, fmt.Errorf("compile policies/api: %w", err)
	}
	if ev.roleSet, err = rego.New(opts(policies.APIRolesQuery)...).PrepareForEval(ctx); err != nil {
		return nil, fmt.Errorf("compile policies/api: %w", err)
	}
	if ev.routeSet, err = rego.New(opts(policies.APIRoutesQuery)...).PrepareForEval(ctx); err != nil {
		return nil, fmt.Errorf("compile policies/api: %w", err)
	}
	return ev, nil
}

// strings evaluates a query for a set of strings, returned sorted.
func (ev *evaluator) strings(ctx context.Context, q rego.PreparedEvalQuery, what string) ([]string, error) {
	rs, err := q.Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policies/api %s: %w", what, err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, fmt.Errorf("policies/api: %s is undefined", what)
	}
	list, ok := rs[0].Expressions[0].Value.([]any)
	if !ok {
		return nil, fmt.Errorf("policies/api: %s is %T, not a set of strings", what, rs[0].Expressions[0].Value)
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("policies/api: %s holds %v, not a string", what, v)
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}

func (ev *evaluator) decide(ctx context.Context, route, typ string, roles []string) (Decision, error) {
	principal := map[string]any{"type": typ}
	if roles != nil {
		rs := make([]any, len(roles))
		for i, r := range roles {
			rs[i] = r
		}
		principal["roles"] = rs
	}
	rs, err := ev.decision.Eval(ctx, rego.EvalInput(map[string]any{"route": route, "principal": principal}))
	if err != nil {
		return Decision{}, fmt.Errorf("policies/api decision for %s: %w", route, err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Decision{}, fmt.Errorf("policies/api: decision is undefined for %s", route)
	}
	obj, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("policies/api: decision for %s is %T, not an object", route, rs[0].Expressions[0].Value)
	}
	allow, _ := obj["allow"].(bool)
	code, _ := obj["code"].(string)
	return Decision{Allow: allow, Code: code}, nil
}
