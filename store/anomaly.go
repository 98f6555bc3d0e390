package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kavach-dev/kavach/api"
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

// HourActivity is what one agent did in one hour, from rows drained.
type HourActivity struct {
	// Hour is the hour's start (UTC).
	Hour time.Time
	// Calls counts decisions; Denials those denied without an approval
	// request (a question for a human is no refusal); Allowed those
	// allowed.
	Calls, Denials, Allowed int64
	// Probes are the resources denied no_permission, each with the audit
	// row that asked for it.
	Probes []Probe
}

// Probe is a resource an agent was denied no_permission.
type Probe struct{ Resource, AuditID string }

// AgentActivity is one agent's activity to fold: its hours, and findings
// known without counters (off_hours). An agent with neither only has its
// trust recomputed.
type AgentActivity struct {
	AgentID  string
	Hours    []HourActivity
	Findings []Finding
}

// HourTotals are an agent's counters for one hour after a fold, across
// every replica.
type HourTotals struct {
	Hour           time.Time
	Calls, Denials int64
	// Probed counts the distinct resources denied no_permission.
	Probed int64
}

// AgentTotals are what detection judges: the agent and the totals of the
// hours its activity touched.
type AgentTotals struct {
	AgentID   string
	CreatedAt time.Time
	Hours     []HourTotals
}

// Evidence says which audit IDs back a finding.
type Evidence int

// Sources of a finding's audit IDs.
const (
	// EvidenceGiven: Finding.AuditIDs as given.
	EvidenceGiven Evidence = iota
	// EvidenceCalls: the latest decision rows of the finding's hour.
	EvidenceCalls
	// EvidenceDenials: the latest denied decision rows of the hour.
	EvidenceDenials
	// EvidenceProbes: the rows that probed each resource in the hour.
	EvidenceProbes
)

// MaxEvidenceIDs bounds the audit IDs an anomaly's evidence lists.
const MaxEvidenceIDs = 20

// Finding is an anomaly detection proposes; Fold stores it unless its
// agent, type and window already have one.
type Finding struct {
	Type, Severity, Description string
	// Window is the start of the anomaly's window: its hour, or its day
	// (off_hours).
	Window time.Time
	// Counts are the evidence's numbers; the audit IDs are added under
	// "auditIds", from Source (Hour says which hour for the others).
	Counts   map[string]any
	Source   Evidence
	Hour     time.Time
	AuditIDs []string
}

// TrustInput is what an agent's trust is computed from.
type TrustInput struct {
	AgentID   string
	CreatedAt time.Time
	// AllowedCalls is the running total of the agent's allowed calls;
	// Denials and Anomalies count those within the window.
	AllowedCalls, Denials, Anomalies int64
	Now                              time.Time
}

// FoldRules are what Fold applies: detection and the trust formula
// (given by the caller), the window of trust, and the anomaly types that
// suspend their agent.
type FoldRules struct {
	Detect func(AgentTotals) []Finding
	// Score returns the score, level and factors of an agent's trust.
	Score func(TrustInput) (int, string, domain.TrustFactors)
	// Window is how long denials (counted by the hour) and anomalies
	// count against trust.
	Window    time.Duration
	SuspendOn []string
}

// FoldResult is what a fold did to one agent.
type FoldResult struct {
	AgentID string
	// Anomalies are those this fold stored (new).
	Anomalies []domain.Anomaly
	// Trust is the agent's trust now; LevelBefore its level before, which
	// differs when the level changed.
	Trust       domain.TrustRecord
	LevelBefore string
	// Suspended: this fold suspended the agent.
	Suspended bool
}

// Changed reports whether the fold changed what the policy sees of the
// agent (its level or its status): then replicas reload it.
func (r FoldResult) Changed() bool { return r.Suspended || r.Trust.Level != r.LevelBefore }

// foldChunk bounds the agents folded in one transaction.
const foldChunk = 100

// Fold adds each agent's activity to its hourly counters, stores the
// findings of detection over the totals (once per agent, type and window,
// each with its audit event anomaly.detected), suspends the agent when a
// new anomaly's type is in SuspendOn, and recomputes its trust; a change
// of level is audited (agent.trust). What changes the agent for the policy
// (suspension, level) is recorded in the change feed in the same
// transaction. Agents that do not exist are skipped. Agents are folded in
// ID order, a transaction per chunk of them, so that replicas folding at
// once take their locks in one order.
func (s *Store) Fold(ctx context.Context, acts []AgentActivity, r FoldRules) ([]FoldResult, error) {
	acts = slices.Clone(acts)
	slices.SortFunc(acts, func(a, b AgentActivity) int { return strings.Compare(a.AgentID, b.AgentID) })
	var out []FoldResult
	for len(acts) > 0 {
		n := min(len(acts), foldChunk)
		var res []FoldResult
		err := s.withTx(ctx, func(tx *txn) error {
			var err error
			res, err = s.foldChunk(ctx, tx, acts[:n], r)
			return err
		})
		if err != nil {
			return out, err
		}
		out = append(out, res...)
		acts = acts[n:]
	}
	return out, nil
}

func (s *Store) foldChunk(ctx context.Context, tx *txn, acts []AgentActivity, r FoldRules) ([]FoldResult, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	var out []FoldResult
	for _, a := range acts {
		res, ok, err := s.foldAgent(ctx, tx, a, r, now)
		if err != nil {
			return nil, fmt.Errorf("fold %s: %w", a.AgentID, err)
		}
		if ok {
			out = append(out, res)
		}
	}
	// The change feed's lock comes last, after every agent row this
	// transaction locks, as in every other write of agents.
	for _, res := range out {
		if res.Changed() {
			if err := s.recordChange(ctx, tx, ChangeAgent, res.AgentID); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// foldAgent folds one agent; ok is false when it does not exist.
func (s *Store) foldAgent(ctx context.Context, tx *txn, a AgentActivity, r FoldRules, now time.Time) (FoldResult, bool, error) {
	res := FoldResult{AgentID: a.AgentID}
	// Lock the agent first: detectors of other replicas folding it, and
	// writes of it, take turns.
	var created int64
	var owner, status string
	var suspended sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT created_at, owner_id, status, suspended_at FROM agents WHERE id = ?`+s.dialect.lockRow(),
		a.AgentID).Scan(&created, &owner, &status, &suspended)
	if errors.Is(err, sql.ErrNoRows) {
		return res, false, nil
	}
	if err != nil {
		return res, false, fmt.Errorf("read agent: %w", err)
	}
	totals := AgentTotals{AgentID: a.AgentID, CreatedAt: fromMillis(created)}
	for _, h := range a.Hours {
		t, err := s.addHour(ctx, tx, a.AgentID, h)
		if err != nil {
			return res, false, err
		}
		totals.Hours = append(totals.Hours, t)
	}
	findings := a.Findings
	if r.Detect != nil && len(totals.Hours) > 0 {
		findings = append(slices.Clip(findings), r.Detect(totals)...)
	}
	for _, f := range findings {
		an, ok, err := s.insertAnomaly(ctx, tx, a.AgentID, owner, f, now)
		if err != nil {
			return res, false, err
		}
		if ok {
			res.Anomalies = append(res.Anomalies, an)
		}
	}
	if status == domain.StatusActive && !suspended.Valid {
		for _, an := range res.Anomalies {
			if slices.Contains(r.SuspendOn, an.Type) {
				if err := s.suspend(ctx, tx, a.AgentID, owner, an, now); err != nil {
					return res, false, err
				}
				res.Suspended = true
				break
			}
		}
	}
	var allowed int64
	for _, h := range a.Hours {
		allowed += h.Allowed
	}
	if res.Trust, res.LevelBefore, err = s.scoreAgent(ctx, tx, a.AgentID, owner, totals.CreatedAt, allowed, r, now); err != nil {
		return res, false, err
	}
	return res, true, nil
}

// addHour adds one hour's activity to the agent's counters and returns
// their totals.
func (s *Store) addHour(ctx context.Context, tx *txn, agentID string, h HourActivity) (HourTotals, error) {
	hour := toMillis(h.Hour)
	t := HourTotals{Hour: fromMillis(hour)}
	err := tx.QueryRowContext(ctx, `INSERT INTO anomaly_counters (agent_id, hour, calls, denials) VALUES (?, ?, ?, ?)
		ON CONFLICT (agent_id, hour) DO UPDATE SET calls = anomaly_counters.calls + excluded.calls,
		denials = anomaly_counters.denials + excluded.denials
		RETURNING calls, denials`, agentID, hour, h.Calls, h.Denials).Scan(&t.Calls, &t.Denials)
	if err != nil {
		return t, fmt.Errorf("count calls: %w", err)
	}
	if len(h.Probes) == 0 {
		return t, nil
	}
	for _, p := range h.Probes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO anomaly_probes (agent_id, hour, resource, audit_id) VALUES (?, ?, ?, ?)
			ON CONFLICT (agent_id, hour, resource) DO NOTHING`, agentID, hour, p.Resource, p.AuditID); err != nil {
			return t, fmt.Errorf("record probe: %w", err)
		}
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM anomaly_probes WHERE agent_id = ? AND hour = ?`,
		agentID, hour).Scan(&t.Probed); err != nil {
		return t, fmt.Errorf("count probes: %w", err)
	}
	return t, nil
}

// insertAnomaly stores f unless its agent, type and window have one
// already (ok false), with its audit event.
func (s *Store) insertAnomaly(ctx context.Context, tx *txn, agentID, owner string, f Finding, now time.Time) (domain.Anomaly, bool, error) {
	window := toMillis(f.Window)
	var existing string
	err := tx.QueryRowContext(ctx, `SELECT id FROM anomalies WHERE agent_id = ? AND type = ? AND window_start = ?`,
		agentID, f.Type, window).Scan(&existing)
	if err == nil {
		return domain.Anomaly{}, false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return domain.Anomaly{}, false, fmt.Errorf("read anomaly: %w", err)
	}
	ids, err := s.evidenceIDs(ctx, tx, agentID, f)
	if err != nil {
		return domain.Anomaly{}, false, err
	}
	evidence := map[string]any{"auditIds": ids}
	for k, v := range f.Counts {
		evidence[k] = v
	}
	raw, err := json.Marshal(evidence)
	if err != nil {
		return domain.Anomaly{}, false, fmt.Errorf("encode evidence: %w", err)
	}
	an := domain.Anomaly{ID: s.ids.next("anm_", now), AgentID: agentID, Type: f.Type, Severity: f.Severity,
		Window: fromMillis(window), DetectedAt: now, Description: f.Description, Evidence: raw}
	var id string
	err = tx.QueryRowContext(ctx, `INSERT INTO anomalies (id, agent_id, type, severity, window_start, detected_at, description, evidence)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent_id, type, window_start) DO NOTHING RETURNING id`,
		an.ID, an.AgentID, an.Type, an.Severity, window, toMillis(now), an.Description, string(raw)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Anomaly{}, false, nil // another replica stored it first
	}
	if err != nil {
		return domain.Anomaly{}, false, fmt.Errorf("insert anomaly: %w", err)
	}
	err = s.insertEvent(ctx, tx, Event{Action: "anomaly.detected", Target: an.ID, AgentID: agentID, OwnerID: owner,
		Reason: an.Description, Changes: map[string]any{"after": map[string]any{"type": an.Type, "severity": an.Severity,
			"window": api.NewTime(an.Window), "evidence": json.RawMessage(raw)}}})
	return an, err == nil, err
}

// evidenceIDs are the audit IDs behind a finding, at most MaxEvidenceIDs,
// newest first.
func (s *Store) evidenceIDs(ctx context.Context, tx *txn, agentID string, f Finding) ([]string, error) {
	var q string
	var args []any
	hour := f.Hour.Truncate(time.Hour)
	switch f.Source {
	case EvidenceGiven:
		ids := f.AuditIDs
		if len(ids) > MaxEvidenceIDs {
			ids = ids[len(ids)-MaxEvidenceIDs:]
		}
		out := slices.Clone(ids)
		slices.Reverse(out)
		if out == nil {
			out = []string{}
		}
		return out, nil
	case EvidenceProbes:
		q, args = `SELECT audit_id FROM anomaly_probes WHERE agent_id = ? AND hour = ? ORDER BY audit_id DESC LIMIT ?`,
			[]any{agentID, toMillis(hour), MaxEvidenceIDs}
	default:
		// Audit IDs begin with their row's millisecond: the ID bound keeps
		// the scan of the agent's index within the hour.
		denied := ""
		if f.Source == EvidenceDenials {
			denied = " AND result = 'denied'"
		}
		q = `SELECT id FROM audit_log WHERE agent_id = ? AND kind = 'decision' AND id >= ? AND created_at >= ? AND created_at < ?` +
			denied + ` ORDER BY id DESC LIMIT ?`
		args = []any{agentID, idFloor("aud_", hour), toMillis(hour), toMillis(hour.Add(time.Hour)), MaxEvidenceIDs}
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read evidence: %w", err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read evidence: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// idFloor is the smallest ID next can make with prefix at t or later.
func idFloor(prefix string, t time.Time) string {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(t.UnixMilli())<<16) //nolint:gosec // G115: a time after 1970
	return prefix + encodeBase32(raw)
}

// suspend suspends an active agent on an anomaly, with its audit event
// (the sidecar's own act: actor system).
func (s *Store) suspend(ctx context.Context, tx *txn, agentID, owner string, an domain.Anomaly, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE agents SET suspended_at = ?, updated_at = ? WHERE id = ?`,
		toMillis(now), toMillis(now), agentID); err != nil {
		return fmt.Errorf("suspend agent: %w", err)
	}
	return s.insertEvent(ctx, tx, Event{Action: "agent.suspend", Target: agentID, AgentID: agentID, OwnerID: owner,
		Reason: fmt.Sprintf("suspended on anomaly %s (%s): %s", an.ID, an.Type, an.Description),
		Changes: map[string]any{"before": map[string]any{"status": domain.StatusActive},
			"after": map[string]any{"status": domain.StatusSuspended, "anomalyId": an.ID}}})
}

// scoreAgent adds allowed to the agent's running total, recomputes its
// trust and stores it; a change of level is audited. It returns the trust
// and the level before.
func (s *Store) scoreAgent(ctx context.Context, tx *txn, agentID, owner string, created time.Time, allowed int64,
	r FoldRules, now time.Time) (domain.TrustRecord, string, error) {
	initial := s.thresholds.Level(domain.InitialTrustScore)
	in := TrustInput{AgentID: agentID, CreatedAt: created, Now: now}
	var before string
	var beforeScore int
	err := tx.QueryRowContext(ctx, `INSERT INTO agent_trust (agent_id, score, level, factors, computed_at, allowed_calls, level_score, level_at)
		VALUES (?, ?, ?, '{}', ?, ?, ?, ?)
		ON CONFLICT (agent_id) DO UPDATE SET allowed_calls = agent_trust.allowed_calls + excluded.allowed_calls
		RETURNING allowed_calls, level, level_score`,
		agentID, domain.InitialTrustScore, initial, toMillis(now), allowed, domain.InitialTrustScore, toMillis(created)).
		Scan(&in.AllowedCalls, &before, &beforeScore)
	if err != nil {
		return domain.TrustRecord{}, "", fmt.Errorf("count allowed calls: %w", err)
	}
	since := now.Add(-r.Window)
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(denials), 0) FROM anomaly_counters WHERE agent_id = ? AND hour >= ?`,
		agentID, toMillis(since.Truncate(time.Hour))).Scan(&in.Denials); err != nil {
		return domain.TrustRecord{}, "", fmt.Errorf("count denials: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM anomalies WHERE agent_id = ? AND detected_at >= ?`,
		agentID, toMillis(since)).Scan(&in.Anomalies); err != nil {
		return domain.TrustRecord{}, "", fmt.Errorf("count anomalies: %w", err)
	}
	score, level, factors := r.Score(in)
	rec := domain.TrustRecord{AgentID: agentID, Score: score, Level: level, Factors: factors, ComputedAt: now}
	raw, err := json.Marshal(factors)
	if err != nil {
		return rec, before, fmt.Errorf("encode trust factors: %w", err)
	}
	if level == before {
		_, err = tx.ExecContext(ctx, `UPDATE agent_trust SET score = ?, factors = ?, computed_at = ? WHERE agent_id = ?`,
			score, string(raw), toMillis(now), agentID)
		if err != nil {
			return rec, before, fmt.Errorf("store trust: %w", err)
		}
		return rec, before, nil
	}
	_, err = tx.ExecContext(ctx, `UPDATE agent_trust SET score = ?, level = ?, factors = ?, computed_at = ?, level_score = ?, level_at = ?
		WHERE agent_id = ?`, score, level, string(raw), toMillis(now), score, toMillis(now), agentID)
	if err != nil {
		return rec, before, fmt.Errorf("store trust: %w", err)
	}
	err = s.insertEvent(ctx, tx, Event{Action: "agent.trust", Target: agentID, AgentID: agentID, OwnerID: owner,
		Reason: fmt.Sprintf("trust level %s → %s (score %d → %d)", before, level, beforeScore, score),
		Changes: map[string]any{"before": map[string]any{"level": before, "score": beforeScore},
			"after": map[string]any{"level": level, "score": score, "factors": factors}}})
	return rec, before, err
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
