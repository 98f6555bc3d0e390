package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
)

// The validation rules an extension may define beside deny: each is a set
// of messages (deny_agent contains msg if …), and any message refuses the
// write it was asked about.
const (
	// AgentRule sees an agent as a create or an update would leave it.
	AgentRule = "deny_agent"
	// DelegationRule sees a delegation as it would be created.
	DelegationRule = "deny_delegation"
)

// Operations an AgentCheck is about.
const (
	OperationCreate = "create"
	OperationUpdate = "update"
)

// AgentCheck is the input of data.kavach.ext.deny_agent
// (schemas/deny_agent_input.json).
type AgentCheck struct {
	// Operation is OperationCreate or OperationUpdate.
	Operation string `json:"operation"`
	// Agent is the agent as the write would leave it; its ID is "" on
	// create (the store gives one when it writes).
	Agent api.Agent `json:"agent"`
	// Actor is who asks for the write.
	Actor domain.Actor `json:"actor"`
	Now   int64        `json:"now"`
}

// DelegationCheck is the input of data.kavach.ext.deny_delegation
// (schemas/deny_delegation_input.json).
type DelegationCheck struct {
	Delegation ProposedDelegation `json:"delegation"`
	From       AgentSummary       `json:"from"`
	To         AgentSummary       `json:"to"`
	Actor      domain.Actor       `json:"actor"`
	Now        int64              `json:"now"`
}

// ProposedDelegation is a delegation as it would be created.
type ProposedDelegation struct {
	FromAgent   string           `json:"fromAgent"`
	ToAgent     string           `json:"toAgent"`
	Permissions []api.Permission `json:"permissions"`
	ExpiresAt   api.Time         `json:"expiresAt"`
	MaxDepth    int              `json:"maxDepth"`
	Depth       int              `json:"depth"`
}

// AgentSummary is an agent's basic fields, as the API shows them.
type AgentSummary struct {
	ID        string         `json:"id"`
	OwnerID   string         `json:"ownerId"`
	Name      string         `json:"name"`
	Type      string         `json:"type"`
	Status    string         `json:"status"`
	Metadata  map[string]any `json:"metadata"`
	ExpiresAt *api.Time      `json:"expiresAt"`
}

// Summarize returns a's basic fields.
func Summarize(a domain.Agent) AgentSummary {
	meta := a.Metadata
	if meta == nil {
		meta = map[string]any{}
	}
	return AgentSummary{ID: a.ID, OwnerID: a.OwnerID, Name: a.Name, Type: a.Type, Status: a.Status,
		Metadata: meta, ExpiresAt: api.NewTimePtr(a.ExpiresAt)}
}

// Validates reports whether the extensions in use define deny_agent and
// deny_delegation: when one does not, its checks cost nothing.
func (e *Engine) Validates() (agents, delegations bool) {
	c := e.q.Load()
	return c.denyAgent != nil, c.denyDelegation != nil
}

// DenyAgent evaluates data.kavach.ext.deny_agent for in: the messages of
// the rules that refuse the agent, sorted; none when no extension defines
// the rule. An error means the rule could not be evaluated: the caller
// must refuse the write.
func (e *Engine) DenyAgent(ctx context.Context, in AgentCheck) ([]string, error) {
	if in.Now == 0 {
		in.Now = time.Now().UnixNano()
	}
	return denyMessages(ctx, e.q.Load().denyAgent, AgentRule, in)
}

// DenyDelegation evaluates data.kavach.ext.deny_delegation for in, as
// DenyAgent does deny_agent.
func (e *Engine) DenyDelegation(ctx context.Context, in DelegationCheck) ([]string, error) {
	if in.Now == 0 {
		in.Now = time.Now().UnixNano()
	}
	return denyMessages(ctx, e.q.Load().denyDelegation, DelegationRule, in)
}

// denyMessages evaluates a validation rule (nil: not defined) on in. It is
// off the hot path, so a JSON round trip builds the input. A message that
// is not a string is kept as its JSON text: whatever the rule yields
// refuses the write.
func denyMessages(ctx context.Context, pq *rego.PreparedEvalQuery, rule string, in any) ([]string, error) {
	if pq == nil {
		return nil, nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("%s input: %w", rule, err)
	}
	input, err := ast.ValueFromReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s input: %w", rule, err)
	}
	rs, err := pq.Eval(ctx, rego.EvalParsedInput(input), rego.EvalGenerateJSON(asValue))
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", rule, err)
	}
	if len(rs) == 0 {
		return nil, nil // no rule body matched in any module
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, fmt.Errorf("evaluate %s: %d results", rule, len(rs))
	}
	set, ok := rs[0].Expressions[0].Value.(ast.Set)
	if !ok {
		return nil, fmt.Errorf("evaluate %s: the result is %v, not a set of messages", rule, rs[0].Expressions[0].Value)
	}
	msgs := make([]string, 0, set.Len())
	for _, t := range set.Slice() {
		if s, ok := t.Value.(ast.String); ok {
			msgs = append(msgs, string(s))
		} else {
			msgs = append(msgs, t.Value.String())
		}
	}
	slices.Sort(msgs)
	return msgs, nil
}

// validationRules prepares the queries of the validation rules the
// extensions define, checking that each is a set (a partial set rule);
// nil for a rule no extension defines.
func (e *Engine) validationRules(ctx context.Context, compiler *ast.Compiler) (agent, delegation *rego.PreparedEvalQuery, err error) {
	prepare := func(rule string) (*rego.PreparedEvalQuery, error) {
		query := "data." + ExtensionPackage + "." + rule
		rules := compiler.GetRules(ast.MustParseRef(query))
		if len(rules) == 0 {
			return nil, nil
		}
		for _, r := range rules {
			if r.Head.RuleKind() != ast.MultiValue {
				return nil, fmt.Errorf("extension %s:%d: %s must be a set of messages (%s contains msg if …)",
					r.Location.File, r.Location.Row, rule, rule)
			}
		}
		pq, err := rego.New(rego.Query(query), rego.Compiler(compiler), rego.Store(e.data)).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("prepare %s: %w", query, err)
		}
		return &pq, nil
	}
	if agent, err = prepare(AgentRule); err != nil {
		return nil, nil, err
	}
	if delegation, err = prepare(DelegationRule); err != nil {
		return nil, nil, err
	}
	return agent, delegation, nil
}

// smokeValidation evaluates the validation rules c defines on a sample
// agent and delegation, as smoke does deny on sample requests.
func smokeValidation(ctx context.Context, c *compiled) error {
	now := time.Now()
	exp := api.NewTime(now.Add(time.Hour))
	perms := []api.Permission{{Resource: "*", Actions: []string{"*"}}, {Resource: "mcp:github:repos", Actions: []string{"read"},
		Constraints: map[string]any{"maxCallsPerHour": 10}}}
	agent := api.Agent{OwnerID: "smoke-test", Name: "smoke test", Type: "autonomous", Status: domain.StatusActive,
		Permissions: perms, Metadata: map[string]any{}, CreatedAt: api.NewTime(now), UpdatedAt: api.NewTime(now)}
	actor := domain.Actor{Type: domain.ActorSystem}
	for _, op := range []string{OperationCreate, OperationUpdate} {
		for _, expires := range []*api.Time{nil, &exp} {
			agent.ExpiresAt = expires
			if op == OperationUpdate {
				agent.ID = "agt_smoke_test"
			}
			if _, err := denyMessages(ctx, c.denyAgent, AgentRule, AgentCheck{Operation: op, Agent: agent, Actor: actor, Now: now.UnixNano()}); err != nil {
				return fmt.Errorf("extensions fail at run time (%s of a sample agent): %w", op, err)
			}
		}
	}
	from := AgentSummary{ID: "agt_smoke_from", OwnerID: "smoke-test", Name: "from", Type: "autonomous", Status: domain.StatusActive, Metadata: map[string]any{}}
	to := from
	to.ID, to.Name, to.Type = "agt_smoke_to", "to", "service"
	d := DelegationCheck{Delegation: ProposedDelegation{FromAgent: from.ID, ToAgent: to.ID, Permissions: perms, ExpiresAt: exp, MaxDepth: 1, Depth: 1},
		From: from, To: to, Actor: actor, Now: now.UnixNano()}
	if _, err := denyMessages(ctx, c.denyDelegation, DelegationRule, d); err != nil {
		return fmt.Errorf("extensions fail at run time (a sample delegation): %w", err)
	}
	return nil
}
