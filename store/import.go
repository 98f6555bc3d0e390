package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// Imports: rows brought over from another system (kavach import) with the
// IDs, tokens and times they had there. Each method writes one batch in
// one transaction and skips what is already present, so that an import
// can be run again and adds nothing the second time. With dryRun they
// only read: the counts are what a run would do, save for what would
// conflict with rows of the same run.

// ImportResult counts what one batch did.
type ImportResult struct {
	// Added rows were written.
	Added int
	// Skipped are the IDs already present.
	Skipped []string
	// Conflicts are agents not written because another agent already has
	// their token hash (an earlier import from another source, say).
	Conflicts []string
	// Foreign are agents not written because their ID is present with
	// another token hash: another agent, not this one imported before.
	Foreign []string
}

// errDryRun rolls a dry run's transaction back.
var errDryRun = errors.New("dry run")

// importTx runs fn in one write transaction, rolled back for a dry run.
func (s *Store) importTx(ctx context.Context, dryRun bool, fn func(tx *txn) error) error {
	err := s.withTx(ctx, func(tx *txn) error {
		if err := fn(tx); err != nil {
			return err
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	if errors.Is(err, errDryRun) {
		return nil
	}
	return err
}

// inChunk bounds the keys of one IN list, well under SQLite's and
// PostgreSQL's limits on bound parameters.
const inChunk = 500

// present returns which of keys column holds in table, with the ID of
// the row that holds each.
func present(ctx context.Context, tx *txn, table, column string, keys []string) (map[string]string, error) {
	found := make(map[string]string, len(keys))
	for chunk := range slices.Chunk(keys, inChunk) {
		if err := presentChunk(ctx, tx, table, column, chunk, found); err != nil {
			return nil, fmt.Errorf("read present %s: %w", table, err)
		}
	}
	return found, nil
}

func presentChunk(ctx context.Context, tx *txn, table, column string, keys []string, found map[string]string) error {
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	// table and column are constants of this file, never input.
	q := `SELECT ` + column + `, id FROM ` + table + ` WHERE ` + column + ` IN (?` + strings.Repeat(", ?", len(keys)-1) + `)` //nolint:gosec // G202: see above
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var key, id string
		if err := rows.Scan(&key, &id); err != nil {
			return err
		}
		found[key] = id
	}
	return rows.Err()
}

// ImportAgents writes agents as they are given: ID, status, token hash,
// times and permissions (nothing is generated). An agent whose ID is
// present is skipped; one whose token hash another agent has is a
// conflict. Each written agent enters the change feed, so running
// sidecars load it; no audit event is written per agent (the import
// writes one for the whole run).
func (s *Store) ImportAgents(ctx context.Context, agents []domain.Agent, dryRun bool) (ImportResult, error) {
	ids, hashes := make([]string, len(agents)), make([]string, len(agents))
	for i, a := range agents {
		ids[i], hashes[i] = a.ID, a.TokenHash
	}
	var haveHash map[string]string
	load := func(tx *txn) error {
		if haveHash != nil {
			return nil
		}
		var err error
		haveHash, err = present(ctx, tx, "agents", "token_hash", hashes)
		return err
	}
	// An agent whose ID is present is the same agent (imported before)
	// only if that row has its token hash too.
	same := func(tx *txn, i int) (bool, error) {
		if err := load(tx); err != nil {
			return false, err
		}
		return haveHash[agents[i].TokenHash] == agents[i].ID, nil
	}
	conflict := func(tx *txn, i int) (bool, error) {
		if err := load(tx); err != nil {
			return false, err
		}
		if _, ok := haveHash[agents[i].TokenHash]; ok {
			return true, nil
		}
		// Two agents of one batch with one hash: the second conflicts.
		haveHash[agents[i].TokenHash] = agents[i].ID
		return false, nil
	}
	// Prepared once per batch, closed with its transaction: a batch holds
	// thousands of agents.
	var agentStmt, permStmt *sql.Stmt
	return s.importRows(ctx, "agents", ids, dryRun, same, conflict, func(tx *txn, i int) error {
		if agentStmt == nil {
			var err1, err2 error
			agentStmt, err1 = tx.PrepareContext(ctx, `INSERT INTO agents (`+agentColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`) //nolint:sqlclosecheck // see above
			permStmt, err2 = tx.PrepareContext(ctx, permissionInsert)                                                                  //nolint:sqlclosecheck // see above
			if err := errors.Join(err1, err2); err != nil {
				return fmt.Errorf("prepare agent insert: %w", err)
			}
		}
		a := agents[i]
		meta, err := json.Marshal(a.Metadata)
		if err != nil {
			return fmt.Errorf("encode metadata of %s: %w", a.ID, err)
		}
		if _, err := agentStmt.ExecContext(ctx, a.ID, a.OwnerID, a.Name, a.Type, a.Status, a.TokenHash, string(meta),
			nullMillis(a.ExpiresAt), toMillis(a.CreatedAt), toMillis(a.UpdatedAt), nullMillis(a.RevokedAt)); err != nil {
			return fmt.Errorf("insert agent %s: %w", a.ID, err)
		}
		if err := insertPermissionsWith(ctx, permStmt, a.ID, a.Permissions); err != nil {
			return err
		}
		return s.recordChange(ctx, tx, ChangeAgent, a.ID)
	})
}

// ImportDelegations writes delegations between agents already written,
// skipping those whose ID is present.
func (s *Store) ImportDelegations(ctx context.Context, ds []domain.Delegation, dryRun bool) (ImportResult, error) {
	ids := idsOf(ds, func(x domain.Delegation) string { return x.ID })
	return s.importRows(ctx, "delegations", ids, dryRun, nil, nil, func(tx *txn, i int) error {
		d := ds[i]
		perms, err := json.Marshal(d.Permissions)
		if err != nil {
			return fmt.Errorf("encode grants: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO delegations (`+delegationColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.FromAgent, d.ToAgent, string(perms), d.Depth, d.MaxDepth, d.Status, toMillis(d.ExpiresAt),
			toMillis(d.CreatedAt), nullMillis(d.RevokedAt)); err != nil {
			return fmt.Errorf("insert delegation %s: %w", d.ID, err)
		}
		if err := s.recordChange(ctx, tx, ChangeDelegation, d.ID); err != nil {
			return err
		}
		// The receiver's list of incoming delegations changed too.
		return s.recordChange(ctx, tx, ChangeAgent, d.ToAgent)
	})
}

// ImportApprovals writes approval requests of agents already written,
// skipping those whose ID is present.
func (s *Store) ImportApprovals(ctx context.Context, as []domain.Approval, dryRun bool) (ImportResult, error) {
	ids := idsOf(as, func(x domain.Approval) string { return x.ID })
	return s.importRows(ctx, "approvals", ids, dryRun, nil, nil, func(tx *txn, i int) error {
		a := as[i]
		var args sql.NullString
		if len(a.Arguments) > 0 {
			args = sql.NullString{String: string(a.Arguments), Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO approvals (id, agent_id, owner_id, action, resource, arguments, status,
			expires_at, created_at, responded_at, responded_by, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.AgentID, a.OwnerID, a.Action, a.Resource, args, a.Status, toMillis(a.ExpiresAt), toMillis(a.CreatedAt),
			nullMillis(a.RespondedAt), a.RespondedBy, a.Note); err != nil {
			return fmt.Errorf("insert approval %s: %w", a.ID, err)
		}
		return s.recordChange(ctx, tx, ChangeApproval, a.ID)
	})
}

// ImportAudit appends audit rows, with the IDs and times given, to the
// hash chain this transaction leases, as every other writer does: rows
// already present are skipped before linking, so the chain has no gap.
// They are history, not decisions made here: no event, no webhook, no
// anomaly counter hears of them.
func (s *Store) ImportAudit(ctx context.Context, rows []domain.AuditEntry, dryRun bool) (ImportResult, error) {
	ids := idsOf(rows, func(x domain.AuditEntry) string { return x.ID })
	var stmt *sql.Stmt
	return s.importRows(ctx, "audit_log", ids, dryRun, nil, nil, func(tx *txn, i int) error {
		if stmt == nil {
			var err error
			// Closed with its transaction, as ImportAgents's.
			if stmt, err = tx.PrepareContext(ctx, auditInsert); err != nil { //nolint:sqlclosecheck // see above
				return fmt.Errorf("prepare audit insert: %w", err)
			}
		}
		e := rows[i]
		e.Timestamp = e.Timestamp.UTC().Truncate(time.Millisecond)
		s.linkAudit(tx, &e)
		if _, err := stmt.ExecContext(ctx, auditArgs(e)...); err != nil {
			return fmt.Errorf("insert audit row: %w", err)
		}
		return nil
	})
}

// importRows writes, in one transaction, the rows whose ID is not present
// in table: same (if set) says whether the present i-th row is the one
// given (Skipped) or another (Foreign); conflict (if set) whether the
// i-th conflicts with what is there; insert writes it. A dry run only
// reads.
func (s *Store) importRows(ctx context.Context, table string, ids []string, dryRun bool,
	same, conflict func(tx *txn, i int) (bool, error), insert func(tx *txn, i int) error) (ImportResult, error) {
	var res ImportResult
	err := s.importTx(ctx, dryRun, func(tx *txn) error {
		res = ImportResult{}
		have, err := present(ctx, tx, table, "id", ids)
		if err != nil {
			return err
		}
		for i, id := range ids {
			if _, ok := have[id]; ok {
				if same != nil {
					ok, err := same(tx, i)
					if err != nil {
						return err
					}
					if !ok {
						res.Foreign = append(res.Foreign, id)
						continue
					}
				}
				res.Skipped = append(res.Skipped, id)
				continue
			}
			// A batch that holds one ID twice writes it once.
			have[id] = id
			if conflict != nil {
				bad, err := conflict(tx, i)
				if err != nil {
					return err
				}
				if bad {
					res.Conflicts = append(res.Conflicts, id)
					continue
				}
			}
			if !dryRun {
				if err := insert(tx, i); err != nil {
					return err
				}
			}
			res.Added++
		}
		return nil
	})
	return res, err
}

// idsOf lists the IDs of rows.
func idsOf[T any](rows []T, id func(T) string) []string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = id(r)
	}
	return ids
}
