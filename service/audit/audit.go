// Package audit reads the audit trail (pages and exports) and records
// refused API calls within a budget.
package audit

import (
	"context"
	"log/slog"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/store"
)

// Store is what the audit trail reads and writes.
type Store interface {
	QueryAudit(ctx context.Context, f store.AuditFilter) ([]domain.AuditEntry, string, error)
	ExportAudit(ctx context.Context, f store.AuditFilter, fn func(domain.AuditEntry) error) error
	GetAgent(ctx context.Context, id string) (domain.Agent, error)
	AgentByTokenHash(ctx context.Context, hash string) (domain.Agent, error)
	RecordEvent(ctx context.Context, e store.Event) (domain.AuditEntry, error)
}

// Audit is safe for concurrent use.
type Audit struct {
	store    Store
	refusals *refusals
	now      func() time.Time
}

// New returns the audit trail over st. agentOf resolves an MCP access
// token to its grant's agent, to name it in a refusal's row.
func New(st Store, agentOf func(ctx context.Context, token string) (string, error), now func() time.Time, log *slog.Logger) *Audit {
	return &Audit{store: st, refusals: newRefusals(st, log, agentOf), now: now}
}

// Run writes refused calls' rows until ctx ends.
func (s *Audit) Run(ctx context.Context) { s.refusals.run(ctx) }

// Query holds the raw query parameters of the audit endpoints.
type Query struct {
	AgentID, UserID, Result, Since, Until, Limit, Cursor string
	// Kind is decision or event (a change of state or a refused call);
	// Action one action (agent.update, api.refused, or an agent's action).
	Kind, Action string
}

func (q Query) filter(paged bool) (store.AuditFilter, error) {
	f := store.AuditFilter{AgentID: q.AgentID, OwnerID: q.UserID, Result: q.Result, Cursor: q.Cursor, Kind: q.Kind, Action: q.Action}
	switch q.Kind {
	case "", domain.KindDecision, domain.KindEvent:
	default:
		return f, core.Invalid("invalid_parameter", "kind %q is not decision or event", q.Kind)
	}
	switch q.Result {
	case "", domain.ResultAllowed, domain.ResultDenied:
	default:
		return f, core.Invalid("invalid_parameter", "result %q is not allowed or denied", q.Result)
	}
	var err error
	if f.Since, err = parseTime("since", q.Since); err != nil {
		return f, err
	}
	if f.Until, err = parseTime("until", q.Until); err != nil {
		return f, err
	}
	if paged {
		if f.Limit, err = core.Limit(q.Limit); err != nil {
			return f, err
		}
		if err := core.Cursor("aud_", q.Cursor); err != nil {
			return f, err
		}
	}
	return f, nil
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, core.Invalid("invalid_parameter", "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
	}
	return t, nil
}

// QueryAudit returns one page of audit rows, newest first.
func (s *Audit) QueryAudit(ctx context.Context, q Query) (api.AuditPage, error) {
	f, err := q.filter(true)
	if err != nil {
		return api.AuditPage{}, err
	}
	entries, next, err := s.store.QueryAudit(ctx, f)
	if err != nil {
		return api.AuditPage{}, err
	}
	out := make([]api.AuditEntry, len(entries))
	for i, e := range entries {
		out[i] = core.APIAuditEntry(e)
	}
	return api.AuditPage{Entries: out, NextCursor: next}, nil
}

// ValidateExport checks an export's parameters before any byte is sent.
func (s *Audit) ValidateExport(q Query) error {
	_, err := q.filter(false)
	return err
}

// ExportAudit streams every matching row, oldest first.
func (s *Audit) ExportAudit(ctx context.Context, q Query, fn func(api.AuditEntry) error) error {
	f, err := q.filter(false)
	if err != nil {
		return err
	}
	return s.store.ExportAudit(ctx, f, func(e domain.AuditEntry) error { return fn(core.APIAuditEntry(e)) })
}
