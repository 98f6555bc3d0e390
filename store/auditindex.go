package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Deferred audit indexes (SQLite). The group commit writes its rows with
// pending = 1: they are in the table, the hash chain and the indexes that
// grow at one end (by ID, kind, time, chain), but not yet in the indexes
// by agent and by owner (migration 0013). A batch's rows name many agents,
// and indexing them at once dirtied one page of each of those indexes per
// agent in every commit: every page a commit dirties is written to the WAL
// and later checkpointed, and with 32 clients over 50 agents this cost the
// sidecar a third of its CPU and half its throughput (kavach bench
// --durable-floor, docs/performance.md). The indexer moves pending rows
// into those indexes every auditIndexEvery, thousands at a time, so a page
// is written once for many rows, and never on a decision's way to its
// answer. Queries by agent or owner read the pending rows through
// audit_pending (the newest few) as well as the indexed ones (auditQuery),
// so nothing is missed meanwhile. PostgreSQL and MySQL index every row as
// it is written: their pending is always 0.

const (
	// auditIndexEvery is how often the indexer runs.
	auditIndexEvery = 250 * time.Millisecond
	// auditIndexBatch bounds the rows one indexing transaction moves, so
	// that it holds the writer for a few milliseconds at most.
	auditIndexBatch = 1000
)

// auditInsertPending is auditInsert for the group commit where indexes are
// deferred.
const auditInsertPending = `INSERT INTO audit_log (` + auditColumns + `, pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`

// deferredAuditIndexes reports whether the group commit's rows are
// indexed by agent and owner later (SQLite).
func (s *Store) deferredAuditIndexes() bool { return s.dialect.name() == "sqlite" && s.schema >= 13 }

// IndexAudit moves up to auditIndexBatch pending audit rows, oldest first,
// into the indexes by agent and owner, and returns how many it moved.
func (s *Store) IndexAudit(ctx context.Context) (int64, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	// Look first, without a lock: an UPDATE takes the write lock even when
	// it changes nothing, and sidecars sharing the file would queue on it.
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM audit_log INDEXED BY audit_pending WHERE pending <> 0 LIMIT 1`).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("find audit rows to index: %w", err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE audit_log SET pending = 0 WHERE id IN
		(SELECT id FROM audit_log INDEXED BY audit_pending WHERE pending <> 0 ORDER BY id LIMIT ?)`, auditIndexBatch)
	if err != nil {
		return 0, fmt.Errorf("index audit rows: %w", err)
	}
	return res.RowsAffected()
}

// auditIndexer runs IndexAudit every auditIndexEvery (at once again while
// a whole batch was moved) until stop closes.
func (s *Store) auditIndexer(log *slog.Logger, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(auditIndexEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for {
			n, err := s.IndexAudit(context.Background())
			if err != nil {
				// The rows stay pending, and found: try again next time.
				if !failing {
					log.Warn("indexing audit rows failed; retrying", "error", err)
				}
				failing = true
				break
			}
			failing = false
			if n < auditIndexBatch {
				break
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}
}

// auditQuery is the SELECT of cols from the audit rows matching cond (a
// WHERE clause built by AuditFilter.where, with its args), in ID order (dir
// is "ASC" or "DESC"), at most limit of them. Where indexes are deferred
// and the filter names an agent or owner, the pending rows (found through
// audit_pending) and the indexed ones are read apart and merged, in one
// statement so that both parts see the same snapshot; otherwise it is one
// SELECT.
func (s *Store) auditQuery(cols, cond string, args []any, byIndexed bool, dir string, limit int) (string, []any) {
	if !byIndexed || !s.deferredAuditIndexes() {
		return `SELECT ` + cols + ` FROM audit_log` + cond + ` ORDER BY id ` + dir + ` LIMIT ?`, append(args, limit)
	}
	// The two parts split every row: pending <> 0 (whatever a row holds
	// that is not exactly 0) and pending = 0, so no value hides a row.
	where := func(pending string) string {
		if cond == "" {
			return " WHERE " + pending
		}
		return cond + " AND " + pending
	}
	q := `SELECT * FROM (SELECT ` + cols + ` FROM audit_log INDEXED BY audit_pending` + where("pending <> 0") + ` ORDER BY id ` + dir + ` LIMIT ?)` +
		` UNION ALL SELECT * FROM (SELECT ` + cols + ` FROM audit_log` + where("pending = 0") + ` ORDER BY id ` + dir + ` LIMIT ?)` +
		` ORDER BY id ` + dir + ` LIMIT ?`
	all := make([]any, 0, 2*len(args)+3)
	all = append(append(append(all, args...), limit), args...)
	return q, append(all, limit, limit)
}
