package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kavach-dev/kavach/domain"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/store"
)

// requestApproval opens an approval request for a call that needs one, or
// returns the pending request already open for the same agent, action and
// resource, so a retrying agent does not flood its owner.
func (s *Service) requestApproval(ctx context.Context, d engine.Decision, req api.AuthorizeRequest) (domain.Approval, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	a, err := s.store.PendingApproval(ctx, d.AgentID, req.Action, req.Resource)
	if err == nil {
		return a, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return domain.Approval{}, fmt.Errorf("find approval: %w", err)
	}
	// The human who answers is the owner of the permission being exercised:
	// for a delegated one, the first delegator's owner, not the child's.
	owner := d.ApprovalOwner
	if owner == "" {
		owner = d.OwnerID
	}
	a, err = s.store.CreateApproval(ctx, domain.Approval{AgentID: d.AgentID, OwnerID: owner, Action: req.Action,
		Resource: req.Resource, Arguments: compactJSON(req.Arguments), ExpiresAt: s.now().Add(s.opts.ApprovalTTL)})
	if err != nil {
		return domain.Approval{}, fmt.Errorf("create approval: %w", err)
	}
	if err := s.syncLocked(ctx, engine.Changes{Approvals: []domain.Approval{a}}); err != nil {
		return domain.Approval{}, err
	}
	s.log.Info("approval requested", "approval", a.ID, "agent", a.AgentID, "action", a.Action, "resource", a.Resource)
	if s.webhook != nil {
		s.webhook.enqueue(a)
	}
	return a, nil
}

// refreshApproval re-reads an approval and syncs it into the engine.
func (s *Service) refreshApproval(ctx context.Context, id string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	a, err := s.store.GetApproval(ctx, id)
	if err != nil {
		return fmt.Errorf("read approval %s: %w", id, err)
	}
	return s.syncLocked(ctx, engine.Changes{Approvals: []domain.Approval{a}})
}

// ListApprovals lists approval requests, newest first.
func (s *Service) ListApprovals(ctx context.Context, status, ownerID, agentID string) ([]api.Approval, error) {
	switch status {
	case "", domain.ApprovalPending, domain.ApprovalApproved, domain.ApprovalDenied, domain.ApprovalUsed, domain.ApprovalExpired:
	default:
		return nil, invalid("invalid_status", "status %q is not one of pending, approved, denied, used, expired", status)
	}
	list, err := s.store.ListApprovals(ctx, store.ApprovalFilter{Status: status, OwnerID: ownerID, AgentID: agentID, Limit: 1000})
	return apiApprovals(list), err
}

// GetApproval returns one approval request.
func (s *Service) GetApproval(ctx context.Context, id string) (api.Approval, error) {
	a, err := s.store.GetApproval(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Approval{}, notFound("approval_not_found", "no approval request %q", id)
	}
	return apiApproval(a), err
}

// ResolveApproval approves or denies a pending request as the caller ctx
// carries (store.WithActor); the user the caller vouches for, if any, is
// recorded beside it.
func (s *Service) ResolveApproval(ctx context.Context, id string, approve bool, req api.ResolveApprovalRequest) (api.Approval, error) {
	user := req.OnBehalfOf
	switch {
	case user == "":
		user = req.RespondedBy
	case req.RespondedBy != "" && req.RespondedBy != user:
		return api.Approval{}, invalid("ambiguous_user", "give onBehalfOf or respondedBy (its older name), not two different users")
	}
	if user != "" {
		if err := checkID("onBehalfOf", user); err != nil {
			return api.Approval{}, err
		}
		actor := store.ActorFrom(ctx)
		actor.OnBehalfOf = user
		ctx = store.WithActor(ctx, actor)
	}
	if len(req.Note) > 2048 {
		return api.Approval{}, invalid("invalid_field", "note is longer than 2048 bytes")
	}
	if strings.ContainsRune(req.Note, 0) {
		return api.Approval{}, invalid("invalid_field", "note contains a NUL character")
	}
	if err := s.checkReady(); err != nil {
		return api.Approval{}, err
	}
	status := domain.ApprovalDenied
	if approve {
		status = domain.ApprovalApproved
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	a, err := s.store.ResolveApproval(ctx, id, status, req.Note)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return api.Approval{}, notFound("approval_not_found", "no approval request %q", id)
	case errors.Is(err, store.ErrConflict):
		return api.Approval{}, conflict("approval_not_pending", "%v", err)
	case err != nil:
		return api.Approval{}, storeError(err)
	}
	s.log.Info("approval resolved", "approval", a.ID, "status", a.Status, "by", a.RespondedBy, "onBehalfOf", a.OnBehalfOf)
	return apiApproval(a), s.syncLocked(ctx, engine.Changes{Approvals: []domain.Approval{a}})
}
