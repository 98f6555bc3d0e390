// Package delegations passes permissions from one agent to another, as
// the delegation policy allows, and reports what an agent may do.
package delegations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/service/policy"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/store"
)

// Store is what delegations write and read.
type Store interface {
	GetAgent(ctx context.Context, id string) (domain.Agent, error)
	CreateDelegation(ctx context.Context, d domain.Delegation) (domain.Delegation, error)
	GetDelegation(ctx context.Context, id string) (domain.Delegation, error)
	ListDelegations(ctx context.Context, agentID string, p store.Page) ([]domain.Delegation, string, error)
	RevokeDelegation(ctx context.Context, id string) (domain.Delegation, error)
}

// Delegations is safe for concurrent use.
type Delegations struct {
	store  Store
	engine *engine.Engine
	rep    *replica.Replica
	// validate puts every new delegation to the extensions' deny_delegation.
	validate *policy.Validator
	now      func() time.Time
	log      *slog.Logger
}

// New returns delegations over st, checked by eng's delegation policy and
// then by v, and written through rep.
func New(st Store, eng *engine.Engine, rep *replica.Replica, v *policy.Validator, now func() time.Time, log *slog.Logger) *Delegations {
	return &Delegations{store: st, engine: eng, rep: rep, validate: v, now: now, log: log}
}

const maxDelegationDepth = 16

// Delegate lets one agent pass a subset of its permissions to another. The
// policy (kavach.delegation) rejects escalation, cycles and chains deeper
// than their smallest maxDepth, then the extensions' deny_delegation may
// refuse what it accepts; nothing is written unless both agree.
func (s *Delegations) Delegate(ctx context.Context, req api.DelegateRequest) (api.Delegation, error) {
	if err := core.CheckID("fromAgent", req.FromAgent); err != nil {
		return api.Delegation{}, err
	}
	if err := core.CheckID("toAgent", req.ToAgent); err != nil {
		return api.Delegation{}, err
	}
	if len(req.Permissions) == 0 {
		return api.Delegation{}, core.Invalid("missing_field", "permissions is required: the permissions to delegate")
	}
	perms, err := core.CheckPermissions(req.Permissions)
	if err != nil {
		return api.Delegation{}, err
	}
	if req.ExpiresAt == nil {
		return api.Delegation{}, core.Invalid("missing_field", "expiresAt is required: a delegation always ends")
	}
	now := s.now()
	if err := core.CheckExpiry(req.ExpiresAt.Std(), now); err != nil {
		return api.Delegation{}, err
	}
	maxDepth := 1
	if req.MaxDepth != nil {
		maxDepth = *req.MaxDepth
	}
	if maxDepth < 1 || maxDepth > maxDelegationDepth {
		return api.Delegation{}, core.Unprocessable("invalid_max_depth", "maxDepth must be from 1 to %d, not %d", maxDelegationDepth, maxDepth)
	}

	if err := s.rep.CheckReady(); err != nil {
		return api.Delegation{}, err
	}
	var d domain.Delegation
	err = s.rep.Update(ctx, func() (engine.Changes, error) {
		var ends [2]domain.Agent // from, to
		for i, id := range []string{req.FromAgent, req.ToAgent} {
			a, err := s.store.GetAgent(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return engine.Changes{}, core.NotFound("agent_not_found", "agent %q does not exist", id)
			}
			if err != nil {
				return engine.Changes{}, err
			}
			if a.Status != domain.StatusActive {
				return engine.Changes{}, core.Conflict("agent_"+a.Status, "agent %q is %s", id, a.Status)
			}
			ends[i] = a
		}
		verdict, err := s.engine.CheckDelegation(ctx, engine.DelegationRequest{FromAgent: req.FromAgent, ToAgent: req.ToAgent,
			Permissions: perms, MaxDepth: maxDepth}, now)
		if err != nil {
			return engine.Changes{}, err
		}
		if !verdict.OK {
			return engine.Changes{}, core.Unprocessable(verdict.Code, "%s", verdict.Reason)
		}
		proposed := engine.ProposedDelegation{FromAgent: req.FromAgent, ToAgent: req.ToAgent, Permissions: core.APIPermissions(perms),
			ExpiresAt: api.NewTime(req.ExpiresAt.Time), MaxDepth: verdict.MaxDepth, Depth: verdict.Depth}
		if err := s.validate.Delegation(ctx, proposed, ends[0], ends[1]); err != nil {
			return engine.Changes{}, err
		}
		d = domain.Delegation{FromAgent: req.FromAgent, ToAgent: req.ToAgent, Depth: verdict.Depth,
			MaxDepth: verdict.MaxDepth, ExpiresAt: req.ExpiresAt.Time}
		for _, g := range verdict.Grants {
			grant := domain.Grant{Resource: g.Resource, Actions: g.Actions, Constraints: g.Constraints, Inherited: g.Inherited,
				Chain: []domain.Link{}, CoveredBy: g.CoveredBy}
			for _, l := range g.Chain {
				id, _ := l[0].(string)
				idx, err := toInt(l[1])
				if err != nil || id == "" {
					return engine.Changes{}, fmt.Errorf("delegation verdict: bad chain link %v", l)
				}
				grant.Chain = append(grant.Chain, domain.Link{DelegationID: id, Index: idx})
			}
			d.Permissions = append(d.Permissions, grant)
		}
		d, err = s.store.CreateDelegation(ctx, d)
		if err != nil {
			return engine.Changes{}, core.StoreError(err)
		}
		to, err := s.store.GetAgent(ctx, d.ToAgent)
		if err != nil {
			return engine.Changes{}, err
		}
		return engine.Changes{Agents: []domain.Agent{to}, Delegations: []domain.Delegation{d}}, nil
	})
	if err != nil {
		return api.Delegation{}, s.validate.Audit(ctx, err)
	}
	s.log.Info("delegation created", "delegation", d.ID, "from", d.FromAgent, "to", d.ToAgent, "depth", d.Depth)
	return core.APIDelegation(d), nil
}

func toInt(v any) (int, error) {
	switch n := v.(type) {
	case float64:
		return int(n), nil
	case json.Number:
		i, err := n.Int64()
		return int(i), err
	}
	return 0, fmt.Errorf("not a number: %T", v)
}

// RevokeDelegation revokes a delegation; everything downstream of it stops
// counting at once. Repeating it is harmless.
func (s *Delegations) RevokeDelegation(ctx context.Context, id string) (api.Delegation, error) {
	if err := s.rep.CheckReady(); err != nil {
		return api.Delegation{}, err
	}
	var d domain.Delegation
	err := s.rep.Update(ctx, func() (engine.Changes, error) {
		var err error
		d, err = s.store.RevokeDelegation(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return engine.Changes{}, core.NotFound("delegation_not_found", "no delegation %q", id)
		}
		if err != nil {
			return engine.Changes{}, err
		}
		s.log.Info("delegation revoked", "delegation", d.ID)
		return engine.Changes{Delegations: []domain.Delegation{d}}, nil
	})
	if err != nil {
		return api.Delegation{}, err
	}
	return core.APIDelegation(d), nil
}

// GetDelegation returns one delegation.
func (s *Delegations) GetDelegation(ctx context.Context, id string) (api.Delegation, error) {
	d, err := s.store.GetDelegation(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return core.APIDelegation(d), core.NotFound("delegation_not_found", "no delegation %q", id)
	}
	return core.APIDelegation(d), err
}

// ListDelegations returns one page of the delegations from and to an
// agent, oldest first.
func (s *Delegations) ListDelegations(ctx context.Context, agentID string, q core.PageQuery) (api.DelegationList, error) {
	p, err := q.Page("dlg_")
	if err != nil {
		return api.DelegationList{}, err
	}
	if _, err := s.store.GetAgent(ctx, agentID); err != nil {
		return api.DelegationList{}, core.StoreError(err)
	}
	list, next, err := s.store.ListDelegations(ctx, agentID, p)
	if err != nil {
		return api.DelegationList{}, err
	}
	return api.DelegationList{Delegations: core.APIDelegations(list), NextCursor: next}, nil
}

// EffectivePermissions returns the agent's own permissions and those
// delegated to it through intact chains, each with its source.
func (s *Delegations) EffectivePermissions(ctx context.Context, agentID string) ([]api.EffectivePermission, error) {
	if _, err := s.store.GetAgent(ctx, agentID); err != nil {
		return nil, core.StoreError(err)
	}
	raw, err := s.engine.EffectivePermissions(ctx, agentID, s.now())
	if err != nil {
		return nil, err
	}
	// The policy speaks nanoseconds; the API speaks RFC 3339.
	var perms []struct {
		api.EffectivePermission
		ExpiresAt int64 `json:"expiresAt"`
	}
	if err := json.Unmarshal(raw, &perms); err != nil {
		return nil, fmt.Errorf("decode effective permissions: %w", err)
	}
	out := make([]api.EffectivePermission, len(perms))
	for i, p := range perms {
		out[i] = p.EffectivePermission
		if p.ExpiresAt != 0 {
			t := api.NewTime(time.Unix(0, p.ExpiresAt))
			out[i].ExpiresAt = &t
		}
	}
	return out, nil
}
