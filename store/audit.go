package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kavach-dev/kavach/domain"
)

// AuditFilter selects audit rows; zero fields match all. Since is
// inclusive, Until exclusive. Cursor continues a previous page.
type AuditFilter struct {
	// Kind is KindDecision or KindEvent; empty means both.
	Kind    string
	Action  string
	AgentID string
	OwnerID string
	Result  string
	Since   time.Time
	Until   time.Time
	Limit   int
	Cursor  string
}

const auditColumns = `id, agent_id, owner_id, action, resource, arguments, result, code, reason, ip, user_agent, duration_us, created_at, approval_id, kind, actor_type, actor_id, actor_name, on_behalf_of, changes, chain_id, chain_seq, prev_hash, hash`

// Consumption is what an allowed call uses up. It is recorded in the same
// transaction as the call's audit row: both or neither.
type Consumption struct {
	// Rates are the call counted against each maxCallsPerHour limit that
	// applies to it.
	Rates []RateEvent
	// ApprovalID is the approval the call used; it must still be approved.
	ApprovalID string
}

// InsertAudit commits one audit row, with what the call consumed, and
// returns it with its ID and timestamp set. It returns only after the
// commit. An approval that is no longer approved is ErrConflict, and a
// decision asked with an API key revoked by then (on any replica)
// ErrKeyRevoked; then nothing is written.
func (s *Store) InsertAudit(ctx context.Context, e domain.AuditEntry, use Consumption) (domain.AuditEntry, error) {
	ctx, cancel := s.withTimeout(ctx) // the wait for the group commit too
	defer cancel()
	now := s.now()
	e.ID = s.ids.next("aud_", now)
	e.Timestamp = now.UTC().Truncate(time.Millisecond)
	if e.Kind == "" {
		e.Kind = domain.KindDecision
	}
	if use.ApprovalID == "" && len(use.Rates) == 0 {
		// Nothing consumed: the row joins the group commit.
		r := &auditReq{e: e, err: make(chan error, 1), span: trace.SpanFromContext(ctx)}
		if !s.audit.async {
			r.gone = ctx.Done()
			r.until, _ = ctx.Deadline()
		}
		err := s.audit.enqueue(ctx, r)
		linkBatch(r)
		if err != nil {
			return domain.AuditEntry{}, err
		}
		return e, nil
	}
	err := s.withTx(ctx, func(tx *txn) error {
		if e.Actor.Type == domain.ActorKey {
			revoked, err := revokedKeys(ctx, tx, []string{e.Actor.ID})
			if err != nil {
				return err
			}
			if revoked[e.Actor.ID] {
				return fmt.Errorf("API key %s: %w", e.Actor.ID, ErrKeyRevoked)
			}
		}
		if use.ApprovalID != "" {
			res, err := tx.ExecContext(ctx, `UPDATE approvals SET status = 'used', used_at = ?
				WHERE id = ? AND status = 'approved' AND expires_at > ?`, toMillis(now), use.ApprovalID, toMillis(now))
			if err != nil {
				return fmt.Errorf("use approval: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return fmt.Errorf("approval %q is no longer usable: %w", use.ApprovalID, ErrConflict)
			}
			if err := s.recordChange(ctx, tx, ChangeApproval, use.ApprovalID); err != nil {
				return err
			}
		}
		for i, r := range use.Rates {
			// The database has the last word on quota, so N calls per hour
			// means N across every sidecar sharing it: count again under a
			// per-agent lock (SQLite's write lock already is one).
			if i == 0 {
				if err := s.lockKey(ctx, tx, lockRateAgent, r.AgentID); err != nil {
					return err
				}
			}
			var n int
			err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM rate_events WHERE agent_id = ? AND resource = ? AND perm_key = ? AND at > ?`,
				r.AgentID, r.Resource, r.PermKey, toMillis(now.Add(-RateWindow))).Scan(&n)
			if err != nil {
				return fmt.Errorf("count calls: %w", err)
			}
			if n >= r.Limit {
				return fmt.Errorf("%d calls in the last hour (limit %d): %w", n, r.Limit, ErrRateLimited)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO rate_events (agent_id, perm_key, resource, at) VALUES (?, ?, ?, ?)`,
				r.AgentID, r.PermKey, r.Resource, toMillis(now)); err != nil {
				return fmt.Errorf("record call: %w", err)
			}
		}
		if err := s.appendAudit(ctx, tx, &e); err != nil {
			return err
		}
		return s.emitDecision(ctx, tx, e)
	})
	if err != nil {
		return domain.AuditEntry{}, err
	}
	s.writes.succeeded()
	s.tap.add(e)
	return e, nil
}

// byIndexed reports whether f names an agent or owner, whose indexes may
// be deferred (auditindex.go).
func (f AuditFilter) byIndexed() bool { return f.AgentID != "" || f.OwnerID != "" }

func (f AuditFilter) where() (string, []any) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if f.Kind != "" {
		add("kind = ?", f.Kind)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.AgentID != "" {
		add("agent_id = ?", f.AgentID)
	}
	if f.OwnerID != "" {
		add("owner_id = ?", f.OwnerID)
	}
	if f.Result != "" {
		add("result = ?", f.Result)
	}
	if !f.Since.IsZero() {
		add("created_at >= ?", toMillis(f.Since))
	}
	if !f.Until.IsZero() {
		add("created_at < ?", toMillis(f.Until))
	}
	if f.Cursor != "" {
		add("id < ?", f.Cursor)
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// QueryAudit returns up to f.Limit rows, newest first, and the cursor of the
// next page ("" when there is none).
func (s *Store) QueryAudit(ctx context.Context, f AuditFilter) ([]domain.AuditEntry, string, error) {
	if f.Limit <= 0 {
		return nil, "", fmt.Errorf("audit query: limit must be positive")
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	cond, args := f.where()
	entries := []domain.AuditEntry{}
	q, args := s.auditQuery(auditColumns, cond, args, f.byIndexed(), "DESC", f.Limit+1)
	err := scanAuditRows(ctx, s.r, func(e domain.AuditEntry) { entries = append(entries, e) }, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("audit query: %w", err)
	}
	next := ""
	if len(entries) > f.Limit {
		entries = entries[:f.Limit]
		next = entries[f.Limit-1].ID
	}
	return entries, next, nil
}

// exportPage is how many rows an export reads per query.
const exportPage = 1000

// ExportAudit streams every matching row, oldest first, to fn. Limit and
// Cursor are ignored: an export has no row cap. Rows are read a page at a
// time and fn runs with no query open, so a slow consumer (a client reading
// an HTTP export slowly) never holds a database connection.
func (s *Store) ExportAudit(ctx context.Context, f AuditFilter, fn func(domain.AuditEntry) error) error {
	f.Cursor = ""
	after := ""
	for {
		page, err := s.auditPage(ctx, f, after)
		if err != nil {
			return err
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(page) < exportPage {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

func (s *Store) auditPage(ctx context.Context, f AuditFilter, after string) ([]domain.AuditEntry, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	cond, args := f.where()
	if after != "" {
		if cond == "" {
			cond = " WHERE id > ?"
		} else {
			cond += " AND id > ?"
		}
		args = append(args, after)
	}
	page := make([]domain.AuditEntry, 0, exportPage)
	q, args := s.auditQuery(auditColumns, cond, args, f.byIndexed(), "ASC", exportPage)
	err := scanAuditRows(ctx, s.r, func(e domain.AuditEntry) { page = append(page, e) }, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit export: %w", err)
	}
	return page, nil
}

func scanAudit(row scanner) (domain.AuditEntry, error) {
	var e domain.AuditEntry
	var args, changes sql.NullString
	var ts int64
	if err := row.Scan(&e.ID, &e.AgentID, &e.OwnerID, &e.Action, &e.Resource, &args, &e.Result, &e.Code,
		&e.Reason, &e.IP, &e.UserAgent, &e.DurationUS, &ts, &e.ApprovalID,
		&e.Kind, &e.Actor.Type, &e.Actor.ID, &e.Actor.Name, &e.Actor.OnBehalfOf, &changes,
		&e.Chain.ID, &e.Chain.Seq, &e.Chain.PrevHash, &e.Chain.Hash); err != nil {
		return domain.AuditEntry{}, fmt.Errorf("read audit row: %w", err)
	}
	if args.Valid {
		e.Arguments = json.RawMessage(args.String)
	}
	if changes.Valid {
		e.Changes = json.RawMessage(changes.String)
	}
	e.Timestamp = fromMillis(ts)
	return e, nil
}
