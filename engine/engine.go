// Package engine makes authorization decisions: it keeps agent data in OPA's
// in-memory store, keyed by agent ID and token hash, and evaluates the
// Kavach policy with one prepared query shared by all requests.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/kavach-dev/kavach/policies"
	"github.com/kavach-dev/kavach/store"
)

// Decision codes produced by the policy.
const (
	CodeAllowed       = "allowed"
	CodeAgentNotFound = "agent_not_found"
	CodeAgentRevoked  = "agent_revoked"
	CodeAgentExpired  = "agent_expired"
	CodeInvalidToken  = "invalid_token"
	CodeNoPermission  = "no_permission"
)

// Input is what the caller knows about one request. Exactly one of AgentID
// and TokenHash identifies the agent.
type Input struct {
	AgentID   string
	TokenHash string
	Action    string
	Resource  string
	Now       time.Time
}

// Decision is the policy's answer.
type Decision struct {
	Allowed bool   `json:"allowed"`
	Code    string `json:"code"`
	Reason  string `json:"reason"`
	AgentID string `json:"agentId"`
	OwnerID string `json:"ownerId"`
}

// Engine evaluates decisions. It is safe for concurrent use: OPA's store
// admits one writer and many readers, each decision reading a consistent
// snapshot.
type Engine struct {
	data  storage.Store
	query rego.PreparedEvalQuery
}

var (
	agentsPath = storage.MustParsePath("/kavach/agents")
	tokensPath = storage.MustParsePath("/kavach/tokens")
)

// New compiles the embedded policies against an empty data set.
func New(ctx context.Context) (*Engine, error) {
	mods, err := policies.Modules()
	if err != nil {
		return nil, err
	}
	// Values written are built here from plain Go types, never mutated
	// afterwards, so the JSON round trip on write is waste; AST values on
	// read save a conversion on every decision.
	data := inmem.NewFromObjectWithOpts(map[string]any{
		"kavach": map[string]any{"agents": map[string]any{}, "tokens": map[string]any{}},
	}, inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	opts := []func(*rego.Rego){rego.Query(policies.DecisionQuery), rego.Store(data)}
	for name, src := range mods {
		opts = append(opts, rego.Module(name, src))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compile policies: %w", err)
	}
	return &Engine{data: data, query: pq}, nil
}

// Decide evaluates the policy for one request.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	items := [][2]*ast.Term{
		ast.Item(ast.InternedTerm("action"), ast.StringTerm(in.Action)),
		ast.Item(ast.InternedTerm("resource"), ast.StringTerm(in.Resource)),
		ast.Item(ast.InternedTerm("now"), ast.NewTerm(ast.Number(strconv.FormatInt(in.Now.UnixNano(), 10)))),
	}
	switch {
	case in.AgentID != "":
		items = append(items, ast.Item(ast.InternedTerm("agentId"), ast.StringTerm(in.AgentID)))
	case in.TokenHash != "":
		items = append(items, ast.Item(ast.InternedTerm("tokenHash"), ast.StringTerm(in.TokenHash)))
	}
	input := ast.NewObject(items...)
	rs, err := e.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate policy: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Decision{}, errors.New("evaluate policy: decision is undefined")
	}
	return decodeDecision(rs[0].Expressions[0].Value)
}

func decodeDecision(v any) (Decision, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("evaluate policy: decision is %T, not an object", v)
	}
	var d Decision
	var okA, okC, okR bool
	d.Allowed, okA = m["allowed"].(bool)
	d.Code, okC = m["code"].(string)
	d.Reason, okR = m["reason"].(string)
	d.AgentID, _ = m["agentId"].(string)
	d.OwnerID, _ = m["ownerId"].(string)
	if !okA || !okC || !okR {
		b, _ := json.Marshal(m)
		return Decision{}, fmt.Errorf("evaluate policy: malformed decision %s", b)
	}
	return d, nil
}

// Load replaces all agent data with the given agents, in one transaction.
func (e *Engine) Load(ctx context.Context, each func(func(store.Agent) error) error) (int, error) {
	agents := map[string]any{}
	tokens := map[string]any{}
	err := each(func(a store.Agent) error {
		agents[a.ID] = document(a)
		tokens[a.TokenHash] = a.ID
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("load agents: %w", err)
	}
	err = storage.Txn(ctx, e.data, storage.WriteParams, func(txn storage.Transaction) error {
		if err := e.data.Write(ctx, txn, storage.ReplaceOp, agentsPath, agents); err != nil {
			return err
		}
		return e.data.Write(ctx, txn, storage.ReplaceOp, tokensPath, tokens)
	})
	if err != nil {
		return 0, fmt.Errorf("load agents into OPA: %w", err)
	}
	return len(agents), nil
}

// Put inserts or replaces agents, and their token index entries, in one
// transaction: a decision sees all of a write or none of it.
func (e *Engine) Put(ctx context.Context, agents ...store.Agent) error {
	err := storage.Txn(ctx, e.data, storage.WriteParams, func(txn storage.Transaction) error {
		for _, a := range agents {
			agentPath := join(agentsPath, a.ID)
			if old, err := e.data.Read(ctx, txn, join(agentPath, "tokenHash")); err == nil {
				if h := stringOf(old); h != "" && h != a.TokenHash {
					if err := e.data.Write(ctx, txn, storage.RemoveOp, join(tokensPath, h), nil); err != nil && !storage.IsNotFound(err) {
						return err
					}
				}
			} else if !storage.IsNotFound(err) {
				return err
			}
			if err := e.data.Write(ctx, txn, storage.AddOp, agentPath, document(a)); err != nil {
				return err
			}
			if err := e.data.Write(ctx, txn, storage.AddOp, join(tokensPath, a.TokenHash), a.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sync agents into OPA: %w", err)
	}
	return nil
}

// join returns a new path; it never aliases the base's backing array.
func join(base storage.Path, elems ...string) storage.Path {
	p := make(storage.Path, 0, len(base)+len(elems))
	return append(append(p, base...), elems...)
}

func stringOf(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case ast.String:
		return string(s)
	}
	return ""
}

// document is the agent as the policy sees it (data.kavach.agents[id]).
func document(a store.Agent) map[string]any {
	status := store.StatusActive
	if a.Status == store.StatusRevoked {
		status = store.StatusRevoked
	}
	var expires any
	if a.ExpiresAt != nil {
		expires = json.Number(strconv.FormatInt(a.ExpiresAt.UnixNano(), 10))
	}
	perms := make([]any, 0, len(a.Permissions))
	for _, p := range a.Permissions {
		actions := make([]any, len(p.Actions))
		for i, act := range p.Actions {
			actions[i] = act
		}
		doc := map[string]any{"resource": p.Resource, "actions": actions}
		if len(p.Constraints) > 0 {
			doc["constraints"] = p.Constraints
		}
		perms = append(perms, doc)
	}
	return map[string]any{
		"ownerId":     a.OwnerID,
		"status":      status,
		"expiresAt":   expires,
		"tokenHash":   a.TokenHash,
		"permissions": perms,
	}
}
