package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"

	"github.com/kavach-dev/kavach/store"
)

// Source is where a full load reads from.
type Source interface {
	EachAgent(ctx context.Context, fn func(store.Agent) error) error
	EachDelegation(ctx context.Context, fn func(store.Delegation) error) error
	EachApproval(ctx context.Context, keep time.Duration, fn func(store.Approval) error) error
}

// ApprovalRetention is how long after expiry approvals stay in OPA, so a late
// caller hears "expired" rather than "does not exist".
const ApprovalRetention = 24 * time.Hour

// Counts reports what a full load put into OPA.
type Counts struct{ Agents, Delegations, Approvals int }

// Load replaces all data with the source's, in one transaction.
func (e *Engine) Load(ctx context.Context, src Source) (Counts, error) {
	agents := map[string]any{}
	tokens := map[string]any{}
	delegations := map[string]any{}
	approvals := map[string]any{}
	incoming := map[string][]any{}
	err := src.EachDelegation(ctx, func(d store.Delegation) error {
		delegations[d.ID] = delegationDoc(d)
		incoming[d.ToAgent] = append(incoming[d.ToAgent], d.ID)
		return nil
	})
	if err != nil {
		return Counts{}, fmt.Errorf("load delegations: %w", err)
	}
	err = src.EachAgent(ctx, func(a store.Agent) error {
		doc := agentDoc(a)
		if in := incoming[a.ID]; in != nil {
			doc["incoming"] = in
		}
		agents[a.ID] = doc
		tokens[a.TokenHash] = a.ID
		return nil
	})
	if err != nil {
		return Counts{}, fmt.Errorf("load agents: %w", err)
	}
	err = src.EachApproval(ctx, ApprovalRetention, func(a store.Approval) error {
		approvals[a.ID] = approvalDoc(a)
		return nil
	})
	if err != nil {
		return Counts{}, fmt.Errorf("load approvals: %w", err)
	}
	err = storage.Txn(ctx, e.data, storage.WriteParams, func(txn storage.Transaction) error {
		for path, v := range map[string]map[string]any{"/kavach/agents": agents, "/kavach/tokens": tokens,
			"/kavach/delegations": delegations, "/kavach/approvals": approvals} {
			if err := e.data.Write(ctx, txn, storage.ReplaceOp, storage.MustParsePath(path), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Counts{}, fmt.Errorf("load into OPA: %w", err)
	}
	return Counts{len(agents), len(delegations), len(approvals)}, nil
}

// Changes are documents to write to OPA together.
type Changes struct {
	Agents      []store.Agent
	Delegations []store.Delegation
	Approvals   []store.Approval
}

// Apply writes the changes in one transaction: a decision sees all of a
// write or none of it.
func (e *Engine) Apply(ctx context.Context, c Changes) error {
	err := storage.Txn(ctx, e.data, storage.WriteParams, func(txn storage.Transaction) error {
		for _, a := range c.Agents {
			agentPath := join(agentsPath, a.ID)
			old, err := e.data.Read(ctx, txn, join(agentPath, "tokenHash"))
			switch {
			case err == nil:
				if h := stringOf(old); h != "" && h != a.TokenHash {
					if err := e.data.Write(ctx, txn, storage.RemoveOp, join(tokensPath, h), nil); err != nil && !storage.IsNotFound(err) {
						return err
					}
				}
			case !storage.IsNotFound(err):
				return err
			}
			doc := agentDoc(a)
			if len(a.Incoming) > 0 {
				in := make([]any, len(a.Incoming))
				for i, id := range a.Incoming {
					in[i] = id
				}
				doc["incoming"] = in
			}
			if err := e.data.Write(ctx, txn, storage.AddOp, agentPath, doc); err != nil {
				return err
			}
			if err := e.data.Write(ctx, txn, storage.AddOp, join(tokensPath, a.TokenHash), a.ID); err != nil {
				return err
			}
		}
		for _, d := range c.Delegations {
			if err := e.data.Write(ctx, txn, storage.AddOp, join(delegationsPath, d.ID), delegationDoc(d)); err != nil {
				return err
			}
		}
		for _, a := range c.Approvals {
			if err := e.data.Write(ctx, txn, storage.AddOp, join(approvalsPath, a.ID), approvalDoc(a)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sync into OPA: %w", err)
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

func nanoNumber(t time.Time) json.Number { return json.Number(strconv.FormatInt(t.UnixNano(), 10)) }

// agentDoc is the agent as the policy sees it (data.kavach.agents[id]).
func agentDoc(a store.Agent) map[string]any {
	status := store.StatusActive
	if a.Status == store.StatusRevoked {
		status = store.StatusRevoked
	}
	var expires any
	if a.ExpiresAt != nil {
		expires = nanoNumber(*a.ExpiresAt)
	}
	perms := make([]any, 0, len(a.Permissions))
	for _, p := range a.Permissions {
		doc := permissionDoc(p.Resource, p.Actions, p.Constraints)
		doc["key"] = PermissionKey(p)
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

// PermissionKey identifies an own permission by its content, so rate-limit
// counts follow the permission, not its position in the list.
func PermissionKey(p store.Permission) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", p.Resource, strings.Join(p.Actions, "\x01"))
	if len(p.Constraints) > 0 {
		b, _ := json.Marshal(p.Constraints) // map keys are sorted: stable
		h.Write(b)
	}
	return "p_" + hex.EncodeToString(h.Sum(nil))[:16]
}

func permissionDoc(resource string, actions []string, constraints map[string]any) map[string]any {
	acts := make([]any, len(actions))
	for i, a := range actions {
		acts[i] = a
	}
	doc := map[string]any{"resource": resource, "actions": acts}
	if len(constraints) > 0 {
		doc["constraints"] = constraintsDoc(constraints)
	}
	return doc
}

// constraintsDoc prepares constraints for the policy: exact IP addresses
// become /32 or /128 prefixes, so one builtin (net.cidr_contains) checks all.
func constraintsDoc(c map[string]any) map[string]any {
	list, ok := c["ipAllowlist"].([]any)
	if !ok {
		return c
	}
	out := make(map[string]any, len(c))
	for k, v := range c {
		out[k] = v
	}
	prefixes := make([]any, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		if p, err := netip.ParsePrefix(s); err == nil {
			prefixes = append(prefixes, p.Masked().String())
		} else if a, err := netip.ParseAddr(s); err == nil {
			prefixes = append(prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()).String())
		}
	}
	out["ipAllowlist"] = prefixes
	return out
}

// DelegatedKey identifies a delegated permission.
func DelegatedKey(delegationID string, i int) string { return delegationID + "#" + strconv.Itoa(i) }

func delegationDoc(d store.Delegation) map[string]any {
	status := store.StatusActive
	if d.Status == store.StatusRevoked {
		status = store.StatusRevoked
	}
	perms := make([]any, 0, len(d.Permissions))
	for i, g := range d.Permissions {
		doc := permissionDoc(g.Resource, g.Actions, g.Constraints)
		doc["key"] = DelegatedKey(d.ID, i)
		inherited := make([]any, 0, len(g.Inherited))
		for _, c := range g.Inherited {
			inherited = append(inherited, constraintsDoc(c))
		}
		doc["inherited"] = inherited
		chain := make([]any, 0, len(g.Chain))
		for _, l := range g.Chain {
			chain = append(chain, []any{l.DelegationID, json.Number(strconv.Itoa(l.Index))})
		}
		doc["chain"] = chain
		perms = append(perms, doc)
	}
	return map[string]any{
		"id":          d.ID,
		"fromAgent":   d.FromAgent,
		"toAgent":     d.ToAgent,
		"status":      status,
		"expiresAt":   nanoNumber(d.ExpiresAt),
		"depth":       json.Number(strconv.Itoa(d.Depth)),
		"maxDepth":    json.Number(strconv.Itoa(d.MaxDepth)),
		"permissions": perms,
	}
}

func approvalDoc(a store.Approval) map[string]any {
	return map[string]any{
		"agentId":   a.AgentID,
		"action":    a.Action,
		"resource":  a.Resource,
		"status":    a.StoredStatus,
		"expiresAt": nanoNumber(a.ExpiresAt),
	}
}
