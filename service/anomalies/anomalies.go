// Package anomalies watches the audit stream for anomalies (high_frequency,
// high_denial_rate, off_hours, probing), scores each agent's trust
// (KavachOS's formula over a window), suspends agents on the anomaly types
// configured, and reads both back for the API. It works in the background,
// a fold every quarter second of the decision rows the audit writer handed
// over after their commit: never a query per decision.
package anomalies

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/store"
)

// Store is what detection and trust read and write.
type Store interface {
	DrainDecisions(dst []store.CommittedDecision) ([]store.CommittedDecision, uint64)
	Fold(ctx context.Context, acts []store.AgentActivity, r store.FoldRules) ([]store.FoldResult, error)
	ListAnomalies(ctx context.Context, f store.AnomalyFilter, p store.Page) ([]domain.Anomaly, string, error)
	GetTrust(ctx context.Context, agentID string) (domain.TrustRecord, bool, error)
	GetAgent(ctx context.Context, id string) (domain.Agent, error)
	StaleTrust(ctx context.Context, before time.Time, limit int) ([]string, error)
	TrustLevels(ctx context.Context) (map[string]int, error)
	PruneAnomalyCounters(ctx context.Context, before time.Time) (int64, error)
}

// Options are the anomaly and trust sections of the configuration; zero
// values take config's defaults (500 calls, 50%, 10 calls, 5 resources,
// KavachOS's thresholds, 7 days).
type Options struct {
	// Enabled runs detection and trust scoring; off, Run only counts
	// agents by level.
	Enabled bool
	// HighFrequency is the calls per agent per hour above which it is
	// flagged; DenialRate the percentage of denied calls at or above
	// which it is, once it made MinCalls in the hour; Probing the
	// distinct resources denied no_permission in an hour at which it is.
	HighFrequency, DenialRate, MinCalls, Probing int
	// ExpectedHours is [start, end) in Location, nil for none.
	ExpectedHours *[2]int
	Location      *time.Location
	// SuspendOn are the types that suspend the agent.
	SuspendOn []string
	// Thresholds give a score its level.
	Thresholds domain.TrustThresholds
	// Window is how long denials and anomalies count against trust.
	Window time.Duration
	// Interval is how often the audit stream is folded (default
	// DefaultInterval).
	Interval time.Duration
}

// Defaults.
const (
	// DefaultInterval is how often detection folds the audit stream: an
	// anomaly is flagged well within 2 s of the call that crosses a
	// threshold.
	DefaultInterval = 250 * time.Millisecond
	// tallyInterval is how often agents are counted by trust level.
	tallyInterval = 30 * time.Second
	// staleAfter is how old an agent's trust may get before the sweep
	// recomputes it (its denials leaving the window, its age growing);
	// sweepEvery and sweepBatch pace the sweep.
	staleAfter = time.Hour
	sweepEvery = time.Minute
	sweepBatch = 100
	pruneEvery = 5 * time.Minute
	// tapSize bounds the decision rows waiting for a fold.
	tapSize = 1 << 16
	// maxPending bounds the agents whose activity is kept for another
	// try when a fold fails.
	maxPending = 10_000
)

// TapSize is the decision tap the store needs (store.Options.DecisionTap)
// for detection to see every row at up to 250 000 decisions a second.
const TapSize = tapSize

// Anomalies is safe for concurrent use.
type Anomalies struct {
	store Store
	rep   *replica.Replica
	opts  Options
	now   func() time.Time
	log   *slog.Logger

	// detected counts anomalies this replica stored, by type.
	detected map[string]*atomic.Uint64
	// levels is the last count of agents by trust level.
	levels atomic.Pointer[map[string]int]

	// Run's own: the drained rows' buffer, activity kept after a failed
	// fold, and the tap's drop count last logged.
	buf     []store.CommittedDecision
	pending []store.AgentActivity
	dropped uint64
	// known are the anomalies stored (by agent, type and window start),
	// which detection need not propose again.
	known map[knownKey]bool
	// probed are the resources this replica recorded as probed, by hour
	// (Unix ms) and agent.
	probed map[int64]map[string]map[string]bool
	mu     sync.Mutex
}

type knownKey struct {
	agent, typ string
	window     int64
}

// New returns detection and trust over st, syncing the engine through rep
// when an agent is suspended or changes level.
func New(st Store, rep *replica.Replica, opts Options, now func() time.Time, log *slog.Logger) *Anomalies {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Thresholds == (domain.TrustThresholds{}) {
		opts.Thresholds = domain.DefaultTrustThresholds
	}
	for _, d := range []struct {
		v   *int
		def int
	}{{&opts.HighFrequency, 500}, {&opts.DenialRate, 50}, {&opts.MinCalls, 10}, {&opts.Probing, 5}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if opts.Window <= 0 {
		opts.Window = 7 * 24 * time.Hour
	}
	s := &Anomalies{store: st, rep: rep, opts: opts, now: now, log: log, detected: map[string]*atomic.Uint64{}, known: map[knownKey]bool{},
		probed: map[int64]map[string]map[string]bool{}}
	for _, t := range domain.AnomalyTypes {
		s.detected[t] = &atomic.Uint64{}
	}
	return s
}

// Run folds the audit stream into counters, anomalies and trust every
// interval, sweeps stale trust, prunes old counters and counts agents by
// level, until ctx ends; then it folds what is left once more.
func (s *Anomalies) Run(ctx context.Context) {
	s.tally(ctx)
	tally := time.NewTicker(tallyInterval)
	defer tally.Stop()
	if !s.opts.Enabled {
		for {
			select {
			case <-ctx.Done():
				return
			case <-tally.C:
				s.tally(ctx)
			}
		}
	}
	fold := time.NewTicker(s.opts.Interval)
	defer fold.Stop()
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			// The rows committed until now are not lost to a restart.
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			s.Fold(final)
			cancel()
			return
		case <-fold.C:
			s.Fold(ctx)
		case <-sweep.C:
			s.sweep(ctx)
		case <-prune.C:
			s.prune(ctx)
		case <-tally.C:
			s.tally(ctx)
		}
	}
}

// Fold folds the decision rows committed since the last fold. Run calls
// it every interval.
func (s *Anomalies) Fold(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows, dropped := s.store.DrainDecisions(s.buf)
	if dropped > s.dropped {
		s.log.Warn("anomaly detection fell behind: decision rows were not counted", "rows", dropped-s.dropped)
		s.dropped = dropped
	}
	acts := merge(s.pending, s.activity(rows))
	for i := range acts {
		acts[i].Findings = s.unknown(acts[i].AgentID, acts[i].Findings)
	}
	s.buf = rows[:0]
	s.pending = nil
	s.apply(ctx, acts)
}

// apply folds acts and acts on the results; what a failure leaves is kept
// for the next fold.
func (s *Anomalies) apply(ctx context.Context, acts []store.AgentActivity) {
	if len(acts) == 0 {
		return
	}
	start := time.Now()
	res, err := s.store.Fold(ctx, acts, s.rules())
	s.log.Debug("anomaly fold", "agents", len(acts), "duration", time.Since(start).String())
	if err != nil && ctx.Err() == nil {
		s.log.Error("anomaly detection could not fold the audit stream; retrying", "error", err)
	}
	done := map[string]bool{}
	var changed []string
	for _, r := range res {
		done[r.AgentID] = true
		for _, k := range r.Stored {
			s.known[knownKey{r.AgentID, k.Type, k.Window.UnixMilli()}] = true
		}
		for _, a := range r.Anomalies {
			s.detected[a.Type].Add(1)
			s.log.Info("anomaly detected", "anomaly", a.ID, "agent", a.AgentID, "type", a.Type, "severity", a.Severity,
				"description", a.Description)
		}
		if r.Suspended {
			s.log.Warn("agent suspended on an anomaly", "agent", r.AgentID, "anomaly", r.Anomalies[0].ID)
		}
		if r.Trust.Level != r.LevelBefore {
			s.log.Info("agent trust level changed", "agent", r.AgentID, "before", r.LevelBefore, "after", r.Trust.Level,
				"score", r.Trust.Score)
		}
		if r.Changed() {
			changed = append(changed, r.AgentID)
		}
	}
	if err != nil {
		for _, a := range acts {
			if !done[a.AgentID] && len(s.pending) < maxPending {
				s.pending = append(s.pending, a)
			}
		}
	}
	if len(changed) > 0 {
		s.sync(ctx, changed)
	}
}

// sync brings the agents this replica changed into its engine at once
// (other replicas follow the change feed).
func (s *Anomalies) sync(ctx context.Context, ids []string) {
	err := s.rep.Update(ctx, func() (engine.Changes, error) {
		var c engine.Changes
		for _, id := range ids {
			a, err := s.store.GetAgent(ctx, id)
			if err != nil {
				return c, err
			}
			c.Agents = append(c.Agents, a)
		}
		return c, nil
	})
	if err != nil && ctx.Err() == nil {
		// The change feed brings them all the same.
		s.log.Warn("could not sync agents changed by anomaly detection; the change feed will", "error", err)
	}
}

// sweep recomputes the trust of agents not recomputed for staleAfter.
func (s *Anomalies) sweep(ctx context.Context) {
	ids, err := s.store.StaleTrust(ctx, s.now().Add(-staleAfter), sweepBatch)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("could not read stale trust scores", "error", err)
		}
		return
	}
	acts := make([]store.AgentActivity, len(ids))
	for i, id := range ids {
		acts[i] = store.AgentActivity{AgentID: id}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apply(ctx, acts)
}

// unknown are the findings of an agent not known to be stored already.
func (s *Anomalies) unknown(agent string, fs []store.Finding) []store.Finding {
	out := fs[:0]
	for _, f := range fs {
		if !s.known[knownKey{agent, f.Type, f.Window.UnixMilli()}] {
			out = append(out, f)
		}
	}
	return out
}

// prune deletes counters no trust window or detection needs any more, and
// forgets the anomalies of windows long past.
func (s *Anomalies) prune(ctx context.Context) {
	s.mu.Lock()
	old := s.now().Add(-48 * time.Hour).UnixMilli()
	for k := range s.known {
		if k.window < old {
			delete(s.known, k)
		}
	}
	s.mu.Unlock()
	before := s.now().Add(-s.opts.Window - 2*time.Hour)
	if _, err := s.store.PruneAnomalyCounters(ctx, before); err != nil && ctx.Err() == nil {
		s.log.Warn("pruning anomaly counters failed", "error", err)
	}
}

// tally counts agents by trust level, for /metrics.
func (s *Anomalies) tally(ctx context.Context) {
	levels, err := s.store.TrustLevels(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("could not count agents by trust level", "error", err)
		}
		return
	}
	s.levels.Store(&levels)
}

// Detected counts the anomalies this replica detected, by type.
func (s *Anomalies) Detected() map[string]uint64 {
	out := make(map[string]uint64, len(s.detected))
	for t, n := range s.detected {
		out[t] = n.Load()
	}
	return out
}

// AgentsByTrustLevel counts agents (not revoked) by trust level, every
// level present, as of the last count (every 30 s).
func (s *Anomalies) AgentsByTrustLevel() map[string]int {
	out := make(map[string]int, len(domain.TrustLevels))
	for _, l := range domain.TrustLevels {
		out[l] = 0
	}
	if p := s.levels.Load(); p != nil {
		maps.Copy(out, *p)
	}
	return out
}

// Query holds the raw parameters of GET /v1/anomalies.
type Query struct {
	AgentID, Type, Since string
	Page                 core.PageQuery
}

// ListAnomalies returns one page of anomalies, newest first.
func (s *Anomalies) ListAnomalies(ctx context.Context, q Query) (api.AnomalyList, error) {
	f := store.AnomalyFilter{AgentID: q.AgentID, Type: q.Type}
	if q.Type != "" && !slices.Contains(domain.AnomalyTypes, q.Type) {
		return api.AnomalyList{}, core.Invalid("invalid_parameter", "type %q is not one of high_frequency, high_denial_rate, off_hours, probing", q.Type)
	}
	if q.Since != "" {
		t, err := time.Parse(time.RFC3339Nano, q.Since)
		if err != nil {
			return api.AnomalyList{}, core.Invalid("invalid_parameter", "since must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		f.Since = t
	}
	p, err := q.Page.Page("anm_")
	if err != nil {
		return api.AnomalyList{}, err
	}
	list, next, err := s.store.ListAnomalies(ctx, f, p)
	if err != nil {
		return api.AnomalyList{}, err
	}
	out := api.AnomalyList{Anomalies: make([]api.Anomaly, len(list)), NextCursor: next}
	for i, a := range list {
		out.Anomalies[i] = api.Anomaly{ID: a.ID, AgentID: a.AgentID, Type: a.Type, Severity: a.Severity,
			DetectedAt: api.NewTime(a.DetectedAt), Description: a.Description, Evidence: a.Evidence}
	}
	return out, nil
}

// AgentTrust returns an agent's latest trust; an agent never scored has
// the initial score, as of its creation.
func (s *Anomalies) AgentTrust(ctx context.Context, id string) (api.Trust, error) {
	rec, ok, err := s.store.GetTrust(ctx, id)
	if err != nil {
		return api.Trust{}, core.StoreError(err)
	}
	if !ok {
		a, err := s.store.GetAgent(ctx, id)
		if err != nil {
			return api.Trust{}, core.StoreError(err)
		}
		rec = domain.TrustRecord{AgentID: id, Score: a.Trust.Score, Level: a.Trust.Level, ComputedAt: a.Trust.ComputedAt,
			Factors: domain.TrustFactors{Base: domain.InitialTrustScore}}
	}
	f := rec.Factors
	return api.Trust{AgentID: id, Score: rec.Score, Level: rec.Level, ComputedAt: api.NewTime(rec.ComputedAt),
		Factors: api.TrustFactors{Base: f.Base, AllowedCalls: f.AllowedCalls, AllowedBonus: f.AllowedBonus, Denials: f.Denials,
			DenialPenalty: f.DenialPenalty, Anomalies: f.Anomalies, AnomalyPenalty: f.AnomalyPenalty, AgeDays: f.AgeDays,
			AgeBonus: f.AgeBonus}}, nil
}

// rules are what a fold applies.
func (s *Anomalies) rules() store.FoldRules {
	detect := func(t store.AgentTotals) []store.Finding { return s.unknown(t.AgentID, s.detect(t)) }
	return store.FoldRules{Detect: detect, Window: s.opts.Window, SuspendOn: s.opts.SuspendOn,
		Score: func(in store.TrustInput) (int, string, domain.TrustFactors) {
			score, f := Score(in)
			return score, s.opts.Thresholds.Level(score), f
		}}
}

// Score is KavachOS's trust formula: 50, +1 per 100 allowed calls (at
// most +25), -5 per denial and -10 per anomaly (those in the window), +5
// once the agent is more than 7 days old or +10 once more than 30, clamped
// to 0-100. One change: the allowed-calls bonus grows by at most one a day
// of the agent's age, so trust is earned over time and cannot be farmed
// with a burst of cheap calls (2,500 of them took 1.5 s).
func Score(in store.TrustInput) (int, domain.TrustFactors) {
	f := domain.TrustFactors{Base: domain.InitialTrustScore, AllowedCalls: in.AllowedCalls, Denials: in.Denials, Anomalies: in.Anomalies}
	days := int64(max(in.Now.Sub(in.CreatedAt), 0) / (24 * time.Hour))
	f.AllowedBonus = int(min(25, in.AllowedCalls/100, days))
	// Past 100 denials or anomalies the score is 0 whatever else: the
	// caps only keep the arithmetic small.
	f.DenialPenalty = 5 * int(min(in.Denials, 1000))
	f.AnomalyPenalty = 10 * int(min(in.Anomalies, 1000))
	age := in.Now.Sub(in.CreatedAt)
	f.AgeDays = math.Round(age.Hours()/24*10) / 10
	switch {
	case age > 30*24*time.Hour:
		f.AgeBonus = 10
	case age > 7*24*time.Hour:
		f.AgeBonus = 5
	}
	score := f.Base + f.AllowedBonus - f.DenialPenalty - f.AnomalyPenalty + f.AgeBonus
	return max(0, min(100, score)), f
}

// detect judges an agent's hourly totals after a fold.
func (s *Anomalies) detect(t store.AgentTotals) []store.Finding {
	var out []store.Finding
	o := s.opts
	for _, h := range t.Hours {
		at := h.Hour.UTC().Format("15:04 MST")
		if h.Calls > int64(o.HighFrequency) {
			sev := domain.SeverityMedium
			if h.Calls >= 2*int64(o.HighFrequency) {
				sev = domain.SeverityHigh
			}
			out = append(out, store.Finding{Type: domain.AnomalyHighFrequency, Severity: sev, Window: h.Hour, Hour: h.Hour,
				Source:      store.EvidenceCalls,
				Description: fmt.Sprintf("%d calls in the hour from %s, over the threshold of %d", h.Calls, at, o.HighFrequency),
				Counts:      map[string]any{"calls": h.Calls, "threshold": o.HighFrequency}})
		}
		if h.Calls >= int64(o.MinCalls) && h.Denials*100 >= int64(o.DenialRate)*h.Calls {
			rate := int(h.Denials * 100 / h.Calls)
			sev := domain.SeverityMedium
			if rate >= 90 {
				sev = domain.SeverityHigh
			}
			out = append(out, store.Finding{Type: domain.AnomalyHighDenialRate, Severity: sev, Window: h.Hour, Hour: h.Hour,
				Source: store.EvidenceDenials,
				Description: fmt.Sprintf("%d of %d calls denied (%d%%) in the hour from %s, at or over the threshold of %d%%",
					h.Denials, h.Calls, rate, at, o.DenialRate),
				Counts: map[string]any{"calls": h.Calls, "denials": h.Denials, "ratePercent": rate, "thresholdPercent": o.DenialRate}})
		}
		if h.Probed >= int64(o.Probing) {
			out = append(out, store.Finding{Type: domain.AnomalyProbing, Severity: domain.SeverityHigh, Window: h.Hour, Hour: h.Hour,
				Source: store.EvidenceProbes,
				Description: fmt.Sprintf("denied no_permission on %d distinct resources in the hour from %s, at or over the threshold of %d",
					h.Probed, at, o.Probing),
				Counts: map[string]any{"resources": h.Probed, "threshold": o.Probing}})
		}
	}
	return out
}
