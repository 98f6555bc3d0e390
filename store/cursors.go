package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// Webhook cursors. An endpoint's first attempt at each event is made from
// its cursor, in seq order: events are numbered under the change feed's
// lock and each number is visible only once every lower one that commits
// has, so "after seq" never skips an event that commits late. One replica
// at a time follows a cursor, under a lease; it advances the cursor,
// with a compare-and-set on the seq it read and on its lease, in the one
// transaction that also inserts a retry (a webhook_deliveries row) for each
// event whose first attempt failed. A replica that crashes between its
// POSTs and that transaction leaves the cursor where it was: the next
// holder sends the same events again, under their same ids.

// Cursor is where an endpoint's first attempts stand.
type Cursor struct {
	Endpoint string
	// Seq is the last event attempted (or skipped, not being subscribed).
	Seq        int64
	LeaseOwner string
	LeaseUntil time.Time
	// UpdatedAt is when a replica last leased or advanced it.
	UpdatedAt time.Time
}

// startCursors gives each subscribed endpoint that has none a cursor at the
// newest event: an endpoint receives the events committed after it was
// first configured. Open calls it before anything is served, so no event
// committed through this process is missed.
func (s *Store) startCursors(ctx context.Context) error {
	for _, sub := range s.sinks.subs {
		if err := s.StartCursor(ctx, sub.Endpoint); err != nil {
			return err
		}
	}
	return nil
}

// StartCursor gives endpoint a cursor at the newest event, unless it has
// one.
func (s *Store) StartCursor(ctx context.Context, endpoint string) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if _, err := s.w.ExecContext(ctx, s.dialect.upsert(`INSERT INTO webhook_cursors (endpoint, seq, lease_owner, lease_until, updated_at)
		SELECT ?, COALESCE(MAX(seq), 0), '', 0, ? FROM events WHERE true`, "endpoint", ""), endpoint, toMillis(s.now())); err != nil {
		return fmt.Errorf("start webhook cursor: %w", err)
	}
	return nil
}

// GetCursor returns endpoint's cursor, or ErrNotFound.
func (s *Store) GetCursor(ctx context.Context, endpoint string) (Cursor, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	c := Cursor{Endpoint: endpoint}
	var until, updated int64
	err := s.r.QueryRowContext(ctx, `SELECT seq, lease_owner, lease_until, updated_at FROM webhook_cursors WHERE endpoint = ?`,
		endpoint).Scan(&c.Seq, &c.LeaseOwner, &until, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Cursor{}, fmt.Errorf("webhook cursor %s: %w", endpoint, ErrNotFound)
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("read webhook cursor: %w", err)
	}
	c.LeaseUntil, c.UpdatedAt = fromMillis(until), fromMillis(updated)
	return c, nil
}

// LeaseCursor leases endpoint's cursor to owner until now+lease, if it is
// still at seq and owner holds it already or its lease ran out; it reports
// whether owner now holds it.
func (s *Store) LeaseCursor(ctx context.Context, owner, endpoint string, seq int64, lease time.Duration) (bool, error) {
	now := s.now()
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := s.w.ExecContext(ctx, `UPDATE webhook_cursors SET lease_owner = ?, lease_until = ?, updated_at = ?
		WHERE endpoint = ? AND seq = ? AND (lease_owner = ? OR lease_until <= ?)`,
		owner, toMillis(now.Add(lease)), toMillis(now), endpoint, seq, owner, toMillis(now))
	if err != nil {
		return false, fmt.Errorf("lease webhook cursor: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Retry is an event whose first attempt, from the cursor, failed: the
// attempt (Attempt.ID unused), and the event's seq and time.
type Retry struct {
	Seq     int64
	EventAt time.Time
	Attempt
}

// AdvanceCursor moves endpoint's cursor from seq from to seq to and renews
// owner's lease to now+lease, and inserts the retries, in one transaction;
// it reports false, and writes nothing, when the cursor is no longer at
// from or owner no longer holds it (another replica took it over after the
// lease ran out, and sends those events again itself).
func (s *Store) AdvanceCursor(ctx context.Context, owner, endpoint string, from, to int64, lease time.Duration, retries []Retry) (bool, error) {
	now := s.now()
	moved := false
	err := s.withTx(ctx, func(tx *txn) error {
		moved = false
		res, err := tx.ExecContext(ctx, `UPDATE webhook_cursors SET seq = ?, lease_until = ?, updated_at = ?
			WHERE endpoint = ? AND seq = ? AND lease_owner = ?`, to, toMillis(now.Add(lease)), toMillis(now), endpoint, from, owner)
		if err != nil {
			return fmt.Errorf("advance webhook cursor: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		moved = true
		for len(retries) > 0 {
			part := retries[:min(len(retries), emitRows)]
			retries = retries[len(part):]
			args := make([]any, 0, 9*len(part))
			for _, r := range part {
				state, next := domain.DeliveryPending, toMillis(r.Next)
				if r.Failed || r.Next.IsZero() {
					state, next = domain.DeliveryFailed, toMillis(r.At)
				}
				args = append(args, s.ids.next("whd_", now), r.Seq, endpoint, state, toMillis(r.EventAt), next, toMillis(r.At),
					sql.NullInt64{Int64: int64(r.Status), Valid: r.Status != 0}, truncate(r.Error, 200))
			}
			if _, err := tx.ExecContext(ctx, s.dialect.upsert(`INSERT INTO webhook_deliveries (id, event_seq, endpoint, state, created_at,
				next_attempt_at, last_attempt_at, last_status, last_error, attempts, lease_owner, lease_until)
				VALUES `+values(9, len(part), "1", "''", "0"), "event_seq, endpoint", ""), args...); err != nil {
				return fmt.Errorf("queue webhook retries: %w", err)
			}
		}
		return nil
	})
	return moved, err
}

// ReleaseCursor gives back owner's lease on endpoint's cursor, so that
// another replica follows it at once (a shutdown).
func (s *Store) ReleaseCursor(ctx context.Context, owner, endpoint string) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if _, err := s.w.ExecContext(ctx, `UPDATE webhook_cursors SET lease_until = 0 WHERE endpoint = ? AND lease_owner = ?`,
		endpoint, owner); err != nil {
		return fmt.Errorf("release webhook cursor: %w", err)
	}
	return nil
}

// DropStaleCursors deletes the cursors of endpoints not in known that no
// replica has followed since before: an endpoint configured again after
// that starts afresh at the newest event, as a new one does.
func (s *Store) DropStaleCursors(ctx context.Context, known []string, before time.Time) (int64, error) {
	cond, args := endpointNotIn(known, toMillis(before))
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := s.w.ExecContext(ctx, `DELETE FROM webhook_cursors WHERE updated_at < ?`+cond, args...)
	if err != nil {
		return 0, fmt.Errorf("drop stale webhook cursors: %w", err)
	}
	return res.RowsAffected()
}
