package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// Anomaly detection reads the audit stream as it commits: the audit writer
// hands every committed decision row to a bounded tap (DrainDecisions),
// never blocking a decision, and the detector folds what it drained into
// per-agent hourly counters held in the database (Fold), so replicas
// sharing PostgreSQL add to the same counters and see the same anomalies.

// CommittedDecision is a committed decision row as anomaly detection reads
// it.
type CommittedDecision struct {
	AuditID, AgentID, Resource, Code string
	Denied                           bool
	// Approval: the row names an approval request (a denial that opened
	// one, or a call that used one).
	Approval bool
	At       time.Time
}

// decisionTap holds committed decision rows until the detector drains
// them; when full it drops rows (counted) rather than wait.
type decisionTap struct {
	mu      sync.Mutex
	buf     []CommittedDecision
	max     int
	dropped atomic.Uint64
}

func (t *decisionTap) add(e domain.AuditEntry) {
	if t == nil || e.Kind != domain.KindDecision || e.AgentID == "" {
		return
	}
	t.mu.Lock()
	t.push(e)
	t.mu.Unlock()
}

// addBatch adds the rows of a committed batch, except those refused.
func (t *decisionTap) addBatch(batch []*auditReq, refused map[*auditReq]error) {
	if t == nil {
		return
	}
	t.mu.Lock()
	for _, r := range batch {
		if refused[r] == nil && r.e.Kind == domain.KindDecision && r.e.AgentID != "" {
			t.push(r.e)
		}
	}
	t.mu.Unlock()
}

// push appends e; t.mu must be held.
func (t *decisionTap) push(e domain.AuditEntry) {
	if len(t.buf) >= t.max {
		t.dropped.Add(1)
		return
	}
	t.buf = append(t.buf, CommittedDecision{AuditID: e.ID, AgentID: e.AgentID, Resource: e.Resource, Code: e.Code,
		Denied: e.Result == domain.ResultDenied, Approval: e.ApprovalID != "", At: e.Timestamp})
}

// DrainDecisions returns the committed decision rows tapped since the
// last call, oldest commit first, and how many were dropped since the
// store opened because the tap was full. dst (emptied) is reused as the
// tap's next buffer. Without Options.DecisionTap it returns nothing.
func (s *Store) DrainDecisions(dst []CommittedDecision) ([]CommittedDecision, uint64) {
	t := s.tap
	if t == nil {
		return nil, 0
	}
	t.mu.Lock()
	out := t.buf
	t.buf = dst[:0]
	t.mu.Unlock()
	return out, t.dropped.Load()
}

// GetTrust returns the agent's latest computed trust; ok is false when
// none was computed yet. ErrNotFound when there is no such agent.
func (s *Store) GetTrust(ctx context.Context, agentID string) (domain.TrustRecord, bool, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var score, at sql.NullInt64
	var level, factors sql.NullString
	err := s.r.QueryRowContext(ctx, `SELECT t.score, t.level, t.factors, t.computed_at
		FROM agents a LEFT JOIN agent_trust t ON t.agent_id = a.id WHERE a.id = ?`, agentID).Scan(&score, &level, &factors, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.TrustRecord{}, false, fmt.Errorf("agent %q: %w", agentID, ErrNotFound)
	}
	if err != nil {
		return domain.TrustRecord{}, false, fmt.Errorf("read trust: %w", err)
	}
	if !level.Valid {
		return domain.TrustRecord{AgentID: agentID}, false, nil
	}
	rec := domain.TrustRecord{AgentID: agentID, Score: int(score.Int64), Level: level.String, ComputedAt: fromMillis(at.Int64)}
	if err := json.Unmarshal([]byte(factors.String), &rec.Factors); err != nil {
		return rec, false, fmt.Errorf("decode trust factors of %s: %w", agentID, err)
	}
	return rec, true, nil
}

// StaleTrust returns up to limit agents, not revoked, whose trust was last
// computed before the given time, oldest first: their denials and
// anomalies may have left the window since, and their age grown.
func (s *Store) StaleTrust(ctx context.Context, before time.Time, limit int) ([]string, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT t.agent_id FROM agent_trust t JOIN agents a ON a.id = t.agent_id
		WHERE t.computed_at < ? AND a.status <> 'revoked' ORDER BY t.computed_at LIMIT ?`, toMillis(before), limit)
	if err != nil {
		return nil, fmt.Errorf("read stale trust: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read stale trust: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// TrustLevels counts the agents not revoked by the level the policy sees
// them at (those never scored at the initial score's level).
func (s *Store) TrustLevels(ctx context.Context) (map[string]int, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT t.level, COUNT(*) FROM agents a LEFT JOIN agent_trust t ON t.agent_id = a.id
		WHERE a.status <> 'revoked' GROUP BY t.level`)
	if err != nil {
		return nil, fmt.Errorf("count trust levels: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var level sql.NullString
		var n int
		if err := rows.Scan(&level, &n); err != nil {
			return nil, fmt.Errorf("count trust levels: %w", err)
		}
		l := level.String
		if !level.Valid {
			l = s.thresholds.Level(domain.InitialTrustScore)
		}
		out[l] += n
	}
	return out, rows.Err()
}

// PruneAnomalyCounters deletes hourly counters and probes of hours that
// began before the given time.
func (s *Store) PruneAnomalyCounters(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.withTx(ctx, func(tx *txn) error {
		for _, table := range []string{"anomaly_counters", "anomaly_probes"} {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE hour < ?`, toMillis(before))
			if err != nil {
				return fmt.Errorf("prune %s: %w", table, err)
			}
			m, _ := res.RowsAffected()
			n += m
		}
		return nil
	})
	return n, err
}

// AnomalyFilter selects anomalies; zero fields match all. Since is
// inclusive, on detectedAt.
type AnomalyFilter struct {
	AgentID string
	Type    string
	Since   time.Time
}

const anomalyColumns = `id, agent_id, type, severity, window_start, detected_at, description, evidence`

// ListAnomalies returns one page of matching anomalies, newest first, and
// the cursor of the next page ("" when none).
func (s *Store) ListAnomalies(ctx context.Context, f AnomalyFilter, p Page) ([]domain.Anomaly, string, error) {
	if err := p.check("list anomalies"); err != nil {
		return nil, "", err
	}
	var where []string
	var args []any
	if f.AgentID != "" {
		where, args = append(where, "agent_id = ?"), append(args, f.AgentID)
	}
	if f.Type != "" {
		where, args = append(where, "type = ?"), append(args, f.Type)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "detected_at >= ?"), append(args, toMillis(f.Since))
	}
	if p.Cursor != "" {
		where, args = append(where, "id < ?"), append(args, p.Cursor)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	rows, err := s.r.QueryContext(ctx, `SELECT `+anomalyColumns+` FROM anomalies`+cond+` ORDER BY id DESC LIMIT ?`,
		append(args, p.Limit+1)...)
	if err != nil {
		return nil, "", fmt.Errorf("list anomalies: %w", err)
	}
	defer rows.Close()
	list := []domain.Anomaly{}
	for rows.Next() {
		var a domain.Anomaly
		var window, detected int64
		var evidence string
		if err := rows.Scan(&a.ID, &a.AgentID, &a.Type, &a.Severity, &window, &detected, &a.Description, &evidence); err != nil {
			return nil, "", fmt.Errorf("list anomalies: %w", err)
		}
		a.Window, a.DetectedAt, a.Evidence = fromMillis(window), fromMillis(detected), json.RawMessage(evidence)
		list = append(list, a)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list anomalies: %w", err)
	}
	list, next := cutPage(list, p.Limit, func(a domain.Anomaly) string { return a.ID })
	return list, next, nil
}

// ResumeAgent lifts an agent's suspension (audited agent.resume). An
// agent not suspended is returned unchanged; a revoked one is ErrRevoked.
func (s *Store) ResumeAgent(ctx context.Context, id string) (domain.Agent, error) {
	return s.setStatus(ctx, id, func(tx *txn, a domain.Agent) error {
		if a.Status == domain.StatusRevoked {
			return fmt.Errorf("agent %q: %w", id, ErrRevoked)
		}
		var suspended sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT suspended_at FROM agents WHERE id = ?`, id).Scan(&suspended); err != nil {
			return fmt.Errorf("read agent %q: %w", id, err)
		}
		if !suspended.Valid {
			return nil
		}
		after := domain.StatusActive
		if a.Status == domain.StatusExpired {
			after = domain.StatusExpired
		}
		if err := s.insertEvent(ctx, tx, Event{Action: "agent.resume", Target: id, AgentID: id, OwnerID: a.OwnerID,
			Reason: "agent resumed", Changes: map[string]any{"before": map[string]any{"status": domain.StatusSuspended},
				"after": map[string]any{"status": after}}}); err != nil {
			return err
		}
		now := toMillis(s.now())
		if _, err := tx.ExecContext(ctx, `UPDATE agents SET suspended_at = NULL, updated_at = ? WHERE id = ?`, now, id); err != nil {
			return fmt.Errorf("resume agent: %w", err)
		}
		return nil
	})
}
