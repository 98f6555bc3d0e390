package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

type actorKey struct{}

// WithActor returns ctx carrying the caller, which every write records in
// the audit event it commits with the change.
func WithActor(ctx context.Context, a domain.Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the caller ctx carries; a write without one is the
// sidecar's own (ActorSystem).
func ActorFrom(ctx context.Context) domain.Actor {
	if a, ok := ctx.Value(actorKey{}).(domain.Actor); ok {
		return a
	}
	return domain.Actor{Type: domain.ActorSystem}
}

// Event is a change of state to audit: Action names it (agent.update),
// Target is the ID of what changed, Changes what changed (never a secret).
type Event struct {
	Action  string
	Target  string
	AgentID string
	OwnerID string
	Reason  string
	Changes any
	// Result is allowed for a change made, denied for a refused call.
	Result string
	Code   string
}

// insertEvent writes e as an audit row inside tx, so the change and its
// record commit together or not at all.
func (s *Store) insertEvent(ctx context.Context, tx *txn, e Event) error {
	row, err := s.eventRow(ctx, e)
	if err != nil {
		return err
	}
	if err := s.appendAudit(ctx, tx, &row); err != nil {
		return err
	}
	return s.emitChange(ctx, tx, row)
}

func (s *Store) eventRow(ctx context.Context, e Event) (domain.AuditEntry, error) {
	now := s.now()
	row := domain.AuditEntry{
		ID: s.ids.next("aud_", now), Timestamp: now.UTC().Truncate(time.Millisecond), Kind: domain.KindEvent,
		AgentID: e.AgentID, OwnerID: e.OwnerID, Action: e.Action, Resource: e.Target,
		Result: e.Result, Code: e.Code, Reason: e.Reason, Actor: ActorFrom(ctx),
	}
	if row.Result == "" {
		row.Result, row.Code = domain.ResultAllowed, "ok"
	}
	if e.Changes != nil {
		b, err := json.Marshal(e.Changes)
		if err != nil {
			return domain.AuditEntry{}, fmt.Errorf("encode audit changes: %w", err)
		}
		row.Changes = b
	}
	return row, nil
}

// RecordEvent commits one event on its own: for changes that live outside
// the database (an extension reload) and for refused calls.
func (s *Store) RecordEvent(ctx context.Context, e Event) (domain.AuditEntry, error) {
	row, err := s.eventRow(ctx, e)
	if err != nil {
		return domain.AuditEntry{}, err
	}
	err = s.withTx(ctx, func(tx *txn) error { return s.appendAudit(ctx, tx, &row) })
	return row, err
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

const auditInsert = `INSERT INTO audit_log (` + auditColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

func insertAuditRow(ctx context.Context, x execer, e domain.AuditEntry) error {
	if _, err := x.ExecContext(ctx, auditInsert, auditArgs(e)...); err != nil {
		return fmt.Errorf("insert audit row: %w", err)
	}
	return nil
}

// auditArgs are e's values in auditColumns order.
func auditArgs(e domain.AuditEntry) []any {
	var args, changes sql.NullString
	if len(e.Arguments) > 0 {
		args = sql.NullString{String: string(e.Arguments), Valid: true}
	}
	if len(e.Changes) > 0 {
		changes = sql.NullString{String: string(e.Changes), Valid: true}
	}
	kind := e.Kind
	if kind == "" {
		kind = domain.KindDecision
	}
	return []any{e.ID, e.AgentID, e.OwnerID, e.Action, e.Resource, args, e.Result, e.Code, e.Reason, e.IP, e.UserAgent,
		e.DurationUS, toMillis(e.Timestamp), e.ApprovalID, kind, e.Actor.Type, e.Actor.ID, e.Actor.Name, e.Actor.OnBehalfOf, changes,
		e.Chain.ID, e.Chain.Seq, e.Chain.PrevHash, e.Chain.Hash}
}
