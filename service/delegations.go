package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kavach-dev/kavach/domain"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/store"
)

const maxDelegationDepth = 16

// Delegate lets one agent pass a subset of its permissions to another. The
// policy (kavach.delegation) rejects escalation, cycles and chains deeper
// than their smallest maxDepth; nothing is written unless it agrees.
func (s *Service) Delegate(ctx context.Context, req api.DelegateRequest) (api.Delegation, error) {
	if err := checkID("fromAgent", req.FromAgent); err != nil {
		return api.Delegation{}, err
	}
	if err := checkID("toAgent", req.ToAgent); err != nil {
		return api.Delegation{}, err
	}
	if len(req.Permissions) == 0 {
		return api.Delegation{}, invalid("missing_field", "permissions is required: the permissions to delegate")
	}
	perms, err := checkPermissions(req.Permissions)
	if err != nil {
		return api.Delegation{}, err
	}
	if req.ExpiresAt == nil {
		return api.Delegation{}, invalid("missing_field", "expiresAt is required: a delegation always ends")
	}
	now := s.now()
	if err := checkExpiry(req.ExpiresAt, now); err != nil {
		return api.Delegation{}, err
	}
	maxDepth := 1
	if req.MaxDepth != nil {
		maxDepth = *req.MaxDepth
	}
	if maxDepth < 1 || maxDepth > maxDelegationDepth {
		return api.Delegation{}, unprocessable("invalid_max_depth", "maxDepth must be from 1 to %d, not %d", maxDelegationDepth, maxDepth)
	}

	if err := s.checkReady(); err != nil {
		return api.Delegation{}, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	for _, id := range []string{req.FromAgent, req.ToAgent} {
		a, err := s.store.GetAgent(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return api.Delegation{}, notFound("agent_not_found", "agent %q does not exist", id)
		}
		if err != nil {
			return api.Delegation{}, err
		}
		if a.Status != domain.StatusActive {
			return api.Delegation{}, conflict("agent_"+a.Status, "agent %q is %s", id, a.Status)
		}
	}
	verdict, err := s.engine.CheckDelegation(ctx, engine.DelegationRequest{FromAgent: req.FromAgent, ToAgent: req.ToAgent,
		Permissions: perms, MaxDepth: maxDepth}, now)
	if err != nil {
		return api.Delegation{}, err
	}
	if !verdict.OK {
		return api.Delegation{}, unprocessable(verdict.Code, "%s", verdict.Reason)
	}
	d := domain.Delegation{FromAgent: req.FromAgent, ToAgent: req.ToAgent, Depth: verdict.Depth,
		MaxDepth: verdict.MaxDepth, ExpiresAt: *req.ExpiresAt}
	for _, g := range verdict.Grants {
		grant := domain.Grant{Resource: g.Resource, Actions: g.Actions, Constraints: g.Constraints, Inherited: g.Inherited,
			Chain: []domain.Link{}, CoveredBy: g.CoveredBy}
		for _, l := range g.Chain {
			id, _ := l[0].(string)
			idx, err := toInt(l[1])
			if err != nil || id == "" {
				return api.Delegation{}, fmt.Errorf("delegation verdict: bad chain link %v", l)
			}
			grant.Chain = append(grant.Chain, domain.Link{DelegationID: id, Index: idx})
		}
		d.Permissions = append(d.Permissions, grant)
	}
	d, err = s.store.CreateDelegation(ctx, d)
	if err != nil {
		return api.Delegation{}, storeError(err)
	}
	to, err := s.store.GetAgent(ctx, d.ToAgent)
	if err != nil {
		return api.Delegation{}, err
	}
	if err := s.syncLocked(ctx, engine.Changes{Agents: []domain.Agent{to}, Delegations: []domain.Delegation{d}}); err != nil {
		return api.Delegation{}, err
	}
	s.log.Info("delegation created", "delegation", d.ID, "from", d.FromAgent, "to", d.ToAgent, "depth", d.Depth)
	return apiDelegation(d), nil
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
func (s *Service) RevokeDelegation(ctx context.Context, id string) (api.Delegation, error) {
	if err := s.checkReady(); err != nil {
		return api.Delegation{}, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	d, err := s.store.RevokeDelegation(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return apiDelegation(d), notFound("delegation_not_found", "no delegation %q", id)
	}
	if err != nil {
		return apiDelegation(d), err
	}
	s.log.Info("delegation revoked", "delegation", d.ID)
	return apiDelegation(d), s.syncLocked(ctx, engine.Changes{Delegations: []domain.Delegation{d}})
}

// GetDelegation returns one delegation.
func (s *Service) GetDelegation(ctx context.Context, id string) (api.Delegation, error) {
	d, err := s.store.GetDelegation(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return apiDelegation(d), notFound("delegation_not_found", "no delegation %q", id)
	}
	return apiDelegation(d), err
}

// ListDelegations returns the delegations from and to an agent.
func (s *Service) ListDelegations(ctx context.Context, agentID string) ([]api.Delegation, error) {
	if _, err := s.GetAgent(ctx, agentID); err != nil {
		return nil, err
	}
	list, err := s.store.ListDelegations(ctx, agentID)
	return apiDelegations(list), err
}

// EffectivePermissions returns the agent's own permissions and those
// delegated to it through intact chains, each with its source.
func (s *Service) EffectivePermissions(ctx context.Context, agentID string) ([]api.EffectivePermission, error) {
	if _, err := s.GetAgent(ctx, agentID); err != nil {
		return nil, err
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
			t := time.Unix(0, p.ExpiresAt).UTC()
			out[i].ExpiresAt = &t
		}
	}
	return out, nil
}
