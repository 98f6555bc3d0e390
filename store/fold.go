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
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
)

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

// AgentActivity is one agent's activity to fold: its hours (each hour
// once), and findings known without counters (off_hours). An agent with
// neither only has its trust recomputed.
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
	// Probed counts the distinct resources denied no_permission (0 when
	// the fold brought no probe).
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

// AnomalyKey names the one anomaly an agent may have of a type in a
// window.
type AnomalyKey struct {
	Type   string
	Window time.Time
}

// FoldResult is what a fold did to one agent.
type FoldResult struct {
	AgentID string
	// Anomalies are those this fold stored (new); Stored names every
	// finding of the fold that is stored now, new or not (detection need
	// not propose it again).
	Anomalies []domain.Anomaly
	Stored    []AnomalyKey
	// Trust is the agent's trust now; LevelBefore its level before, which
	// differs when the level changed. Trust.Factors is set when the fold
	// recomputed the score.
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

// TrustRefresh is how old an active agent's computed trust may get before
// a fold recomputes it even though nothing that scores moved (its
// denials leaving the window, its age growing).
const TrustRefresh = time.Minute

// Fold adds each agent's activity to its hourly counters, stores the
// findings of detection over the totals (once per agent, type and window,
// each with its audit event anomaly.detected), suspends the agent when a
// new anomaly's type is in SuspendOn, and recomputes its trust when
// something that scores moved; a change of level is audited (agent.trust).
// What changes the agent for the policy (suspension, level) is recorded
// in the change feed in the same transaction. Agents that do not exist
// are skipped. A chunk of agents is one transaction of a few statements
// whatever its size (rows of every agent in one statement), its agents
// locked first in ID order, so that replicas folding at once take turns.
// acts name each agent once (merge an agent's activity first: a repeated
// agent's later activity is ignored). On an error, the results of the
// chunks committed before are returned.
func (s *Store) Fold(ctx context.Context, acts []AgentActivity, r FoldRules) ([]FoldResult, error) {
	acts = slices.Clone(acts)
	slices.SortFunc(acts, func(a, b AgentActivity) int { return strings.Compare(a.AgentID, b.AgentID) })
	acts = slices.CompactFunc(acts, func(a, b AgentActivity) bool { return a.AgentID == b.AgentID })
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

// foldAgent is one agent of a chunk being folded.
type foldAgent struct {
	act     AgentActivity
	owner   string
	created time.Time
	suspend bool // active and not suspended: a suspendOn anomaly suspends it
	totals  AgentTotals
	res     FoldResult
	allowed int64 // allowed calls this fold
	denied  bool  // denials this fold
	total   int64 // allowed calls in all, this fold's included
}

func (s *Store) foldChunk(ctx context.Context, tx *txn, acts []AgentActivity, r FoldRules) ([]FoldResult, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	agents, err := s.lockFolded(ctx, tx, acts)
	if err != nil || len(agents) == 0 {
		return nil, err
	}
	if err := s.addCounters(ctx, tx, agents); err != nil {
		return nil, err
	}
	for _, a := range agents {
		findings := a.act.Findings
		if r.Detect != nil && len(a.totals.Hours) > 0 {
			findings = append(slices.Clip(findings), r.Detect(a.totals)...)
		}
		for _, f := range findings {
			an, isNew, err := s.insertAnomaly(ctx, tx, a.act.AgentID, a.owner, f, now)
			if err != nil {
				return nil, fmt.Errorf("fold %s: %w", a.act.AgentID, err)
			}
			a.res.Stored = append(a.res.Stored, AnomalyKey{Type: f.Type, Window: f.Window.UTC()})
			if isNew {
				a.res.Anomalies = append(a.res.Anomalies, an)
			}
		}
		if !a.suspend {
			continue
		}
		for _, an := range a.res.Anomalies {
			if slices.Contains(r.SuspendOn, an.Type) {
				if err := s.suspend(ctx, tx, a.act.AgentID, a.owner, an, now); err != nil {
					return nil, err
				}
				a.res.Suspended = true
				break
			}
		}
	}
	if err := s.scoreFolded(ctx, tx, agents, r, now); err != nil {
		return nil, err
	}
	out := make([]FoldResult, len(agents))
	for i, a := range agents {
		out[i] = a.res
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

// placeholders is n groups of cols "?": "(?, ?), (?, ?)".
func placeholders(n, cols int) string {
	group := "(?" + strings.Repeat(", ?", cols-1) + ")"
	return group + strings.Repeat(", "+group, n-1)
}

// lockFolded reads (and, where rows lock, locks, in ID order) the agents
// of acts that exist.
func (s *Store) lockFolded(ctx context.Context, tx *txn, acts []AgentActivity) ([]*foldAgent, error) {
	byID := make(map[string]AgentActivity, len(acts))
	args := make([]any, len(acts))
	for i, a := range acts {
		byID[a.AgentID] = a
		args[i] = a.AgentID
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, created_at, owner_id, status, suspended_at FROM agents
		WHERE id IN (?`+strings.Repeat(", ?", len(acts)-1)+`) ORDER BY id`+s.dialect.lockRow(), args...)
	if err != nil {
		return nil, fmt.Errorf("read agents: %w", err)
	}
	defer rows.Close()
	var out []*foldAgent
	for rows.Next() {
		var id, owner, status string
		var created int64
		var suspended sql.NullInt64
		if err := rows.Scan(&id, &created, &owner, &status, &suspended); err != nil {
			return nil, fmt.Errorf("read agents: %w", err)
		}
		a := &foldAgent{act: byID[id], owner: owner, created: fromMillis(created),
			suspend: status == domain.StatusActive && !suspended.Valid}
		a.totals = AgentTotals{AgentID: id, CreatedAt: a.created}
		a.res = FoldResult{AgentID: id}
		for _, h := range a.act.Hours {
			a.allowed += h.Allowed
			a.denied = a.denied || h.Denials > 0
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// addCounters adds every agent's hours to their counters in one statement,
// reading the totals back, and records the probes.
func (s *Store) addCounters(ctx context.Context, tx *txn, agents []*foldAgent) error {
	type hourKey struct {
		agent string
		hour  int64
	}
	var args []any
	index := map[hourKey][2]int{}
	for ai, a := range agents {
		for hi, h := range a.act.Hours {
			hour := toMillis(h.Hour)
			index[hourKey{a.act.AgentID, hour}] = [2]int{ai, hi}
			args = append(args, a.act.AgentID, hour, h.Calls, h.Denials)
			a.totals.Hours = append(a.totals.Hours, HourTotals{Hour: fromMillis(hour)})
		}
	}
	if len(args) == 0 {
		return nil
	}
	rows, err := s.upsertRows(ctx, tx, s.dialect.upsert(`INSERT INTO anomaly_counters (agent_id, hour, calls, denials) VALUES `+
		placeholders(len(args)/4, 4), "agent_id, hour", `calls = anomaly_counters.calls + excluded.calls,
		denials = anomaly_counters.denials + excluded.denials`), `agent_id, hour, calls, denials`,
		func() (string, []any) {
			keys := make([]any, 0, len(args)/2)
			for i := 0; i < len(args); i += 4 {
				keys = append(keys, args[i], args[i+1])
			}
			return `SELECT agent_id, hour, calls, denials FROM anomaly_counters WHERE (agent_id, hour) IN (` +
				placeholders(len(keys)/2, 2) + `)`, keys
		}, args...)
	if err != nil {
		return fmt.Errorf("count calls: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k hourKey
		var calls, denials int64
		if err := rows.Scan(&k.agent, &k.hour, &calls, &denials); err != nil {
			return fmt.Errorf("count calls: %w", err)
		}
		i := index[k]
		t := &agents[i[0]].totals.Hours[i[1]]
		t.Calls, t.Denials = calls, denials
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("count calls: %w", err)
	}
	for _, a := range agents {
		for hi, h := range a.act.Hours {
			if len(h.Probes) == 0 {
				continue
			}
			n, err := s.addProbes(ctx, tx, a.act.AgentID, toMillis(h.Hour), h.Probes)
			if err != nil {
				return err
			}
			a.totals.Hours[hi].Probed = n
		}
	}
	return nil
}

// addProbes records an hour's probed resources and counts them.
func (s *Store) addProbes(ctx context.Context, tx *txn, agentID string, hour int64, probes []Probe) (int64, error) {
	args := make([]any, 0, 4*len(probes))
	for _, p := range probes {
		args = append(args, agentID, hour, p.Resource, p.AuditID)
	}
	if _, err := tx.ExecContext(ctx, s.dialect.upsert(`INSERT INTO anomaly_probes (agent_id, hour, resource, audit_id) VALUES `+
		placeholders(len(probes), 4), "agent_id, hour, resource", ""), args...); err != nil {
		return 0, fmt.Errorf("record probes: %w", err)
	}
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM anomaly_probes WHERE agent_id = ? AND hour = ?`,
		agentID, hour).Scan(&n); err != nil {
		return 0, fmt.Errorf("count probes: %w", err)
	}
	return n, nil
}

// insertAnomaly stores f unless its agent, type and window have one
// already (isNew false), with its audit event.
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
	res, err := tx.ExecContext(ctx, s.dialect.upsert(`INSERT INTO anomalies (id, agent_id, type, severity, window_start, detected_at, description, evidence)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, "agent_id, type, window_start", ""),
		an.ID, an.AgentID, an.Type, an.Severity, window, toMillis(now), an.Description, string(raw))
	if err != nil {
		return domain.Anomaly{}, false, fmt.Errorf("insert anomaly: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return domain.Anomaly{}, false, fmt.Errorf("insert anomaly: %w", err)
	} else if n == 0 {
		return domain.Anomaly{}, false, nil // another replica stored it first
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
		q, args = s.auditQuery("id", ` WHERE agent_id = ? AND kind = 'decision' AND id >= ? AND created_at >= ? AND created_at < ?`+denied,
			[]any{agentID, idFloor("aud_", hour), toMillis(hour), toMillis(hour.Add(time.Hour))}, true, "DESC", MaxEvidenceIDs)
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

// scoreFolded adds each agent's allowed calls to its running total (one
// statement) and recomputes the trust of those whose score may have moved:
// a denial or a new anomaly, a hundredth allowed call, a trust never
// computed or older than TrustRefresh (a fold with no activity, the stale
// sweep's, always recomputes). A change of level is audited.
func (s *Store) scoreFolded(ctx context.Context, tx *txn, agents []*foldAgent, r FoldRules, now time.Time) error {
	initial := s.thresholds.Level(domain.InitialTrustScore)
	args := make([]any, 0, 8*len(agents))
	byID := make(map[string]*foldAgent, len(agents))
	for _, a := range agents {
		byID[a.act.AgentID] = a
		// A new row's computed_at 0 makes it stale: it is scored at once.
		args = append(args, a.act.AgentID, domain.InitialTrustScore, initial, "{}", 0, a.allowed, domain.InitialTrustScore, toMillis(a.created))
	}
	rows, err := s.upsertRows(ctx, tx, s.dialect.upsert(trustInsert+placeholders(len(agents), 8),
		"agent_id", `allowed_calls = agent_trust.allowed_calls + excluded.allowed_calls`),
		`agent_id, allowed_calls, score, level, computed_at`,
		func() (string, []any) {
			ids := make([]any, len(agents))
			for i, a := range agents {
				ids[i] = a.act.AgentID
			}
			return `SELECT agent_id, allowed_calls, score, level, computed_at FROM agent_trust WHERE agent_id IN ` +
				placeholders(1, len(ids)), ids
		}, args...)
	if err != nil {
		return fmt.Errorf("count allowed calls: %w", err)
	}
	defer rows.Close()
	var stale []*foldAgent
	for rows.Next() {
		var id, level string
		var allowed, computed int64
		var score int
		if err := rows.Scan(&id, &allowed, &score, &level, &computed); err != nil {
			return fmt.Errorf("count allowed calls: %w", err)
		}
		a := byID[id]
		a.total = allowed
		a.res.Trust = domain.TrustRecord{AgentID: id, Score: score, Level: level, ComputedAt: fromMillis(computed)}
		a.res.LevelBefore = level
		moved := a.denied || len(a.res.Anomalies) > 0 || allowed/100 != (allowed-a.allowed)/100 || len(a.act.Hours) == 0 ||
			now.Sub(fromMillis(computed)) >= TrustRefresh
		if moved {
			stale = append(stale, a)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("count allowed calls: %w", err)
	}
	if len(stale) == 0 {
		return nil
	}
	denials, anomalies, err := s.windowCounts(ctx, tx, stale, now.Add(-r.Window))
	if err != nil {
		return err
	}
	args = args[:0]
	for _, a := range stale {
		id := a.act.AgentID
		score, level, factors := r.Score(TrustInput{AgentID: id, CreatedAt: a.created, AllowedCalls: a.total,
			Denials: denials[id], Anomalies: anomalies[id], Now: now})
		raw, err := json.Marshal(factors)
		if err != nil {
			return fmt.Errorf("encode trust factors: %w", err)
		}
		before, beforeScore := a.res.LevelBefore, a.res.Trust.Score
		a.res.Trust = domain.TrustRecord{AgentID: id, Score: score, Level: level, Factors: factors, ComputedAt: now}
		args = append(args, id, score, level, string(raw), toMillis(now), 0, score, toMillis(now))
		if level == before {
			continue
		}
		if err := s.insertEvent(ctx, tx, Event{Action: "agent.trust", Target: id, AgentID: id, OwnerID: a.owner,
			Reason: fmt.Sprintf("trust level %s → %s (score %d → %d)", before, level, beforeScore, score),
			Changes: map[string]any{"before": map[string]any{"level": before, "score": beforeScore},
				"after": map[string]any{"level": level, "score": score, "factors": factors}}}); err != nil {
			return err
		}
	}
	// Every recomputed row at once: the rows exist (above), so this only
	// updates; the policy's view (level_score, level_at) moves with the
	// level only.
	_, err = tx.ExecContext(ctx, s.dialect.upsert(trustInsert+placeholders(len(stale), 8), "agent_id", `score = excluded.score, factors = excluded.factors,
		computed_at = excluded.computed_at,
		level_score = CASE WHEN agent_trust.level = excluded.level THEN agent_trust.level_score ELSE excluded.level_score END,
		level_at = CASE WHEN agent_trust.level = excluded.level THEN agent_trust.level_at ELSE excluded.level_at END,
		level = excluded.level`), args...)
	if err != nil {
		return fmt.Errorf("store trust: %w", err)
	}
	return nil
}

// trustInsert is the start of an INSERT of agent_trust rows.
const trustInsert = `INSERT INTO agent_trust (agent_id, score, level, factors, computed_at, allowed_calls, level_score, level_at) VALUES `

// windowCounts are the agents' denials (by the hour) and anomalies since
// the given time.
func (s *Store) windowCounts(ctx context.Context, tx *txn, agents []*foldAgent, since time.Time) (map[string]int64, map[string]int64, error) {
	ids := make([]any, len(agents))
	for i, a := range agents {
		ids[i] = a.act.AgentID
	}
	in := `(?` + strings.Repeat(", ?", len(ids)-1) + `)`
	count := func(q, column string, from int64) (map[string]int64, error) {
		rows, err := tx.QueryContext(ctx, q+` WHERE agent_id IN `+in+` AND `+column+` >= ? GROUP BY agent_id`, append(ids, from)...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[string]int64{}
		for rows.Next() {
			var id string
			var n int64
			if err := rows.Scan(&id, &n); err != nil {
				return nil, err
			}
			out[id] = n
		}
		return out, rows.Err()
	}
	denials, err := count(`SELECT agent_id, SUM(denials) FROM anomaly_counters`, "hour", toMillis(since.Truncate(time.Hour)))
	if err != nil {
		return nil, nil, fmt.Errorf("count denials: %w", err)
	}
	anomalies, err := count(`SELECT agent_id, COUNT(*) FROM anomalies`, "detected_at", toMillis(since))
	if err != nil {
		return nil, nil, fmt.Errorf("count anomalies: %w", err)
	}
	return denials, anomalies, nil
}
