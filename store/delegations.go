package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
)

const delegationColumns = `id, from_agent, to_agent, permissions, depth, max_depth, status, expires_at, created_at, revoked_at`

// CreateDelegation stores a delegation between two existing agents.
func (s *Store) CreateDelegation(ctx context.Context, d domain.Delegation) (domain.Delegation, error) {
	now := s.now()
	d.ID = s.ids.next("dlg_", now)
	d.Status = domain.StatusActive
	d.CreatedAt = now.UTC().Truncate(time.Millisecond)
	d.ExpiresAt = d.ExpiresAt.UTC().Truncate(time.Millisecond)
	perms, err := json.Marshal(d.Permissions)
	if err != nil {
		return domain.Delegation{}, fmt.Errorf("encode grants: %w", err)
	}
	err = s.withTx(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO delegations (`+delegationColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
			d.ID, d.FromAgent, d.ToAgent, string(perms), d.Depth, d.MaxDepth, d.Status, toMillis(d.ExpiresAt), toMillis(d.CreatedAt))
		if err != nil {
			return fmt.Errorf("insert delegation: %w", err)
		}
		if err := s.recordChange(ctx, tx, ChangeDelegation, d.ID); err != nil {
			return err
		}
		if err := s.insertEvent(ctx, tx, Event{Action: "delegation.create", Target: d.ID, AgentID: d.ToAgent,
			Reason: "delegation from " + d.FromAgent + " to " + d.ToAgent, Changes: map[string]any{"after": eventDelegation(d)}}); err != nil {
			return err
		}
		// The receiver's list of incoming delegations changed too.
		return s.recordChange(ctx, tx, ChangeAgent, d.ToAgent)
	})
	if err != nil {
		return domain.Delegation{}, err
	}
	return d, nil
}

// delegationEvent is a delegation as its audit event shows it: its times
// as the API writes them (api.TimeFormat), shadowing the domain's.
type delegationEvent struct {
	domain.Delegation
	ExpiresAt api.Time  `json:"expiresAt"`
	CreatedAt api.Time  `json:"createdAt"`
	RevokedAt *api.Time `json:"revokedAt,omitempty"`
}

func eventDelegation(d domain.Delegation) delegationEvent {
	return delegationEvent{Delegation: d, ExpiresAt: api.NewTime(d.ExpiresAt), CreatedAt: api.NewTime(d.CreatedAt),
		RevokedAt: api.NewTimePtr(d.RevokedAt)}
}

// GetDelegation returns one delegation, or ErrNotFound.
func (s *Store) GetDelegation(ctx context.Context, id string) (domain.Delegation, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.getDelegation(ctx, s.r, id)
}

func (s *Store) getDelegation(ctx context.Context, q querier, id string) (domain.Delegation, error) {
	d, err := s.scanDelegation(q.QueryRowContext(ctx, `SELECT `+delegationColumns+` FROM delegations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) || err == nil && d.ID != id { // exactly id: MySQL's utf8mb4_bin ignores trailing spaces
		return domain.Delegation{}, fmt.Errorf("delegation %q: %w", id, ErrNotFound)
	}
	return d, err
}

// ListDelegations returns one page of the delegations from or to an agent,
// oldest first (in ID order), and the cursor of the next page ("" when
// none). Each side is read in ID order from its own index and cut to the
// page before the two are merged, so no step sorts more than two pages.
func (s *Store) ListDelegations(ctx context.Context, agentID string, p Page) ([]domain.Delegation, string, error) {
	if err := p.check("list delegations"); err != nil {
		return nil, "", err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	n := p.Limit + 1
	list, err := s.queryDelegations(ctx, `WHERE id IN (
		SELECT id FROM (SELECT id FROM delegations WHERE from_agent = ? AND id > ? ORDER BY id LIMIT ?) f
		UNION SELECT id FROM (SELECT id FROM delegations WHERE to_agent = ? AND id > ? ORDER BY id LIMIT ?) t)
		ORDER BY id LIMIT ?`, agentID, p.Cursor, n, agentID, p.Cursor, n, n)
	if err != nil {
		return nil, "", err
	}
	list, next := cutPage(list, p.Limit, func(d domain.Delegation) string { return d.ID })
	return list, next, nil
}

// EachDelegation calls fn for every delegation.
func (s *Store) EachDelegation(ctx context.Context, fn func(domain.Delegation) error) error {
	ctx, progress, done := s.withProgress(ctx)
	var ds []domain.Delegation
	err := s.scanDelegations(ctx, func(d domain.Delegation) {
		progress()
		ds = append(ds, d)
	}, "ORDER BY id")
	if err = done(err); err != nil {
		return err
	}
	for _, d := range ds {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// queryDelegations reads the delegations that tail (conditions, order,
// limit) selects.
func (s *Store) queryDelegations(ctx context.Context, tail string, args ...any) ([]domain.Delegation, error) {
	out := []domain.Delegation{}
	if err := s.scanDelegations(ctx, func(d domain.Delegation) { out = append(out, d) }, tail, args...); err != nil {
		return nil, err
	}
	return out, nil
}

// scanDelegations calls fn for each delegation that tail selects.
func (s *Store) scanDelegations(ctx context.Context, fn func(domain.Delegation), tail string, args ...any) error {
	rows, err := s.r.QueryContext(ctx, `SELECT `+delegationColumns+` FROM delegations `+tail, args...)
	if err != nil {
		return fmt.Errorf("list delegations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		d, err := s.scanDelegation(rows)
		if err != nil {
			return err
		}
		fn(d)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list delegations: %w", err)
	}
	return nil
}

// RevokeDelegation marks a delegation revoked; repeating it changes nothing.
func (s *Store) RevokeDelegation(ctx context.Context, id string) (domain.Delegation, error) {
	var out domain.Delegation
	err := s.withTx(ctx, func(tx *txn) error {
		now := toMillis(s.now())
		res, err := tx.ExecContext(ctx, `UPDATE delegations SET status = 'revoked', revoked_at = ? WHERE id = ? AND status = 'active'`, now, id)
		if err != nil {
			return fmt.Errorf("revoke delegation: %w", err)
		}
		out, err = s.getDelegation(ctx, tx, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			if err := s.recordChange(ctx, tx, ChangeDelegation, id); err != nil {
				return err
			}
			return s.insertEvent(ctx, tx, Event{Action: "delegation.revoke", Target: id, AgentID: out.ToAgent,
				Reason: "delegation revoked", Changes: map[string]any{"before": map[string]any{"status": domain.StatusActive},
					"after": map[string]any{"status": domain.StatusRevoked}}})
		}
		return nil
	})
	return out, err
}

func (s *Store) scanDelegation(row scanner) (domain.Delegation, error) {
	var d domain.Delegation
	var perms string
	var expires, created int64
	var revoked sql.NullInt64
	if err := row.Scan(&d.ID, &d.FromAgent, &d.ToAgent, &perms, &d.Depth, &d.MaxDepth, &d.Status, &expires, &created, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return domain.Delegation{}, err
		}
		return domain.Delegation{}, fmt.Errorf("read delegation: %w", err)
	}
	if err := json.Unmarshal([]byte(perms), &d.Permissions); err != nil {
		return domain.Delegation{}, fmt.Errorf("decode grants of %s: %w", d.ID, err)
	}
	d.ExpiresAt, d.CreatedAt, d.RevokedAt = fromMillis(expires), fromMillis(created), timePtr(revoked)
	if d.Status == domain.StatusActive && !s.now().Before(d.ExpiresAt) {
		d.Status = domain.StatusExpired
	}
	return d, nil
}

// incoming returns the IDs of the delegations to an agent.
func incoming(ctx context.Context, q querier, agentID string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT id FROM delegations WHERE to_agent = ? ORDER BY id`, agentID)
	if err != nil {
		return nil, fmt.Errorf("read delegations of %s: %w", agentID, err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read delegations of %s: %w", agentID, err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
