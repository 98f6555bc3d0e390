package service

import (
	"context"
	"strconv"
	"time"

	"github.com/kavach-dev/kavach/domain"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/store"
)

// AuditQuery holds the raw query parameters of the audit endpoints.
type AuditQuery struct {
	AgentID, UserID, Result, Since, Until, Limit, Cursor string
	// Kind is decision or event (a change of state or a refused call);
	// Action one action (agent.update, api.refused, or an agent's action).
	Kind, Action string
}

const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

func (q AuditQuery) filter(paged bool) (store.AuditFilter, error) {
	f := store.AuditFilter{AgentID: q.AgentID, OwnerID: q.UserID, Result: q.Result, Cursor: q.Cursor, Kind: q.Kind, Action: q.Action}
	switch q.Kind {
	case "", domain.KindDecision, domain.KindEvent:
	default:
		return f, invalid("invalid_parameter", "kind %q is not decision or event", q.Kind)
	}
	switch q.Result {
	case "", domain.ResultAllowed, domain.ResultDenied:
	default:
		return f, invalid("invalid_parameter", "result %q is not allowed or denied", q.Result)
	}
	var err error
	if f.Since, err = parseTime("since", q.Since); err != nil {
		return f, err
	}
	if f.Until, err = parseTime("until", q.Until); err != nil {
		return f, err
	}
	if paged {
		f.Limit = defaultAuditLimit
		if q.Limit != "" {
			n, err := strconv.Atoi(q.Limit)
			if err != nil || n < 1 || n > maxAuditLimit {
				return f, invalid("invalid_parameter", "limit must be an integer from 1 to %d", maxAuditLimit)
			}
			f.Limit = n
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
		return time.Time{}, invalid("invalid_parameter", "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
	}
	return t, nil
}

// QueryAudit returns one page of audit rows, newest first.
func (s *Service) QueryAudit(ctx context.Context, q AuditQuery) (api.AuditPage, error) {
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
		out[i] = apiAuditEntry(e)
	}
	return api.AuditPage{Entries: out, NextCursor: next}, nil
}

// ValidateExport checks an export's parameters before any byte is sent.
func (s *Service) ValidateExport(q AuditQuery) error {
	_, err := q.filter(false)
	return err
}

// ExportAudit streams every matching row, oldest first.
func (s *Service) ExportAudit(ctx context.Context, q AuditQuery, fn func(api.AuditEntry) error) error {
	f, err := q.filter(false)
	if err != nil {
		return err
	}
	return s.store.ExportAudit(ctx, f, func(e domain.AuditEntry) error { return fn(apiAuditEntry(e)) })
}
