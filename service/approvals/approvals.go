// Package approvals is human approval: requests opened by decisions that
// need one and their resolution.
package approvals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/store"
)

// Store is what approvals write and read.
type Store interface {
	PendingApproval(ctx context.Context, agentID, action, resource string) (domain.Approval, error)
	CreateApproval(ctx context.Context, a domain.Approval) (domain.Approval, error)
	GetApproval(ctx context.Context, id string) (domain.Approval, error)
	ListApprovals(ctx context.Context, f store.ApprovalFilter, p store.Page) ([]domain.Approval, string, error)
	ResolveApproval(ctx context.Context, id, status, note string) (domain.Approval, error)
}

// Approvals is safe for concurrent use.
type Approvals struct {
	store Store
	rep   *replica.Replica
	ttl   time.Duration
	now   func() time.Time
	log   *slog.Logger
}

// New returns approvals over st, written through rep. A request stays
// open, and once approved usable, for ttl. The store records each new
// request as an approval.requested event (approval.webhookUrl and the
// webhooks subscribed to it receive it).
func New(st Store, rep *replica.Replica, ttl time.Duration, now func() time.Time, log *slog.Logger) *Approvals {
	return &Approvals{store: st, rep: rep, ttl: ttl, now: now, log: log}
}

// Request opens an approval request for a call that needs one, or
// returns the pending request already open for the same agent, action and
// resource, so a retrying agent does not flood its owner.
func (s *Approvals) Request(ctx context.Context, d engine.Decision, req api.AuthorizeRequest) (domain.Approval, error) {
	var a domain.Approval
	created := false
	err := s.rep.Update(ctx, func() (engine.Changes, error) {
		var err error
		a, err = s.store.PendingApproval(ctx, d.AgentID, req.Action, req.Resource)
		if err == nil {
			return engine.Changes{}, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return engine.Changes{}, fmt.Errorf("find approval: %w", err)
		}
		// The human who answers is the owner of the permission being
		// exercised: for a delegated one, the first delegator's owner, not
		// the child's.
		owner := d.ApprovalOwner
		if owner == "" {
			owner = d.OwnerID
		}
		a, err = s.store.CreateApproval(ctx, domain.Approval{AgentID: d.AgentID, OwnerID: owner, Action: req.Action,
			Resource: req.Resource, Arguments: core.CompactJSON(req.Arguments), ExpiresAt: s.now().Add(s.ttl)})
		if err != nil {
			return engine.Changes{}, fmt.Errorf("create approval: %w", err)
		}
		created = true
		return engine.Changes{Approvals: []domain.Approval{a}}, nil
	})
	if err != nil || !created {
		return a, err
	}
	s.log.Info("approval requested", "approval", a.ID, "agent", a.AgentID, "action", a.Action, "resource", a.Resource)
	return a, nil
}

// Refresh re-reads an approval and syncs it into the engine.
func (s *Approvals) Refresh(ctx context.Context, id string) error {
	return s.rep.Update(ctx, func() (engine.Changes, error) {
		a, err := s.store.GetApproval(ctx, id)
		if err != nil {
			return engine.Changes{}, fmt.Errorf("read approval %s: %w", id, err)
		}
		return engine.Changes{Approvals: []domain.Approval{a}}, nil
	})
}

// ListApprovals returns one page of approval requests, newest first,
// optionally by status, owner and agent.
func (s *Approvals) ListApprovals(ctx context.Context, status, ownerID, agentID string, q core.PageQuery) (api.ApprovalList, error) {
	switch status {
	case "", domain.ApprovalPending, domain.ApprovalApproved, domain.ApprovalDenied, domain.ApprovalUsed, domain.ApprovalExpired:
	default:
		return api.ApprovalList{}, core.Invalid("invalid_status", "status %q is not one of pending, approved, denied, used, expired", status)
	}
	p, err := q.Page("apr_")
	if err != nil {
		return api.ApprovalList{}, err
	}
	list, next, err := s.store.ListApprovals(ctx, store.ApprovalFilter{Status: status, OwnerID: ownerID, AgentID: agentID}, p)
	if err != nil {
		return api.ApprovalList{}, err
	}
	return api.ApprovalList{Approvals: core.APIApprovals(list), NextCursor: next}, nil
}

// GetApproval returns one approval request.
func (s *Approvals) GetApproval(ctx context.Context, id string) (api.Approval, error) {
	a, err := s.store.GetApproval(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Approval{}, core.NotFound("approval_not_found", "no approval request %q", id)
	}
	return core.APIApproval(a), err
}

// ResolveApproval approves or denies a pending request as the caller ctx
// carries (store.WithActor); the user the caller vouches for, if any, is
// recorded beside it.
func (s *Approvals) ResolveApproval(ctx context.Context, id string, approve bool, req api.ResolveApprovalRequest) (api.Approval, error) {
	user := req.OnBehalfOf
	switch {
	case user == "":
		user = req.RespondedBy
	case req.RespondedBy != "" && req.RespondedBy != user:
		return api.Approval{}, core.Invalid("ambiguous_user", "give onBehalfOf or respondedBy (its older name), not two different users")
	}
	if user != "" {
		if err := core.CheckID("onBehalfOf", user); err != nil {
			return api.Approval{}, err
		}
		actor := store.ActorFrom(ctx)
		actor.OnBehalfOf = user
		ctx = store.WithActor(ctx, actor)
	}
	if len(req.Note) > 2048 {
		return api.Approval{}, core.Invalid("invalid_field", "note is longer than 2048 bytes")
	}
	if strings.ContainsRune(req.Note, 0) {
		return api.Approval{}, core.Invalid("invalid_field", "note contains a NUL character")
	}
	if err := s.rep.CheckReady(); err != nil {
		return api.Approval{}, err
	}
	status := domain.ApprovalDenied
	if approve {
		status = domain.ApprovalApproved
	}
	var a domain.Approval
	err := s.rep.Update(ctx, func() (engine.Changes, error) {
		var err error
		a, err = s.store.ResolveApproval(ctx, id, status, req.Note)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return engine.Changes{}, core.NotFound("approval_not_found", "no approval request %q", id)
		case errors.Is(err, store.ErrConflict):
			return engine.Changes{}, core.Conflict("approval_not_pending", "%v", err)
		case err != nil:
			return engine.Changes{}, core.StoreError(err)
		}
		s.log.Info("approval resolved", "approval", a.ID, "status", a.Status, "by", a.RespondedBy, "onBehalfOf", a.OnBehalfOf)
		return engine.Changes{Approvals: []domain.Approval{a}}, nil
	})
	if err != nil {
		return api.Approval{}, err
	}
	return core.APIApproval(a), nil
}
