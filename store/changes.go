package store

import (
	"context"
	"fmt"
	"time"
)

// Kinds of change in the change feed.
const (
	ChangeAgent      = "agent"
	ChangeDelegation = "delegation"
	ChangeApproval   = "approval"
)

// Change says that an entity changed; readers re-read its current state, so
// applying changes is idempotent and order within a batch does not matter.
type Change struct {
	Seq      int64
	Kind     string
	EntityID string
}

// Advisory locks. lockChanges is a lock of its own; the others are
// namespaces of keyed locks (keyLock).
const (
	lockChanges          = 7400002
	lockRateAgent  int32 = 1
	lockOwnerQuota int32 = 2
)

// recordChange appends to the change feed inside the writing transaction.
// It first takes a transaction-wide lock (a no-op on SQLite, whose
// transactions run one at a time), so that sequence numbers are handed out
// in commit order, and then has the dialect tell listeners, on commit.
func (s *Store) recordChange(ctx context.Context, tx *txn, kind, id string) error {
	if err := s.lockFeed(ctx, tx); err != nil {
		return fmt.Errorf("lock change feed: %w", err)
	}
	seq, err := s.dialect.insertSeq(ctx, tx, `INSERT INTO changes (kind, entity_id, at) VALUES (?, ?, ?)`, "seq",
		kind, id, toMillis(s.now()))
	if err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	if err := s.dialect.notifyChange(ctx, tx, seq); err != nil {
		return fmt.Errorf("notify change: %w", err)
	}
	return nil
}

// lockFeed takes the change feed's lock, which numbers the feed and the
// events, until tx ends; once per transaction.
func (s *Store) lockFeed(ctx context.Context, tx *txn) error {
	if tx.feedLocked {
		return nil
	}
	if err := s.dialect.advisoryLock(ctx, tx, globalLock(lockChanges)); err != nil {
		return err
	}
	tx.feedLocked = true
	return nil
}

// lockKey takes an advisory lock on (namespace, key) until the transaction
// ends, so that replicas counting and writing for one key take turns.
func (s *Store) lockKey(ctx context.Context, tx *txn, namespace int32, key string) error {
	if err := s.dialect.advisoryLock(ctx, tx, keyLock(namespace, key)); err != nil {
		return fmt.Errorf("lock %d/%s: %w", namespace, key, err)
	}
	return nil
}

// lockRow locks the row of table whose column equals key until the
// transaction ends, for read-modify-write where another replica may write
// the same row meanwhile. Where the dialect has no row lock to take (SQLite's
// immediate transactions already run one at a time) it does nothing. A
// missing row is not an error here: the read that follows reports it.
func (s *Store) lockRow(ctx context.Context, tx *txn, table, column, key string) error {
	forUpdate := s.dialect.lockRow()
	if forUpdate == "" {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT 1 FROM `+table+` WHERE `+column+` = ?`+forUpdate, key)
	if err != nil {
		return fmt.Errorf("lock %s row: %w", table, err)
	}
	defer rows.Close()
	// The row is not read: running the query takes the lock. Close
	// reports the query's own error (a lock timeout, say).
	if err := rows.Close(); err != nil {
		return fmt.Errorf("lock %s row: %w", table, err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lock %s row: %w", table, err)
	}
	return nil
}

// LatestChange returns the newest sequence number in the feed (0 if none).
func (s *Store) LatestChange(ctx context.Context) (int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var seq int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read change feed: %w", err)
	}
	return seq, nil
}

// ChangesSince returns up to limit changes after seq, oldest first.
func (s *Store) ChangesSince(ctx context.Context, after int64, limit int) ([]Change, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT seq, kind, entity_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read change feed: %w", err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var c Change
		if err := rows.Scan(&c.Seq, &c.Kind, &c.EntityID); err != nil {
			return nil, fmt.Errorf("read change feed: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// PruneChanges deletes feed entries at or before the given time; replicas
// further behind than that reload everything at start.
func (s *Store) PruneChanges(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	// The newest seq through a derived table: MySQL refuses a DELETE
	// whose subquery reads the table itself.
	res, err := s.w.ExecContext(ctx, `DELETE FROM changes WHERE at <= ?
		AND seq < (SELECT newest FROM (SELECT MAX(seq) AS newest FROM changes) AS feed)`, toMillis(before))
	if err != nil {
		s.writes.failed(err, s.now())
		return 0, fmt.Errorf("prune change feed: %w", err)
	}
	return res.RowsAffected()
}

// CanListen reports whether the store pushes change notifications:
// PostgreSQL by LISTEN/NOTIFY, a SQLite file by watching it change.
func (s *Store) CanListen() bool { return s.dialect.canListen() }

// Listen calls notify whenever a change may have been committed, until ctx
// ends. On PostgreSQL it holds one dedicated connection (LISTEN cannot share
// a pooled one); when that connection breaks it reconnects with backoff and
// calls notify once connected again, so changes made in the gap are caught
// up. On a SQLite file it watches the database and its WAL for writes (any
// write: the reader then asks the feed). onError hears every failure.
func (s *Store) Listen(ctx context.Context, notify func(), onError func(error)) {
	s.dialect.listen(ctx, notify, onError)
}
