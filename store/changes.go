package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/jackc/pgx/v5"
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

// notifyChannel is the PostgreSQL channel a commit with changes notifies.
const notifyChannel = "kavach_changes"

// Advisory lock namespaces (PostgreSQL). SQLite needs none: its immediate
// transactions already run one at a time.
const (
	lockChanges    = 7400002
	lockRateAgent  = 1
	lockOwnerQuota = 2
)

// recordChange appends to the change feed inside the writing transaction.
// On PostgreSQL it first takes a transaction-wide advisory lock, so that
// sequence numbers are handed out in commit order, and queues a NOTIFY,
// which PostgreSQL delivers on commit.
func (s *Store) recordChange(ctx context.Context, tx *txn, kind, id string) error {
	if s.pg {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, lockChanges); err != nil {
			return fmt.Errorf("lock change feed: %w", err)
		}
	}
	var seq int64
	err := tx.QueryRowContext(ctx, `INSERT INTO changes (kind, entity_id, at) VALUES (?, ?, ?) RETURNING seq`,
		kind, id, toMillis(s.now())).Scan(&seq)
	if err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	if s.pg {
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify('`+notifyChannel+`', ?)`, strconv.FormatInt(seq, 10)); err != nil {
			return fmt.Errorf("notify change: %w", err)
		}
	}
	return nil
}

// lockKey takes a PostgreSQL advisory lock on (namespace, key) until the
// transaction ends; a no-op on SQLite.
func (s *Store) lockKey(ctx context.Context, tx *txn, namespace int, key string) error {
	if !s.pg {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?, hashtext(?))`, namespace, key); err != nil {
		return fmt.Errorf("lock %d/%s: %w", namespace, key, err)
	}
	return nil
}

// lockRow locks one row until the transaction ends, for read-modify-write
// on PostgreSQL, where another replica may write the same row meanwhile
// (SQLite's immediate transactions already run one at a time). A missing
// row is not an error here: the read that follows reports it.
func (s *Store) lockRow(ctx context.Context, tx *txn, table, id string) error {
	if !s.pg {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT id FROM `+table+` WHERE id = ? FOR UPDATE`, id)
	if err != nil {
		return fmt.Errorf("lock %s %s: %w", table, id, err)
	}
	defer rows.Close()
	// The row is not read: running the query takes the lock. Close
	// reports the query's own error (a lock timeout, say).
	if err := rows.Close(); err != nil {
		return err
	}
	return rows.Err()
}

// LatestChange returns the newest sequence number in the feed (0 if none).
func (s *Store) LatestChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read change feed: %w", err)
	}
	return seq, nil
}

// ChangesSince returns up to limit changes after seq, oldest first.
func (s *Store) ChangesSince(ctx context.Context, after int64, limit int) ([]Change, error) {
	ctx, cancel := withTimeout(ctx)
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
	res, err := s.w.ExecContext(ctx, `DELETE FROM changes WHERE at <= ? AND seq < (SELECT MAX(seq) FROM changes)`, toMillis(before))
	if err != nil {
		return 0, fmt.Errorf("prune change feed: %w", err)
	}
	return res.RowsAffected()
}

// CanListen reports whether the store pushes change notifications:
// PostgreSQL by LISTEN/NOTIFY, a SQLite file by watching it change.
func (s *Store) CanListen() bool { return s.pg || s.path != "" }

// Listen calls notify whenever a change may have been committed, until ctx
// ends. On PostgreSQL it holds one dedicated connection (LISTEN cannot share
// a pooled one); when that connection breaks it reconnects with backoff and
// calls notify once connected again, so changes made in the gap are caught
// up. On a SQLite file it watches the database and its WAL for writes (any
// write: the reader then asks the feed). onError hears every failure.
func (s *Store) Listen(ctx context.Context, notify func(), onError func(error)) {
	if !s.pg {
		if s.path != "" {
			s.watchFile(ctx, notify, onError)
		}
		return
	}
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		connected, err := s.listenOnce(ctx, notify)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = 50 * time.Millisecond
		}
		onError(err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Store) watchFile(ctx context.Context, notify func(), onError func(error)) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		onError(fmt.Errorf("watch %s: %w", s.path, err))
		return
	}
	defer w.Close()
	// The directory, not the files: the WAL comes and goes.
	if err := w.Add(filepath.Dir(s.path)); err != nil {
		onError(fmt.Errorf("watch %s: %w", s.path, err))
		return
	}
	base := filepath.Base(s.path)
	notify()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if strings.HasPrefix(filepath.Base(ev.Name), base) && ev.Has(fsnotify.Write) {
				notify()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			onError(fmt.Errorf("watch %s: %w", s.path, err))
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, notify func()) (connected bool, err error) {
	cfg, err := pgx.ParseConfig(s.pgURL)
	if err != nil {
		return false, fmt.Errorf("listener: %w", err)
	}
	cfg.RuntimeParams["application_name"] = s.app + "-listener"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("listener: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+notifyChannel); err != nil {
		return false, fmt.Errorf("listener: %w", err)
	}
	notify() // whatever committed while we were not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if errors.Is(err, context.Canceled) {
				return true, err
			}
			return true, fmt.Errorf("listener: %w", err)
		}
		notify()
	}
}
