package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
)

// ErrExpired is returned when resolving an expired approval.
var ErrExpired = errors.New("expired")

// ApprovalFilter selects approvals; empty fields match all.
type ApprovalFilter struct {
	Status  string
	OwnerID string
	AgentID string
}

const approvalColumns = `id, agent_id, owner_id, action, resource, arguments, status, expires_at, created_at, responded_at, responded_by, note, used_at, responder_name, on_behalf_of`

// PendingApproval returns the newest pending, unexpired request for the
// same agent, action and resource, or ErrNotFound; repeated calls reuse it.
func (s *Store) PendingApproval(ctx context.Context, agentID, action, resource string) (domain.Approval, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	a, err := s.scanApproval(s.w.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals
		WHERE agent_id = ? AND action = ? AND resource = ? AND status = 'pending' AND expires_at > ?
		ORDER BY id DESC LIMIT 1`, agentID, action, resource, toMillis(s.now())))
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Approval{}, ErrNotFound
	}
	return a, err
}

// CreateApproval stores a pending request.
func (s *Store) CreateApproval(ctx context.Context, a domain.Approval) (domain.Approval, error) {
	now := s.now()
	a.ID = s.ids.next("apr_", now)
	a.Status, a.StoredStatus = domain.ApprovalPending, domain.ApprovalPending
	a.CreatedAt = now.UTC().Truncate(time.Millisecond)
	a.ExpiresAt = a.ExpiresAt.UTC().Truncate(time.Millisecond)
	var args sql.NullString
	if len(a.Arguments) > 0 {
		args = sql.NullString{String: string(a.Arguments), Valid: true}
	}
	err := s.withTx(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO approvals (id, agent_id, owner_id, action, resource, arguments, status, expires_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
			a.ID, a.AgentID, a.OwnerID, a.Action, a.Resource, args, toMillis(a.ExpiresAt), toMillis(a.CreatedAt))
		if err != nil {
			return fmt.Errorf("insert approval: %w", err)
		}
		if err := s.emitApprovalRequested(ctx, tx, a); err != nil {
			return err
		}
		return s.recordChange(ctx, tx, ChangeApproval, a.ID)
	})
	if err != nil {
		return domain.Approval{}, err
	}
	return a, nil
}

// GetApproval returns one approval, or ErrNotFound.
func (s *Store) GetApproval(ctx context.Context, id string) (domain.Approval, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	a, err := s.scanApproval(s.r.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) || err == nil && a.ID != id { // exactly id: MySQL's utf8mb4_bin ignores trailing spaces
		return domain.Approval{}, fmt.Errorf("approval %q: %w", id, ErrNotFound)
	}
	return a, err
}

// ListApprovals returns one page of matching approvals, newest first (in
// descending ID order), and the cursor of the next page ("" when none).
func (s *Store) ListApprovals(ctx context.Context, f ApprovalFilter, p Page) ([]domain.Approval, string, error) {
	if err := p.check("list approvals"); err != nil {
		return nil, "", err
	}
	var where []string
	var args []any
	now := toMillis(s.now())
	switch f.Status {
	case "":
	case domain.ApprovalPending, domain.ApprovalApproved:
		where, args = append(where, "status = ? AND expires_at > ?"), append(args, f.Status, now)
	case domain.ApprovalExpired:
		where, args = append(where, "status IN ('pending', 'approved') AND expires_at <= ?"), append(args, now)
	default:
		where, args = append(where, "status = ?"), append(args, f.Status)
	}
	if f.OwnerID != "" {
		where, args = append(where, "owner_id = ?"), append(args, f.OwnerID)
	}
	if f.AgentID != "" {
		where, args = append(where, "agent_id = ?"), append(args, f.AgentID)
	}
	if p.Cursor != "" {
		where, args = append(where, "id < ?"), append(args, p.Cursor)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	list, err := s.queryApprovals(ctx, s.r, cond+` ORDER BY id DESC LIMIT ?`, append(args, p.Limit+1)...)
	if err != nil {
		return nil, "", err
	}
	list, next := cutPage(list, p.Limit, func(a domain.Approval) string { return a.ID })
	return list, next, nil
}

// EachApproval calls fn for every approval that expired less than `keep`
// ago or not at all: older ones no longer matter to decisions.
func (s *Store) EachApproval(ctx context.Context, keep time.Duration, fn func(domain.Approval) error) error {
	ctx, progress, done := s.withProgress(ctx)
	var as []domain.Approval
	err := s.scanApprovals(ctx, s.r, func(a domain.Approval) {
		progress()
		as = append(as, a)
	}, ` WHERE expires_at > ? ORDER BY id`, toMillis(s.now().Add(-keep)))
	if err = done(err); err != nil {
		return err
	}
	for _, a := range as {
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) queryApprovals(ctx context.Context, q querier, tail string, args ...any) ([]domain.Approval, error) {
	out := []domain.Approval{}
	err := s.scanApprovals(ctx, q, func(a domain.Approval) { out = append(out, a) }, tail, args...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanApprovals calls fn for each approval the query selects.
func (s *Store) scanApprovals(ctx context.Context, q querier, fn func(domain.Approval), tail string, args ...any) error {
	rows, err := q.QueryContext(ctx, `SELECT `+approvalColumns+` FROM approvals`+tail, args...)
	if err != nil {
		return fmt.Errorf("list approvals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		a, err := s.scanApproval(rows)
		if err != nil {
			return err
		}
		fn(a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list approvals: %w", err)
	}
	return nil
}

// ResolveApproval approves or denies a pending request as the caller ctx
// carries (WithActor), which is recorded as the responder. A request that
// is not pending is ErrConflict; one past its expiry is ErrExpired.
func (s *Store) ResolveApproval(ctx context.Context, id, status, note string) (domain.Approval, error) {
	by := ActorFrom(ctx)
	if status != domain.ApprovalApproved && status != domain.ApprovalDenied {
		return domain.Approval{}, fmt.Errorf("resolve approval: bad status %q", status)
	}
	var out domain.Approval
	err := s.withTx(ctx, func(tx *txn) error {
		a, err := s.scanApproval(tx.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("approval %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		switch {
		case a.Status == domain.ApprovalExpired:
			return fmt.Errorf("approval %q expired at %s: %w", id, api.FormatTime(a.ExpiresAt), ErrExpired)
		case a.Status != domain.ApprovalPending:
			return fmt.Errorf("approval %q is %s, not pending: %w", id, a.Status, ErrConflict)
		}
		now := toMillis(s.now())
		// Guarded: another replica may have resolved it since we read it.
		res, err := tx.ExecContext(ctx, `UPDATE approvals SET status = ?, responded_at = ?, responded_by = ?, note = ?,
			responder_name = ?, on_behalf_of = ? WHERE id = ? AND status = 'pending' AND expires_at > ?`,
			status, now, by.ID, note, by.Name, by.OnBehalfOf, id, now)
		if err != nil {
			return fmt.Errorf("resolve approval: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("approval %q was resolved meanwhile: %w", id, ErrConflict)
		}
		if err := s.recordChange(ctx, tx, ChangeApproval, id); err != nil {
			return err
		}
		action := map[string]string{domain.ApprovalApproved: "approval.approve", domain.ApprovalDenied: "approval.deny"}[status]
		if err := s.insertEvent(ctx, tx, Event{Action: action, Target: id, AgentID: a.AgentID, OwnerID: a.OwnerID,
			Reason: fmt.Sprintf("%s %s on %s", status, a.Action, a.Resource),
			Changes: map[string]any{"before": map[string]any{"status": domain.ApprovalPending},
				"after": map[string]any{"status": status, "note": note}}}); err != nil {
			return err
		}
		out, err = s.scanApproval(tx.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = ?`, id))
		return err
	})
	return out, err
}

func (s *Store) scanApproval(row scanner) (domain.Approval, error) {
	var a domain.Approval
	var args sql.NullString
	var expires, created int64
	var responded, used sql.NullInt64
	if err := row.Scan(&a.ID, &a.AgentID, &a.OwnerID, &a.Action, &a.Resource, &args, &a.StoredStatus, &expires, &created,
		&responded, &a.RespondedBy, &a.Note, &used, &a.RespondedByName, &a.OnBehalfOf); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return domain.Approval{}, err
		}
		return domain.Approval{}, fmt.Errorf("read approval: %w", err)
	}
	if args.Valid {
		a.Arguments = json.RawMessage(args.String)
	}
	a.ExpiresAt, a.CreatedAt = fromMillis(expires), fromMillis(created)
	a.RespondedAt, a.UsedAt = timePtr(responded), timePtr(used)
	a.Status = a.StoredStatus
	if (a.Status == domain.ApprovalPending || a.Status == domain.ApprovalApproved) && !s.now().Before(a.ExpiresAt) {
		a.Status = domain.ApprovalExpired
	}
	return a, nil
}
