package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of anomaly detection's state: the decision tap, hourly
// counters that replicas add to, anomalies stored once per agent, type and
// window with their audit events, suspension and resumption, and trust:
// stored, read with every agent, a change of level fed to replicas.
func anomalyTests() []storeTest {
	return []storeTest{
		{name: "TapHandsOverCommittedDecisions", opens: testTapHandsOverCommittedDecisions},
		{name: "FoldCountsAndStoresEachAnomalyOnce", fn: testFoldCountsAndStoresEachAnomalyOnce},
		{name: "EvidenceNamesTheAuditRows", fn: testEvidenceNamesTheAuditRows},
		{name: "SuspendOnAndResume", fn: testSuspendOnAndResume},
		{name: "TrustLevelChangeReachesTheAgent", fn: testTrustLevelChangeReachesTheAgent},
		{name: "InitialTrustFollowsTheThresholds", opens: testInitialTrustFollowsTheThresholds},
		{name: "TrustIsRecomputedWhenItMayMove", fn: testTrustIsRecomputedWhenItMayMove},
		{name: "DenialsAndAnomaliesLeaveTheWindow", fn: testDenialsAndAnomaliesLeaveTheWindow},
		{name: "ListAnomaliesFiltersAndPages", fn: testListAnomaliesFiltersAndPages},
		{name: "UnknownAgentsAreSkippedAndCountersPruned", fn: testUnknownAgentsAreSkippedAndCountersPruned},
		{name: "ReplicasFoldIntoTheSameCounters", opens: testReplicasFoldIntoTheSameCounters, replicas: true},
	}
}

// hourly flags high_frequency above limit calls in an hour, with the
// calls as evidence, and scores trust as 50 - 10 per denial - 20 per
// anomaly (levels: ≥ 40 limited, else untrusted).
func hourly(limit int64, window time.Duration, suspendOn ...string) FoldRules {
	return FoldRules{
		Detect: func(t AgentTotals) []Finding {
			var out []Finding
			for _, h := range t.Hours {
				if h.Calls > limit {
					out = append(out, Finding{Type: domain.AnomalyHighFrequency, Severity: domain.SeverityMedium,
						Description: fmt.Sprintf("%d calls", h.Calls), Window: h.Hour, Hour: h.Hour, Source: EvidenceCalls,
						Counts: map[string]any{"calls": h.Calls}})
				}
			}
			return out
		},
		Score: func(in TrustInput) (int, string, domain.TrustFactors) {
			score := max(0, 50-10*int(in.Denials)-20*int(in.Anomalies))
			return score, domain.DefaultTrustThresholds.Level(score), domain.TrustFactors{Base: 50, AllowedCalls: in.AllowedCalls,
				Denials: in.Denials, Anomalies: in.Anomalies}
		},
		Window:    window,
		SuspendOn: suspendOn,
	}
}

func activity(agentID string, hour time.Time, calls, denials int64) AgentActivity {
	return AgentActivity{AgentID: agentID, Hours: []HourActivity{{Hour: hour.Truncate(time.Hour), Calls: calls, Denials: denials,
		Allowed: calls - denials}}}
}

func fold(t *testing.T, s *Store, r FoldRules, acts ...AgentActivity) []FoldResult {
	t.Helper()
	res, err := s.Fold(t.Context(), acts, r)
	if err != nil {
		t.Fatalf("Fold = %v", err)
	}
	return res
}

func eventActions(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	for _, e := range events(t, s) {
		out = append(out, e.Action)
	}
	return out
}

func testTapHandsOverCommittedDecisions(t *testing.T, b backend) {
	c := newClock()
	s := openStore(t, Options{URL: b.url(t), Now: c.Now, DecisionTap: 3})
	ctx := t.Context()
	a := contractAgents(t, s, "u", 1)[0]
	row := func(result, code, approval string) domain.AuditEntry {
		return domain.AuditEntry{AgentID: a.ID, Action: "read", Resource: "docs:" + code, Result: result, Code: code, Reason: "r", ApprovalID: approval}
	}
	allowed, err := s.InsertAudit(ctx, row(domain.ResultAllowed, "allowed", ""), Consumption{})
	if err != nil {
		t.Fatal(err)
	}
	// A row consuming something commits in a transaction of its own: tapped too.
	if _, err := s.InsertAudit(ctx, row(domain.ResultAllowed, "allowed", ""), Consumption{Rates: []RateEvent{{AgentID: a.ID, PermKey: "k",
		Resource: "docs:allowed", Limit: 10}}}); err != nil {
		t.Fatal(err)
	}
	// Rows of no agent (an unknown token) and events are not decisions of an agent.
	if _, err := s.InsertAudit(ctx, domain.AuditEntry{Action: "read", Resource: "x", Result: domain.ResultDenied, Code: "invalid_token", Reason: "r"},
		Consumption{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordEvent(ctx, Event{Action: "policy.reload", AgentID: a.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InsertAudit(ctx, row(domain.ResultDenied, "approval_required", "apr_1"), Consumption{}); err != nil {
		t.Fatal(err)
	}
	// The tap holds 3: the fourth is dropped, never waited for.
	if _, err := s.InsertAudit(ctx, row(domain.ResultDenied, "no_permission", ""), Consumption{}); err != nil {
		t.Fatal(err)
	}
	got, dropped := s.DrainDecisions(nil)
	if len(got) != 3 || dropped != 1 {
		t.Fatalf("DrainDecisions = %+v, %d dropped; want 3 rows and 1 dropped", got, dropped)
	}
	want := CommittedDecision{AuditID: allowed.ID, AgentID: a.ID, Resource: "docs:allowed", Code: "allowed", At: allowed.Timestamp}
	if got[0] != want || !got[2].Denied || !got[2].Approval || got[2].Code != "approval_required" {
		t.Errorf("DrainDecisions = %+v; want first %+v and a denial naming an approval last", got, want)
	}
	if again, _ := s.DrainDecisions(got); len(again) != 0 {
		t.Errorf("DrainDecisions again = %+v; want nothing new", again)
	}
	// Without a tap nothing is kept.
	plain, _ := b.open(t)
	if _, err := plain.InsertAudit(ctx, domain.AuditEntry{AgentID: "agt_x", Action: "r", Resource: "x", Result: domain.ResultAllowed,
		Code: "allowed", Reason: "r"}, Consumption{}); err != nil {
		t.Fatal(err)
	}
	if rows, dropped := plain.DrainDecisions(nil); rows != nil || dropped != 0 {
		t.Errorf("DrainDecisions without a tap = %v, %d", rows, dropped)
	}
}

func testFoldCountsAndStoresEachAnomalyOnce(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	a := contractAgents(t, s, "u", 1)[0]
	r := hourly(5, 7*24*time.Hour)
	res := fold(t, s, r, activity(a.ID, c.Now(), 3, 0))
	if len(res) != 1 || len(res[0].Anomalies) != 0 || res[0].Trust.Score != 50 || res[0].Trust.Level != domain.TrustLimited ||
		res[0].Trust.Factors.AllowedCalls != 3 || res[0].Changed() {
		t.Fatalf("Fold(3 calls) = %+v; want no anomaly, score 50 limited, 3 allowed calls, nothing changed", res)
	}
	res = fold(t, s, r, activity(a.ID, c.Now(), 3, 1))
	if len(res[0].Anomalies) != 1 {
		t.Fatalf("Fold(3 more calls) = %+v; want high_frequency (6 > 5)", res)
	}
	an := res[0].Anomalies[0]
	if an.Type != domain.AnomalyHighFrequency || an.AgentID != a.ID || !an.Window.Equal(c.Now().Truncate(time.Hour)) ||
		!an.DetectedAt.Equal(c.Now()) || !WellFormedID("anm_", an.ID) {
		t.Errorf("anomaly = %+v", an)
	}
	var ev map[string]any
	if err := json.Unmarshal(an.Evidence, &ev); err != nil || ev["calls"] != float64(6) {
		t.Errorf("evidence = %s, %v; want calls 6", an.Evidence, err)
	}
	// Score: 50 - 10 (a denial) - 20 (an anomaly) = 20, untrusted: the level changed.
	if res[0].Trust.Score != 20 || res[0].Trust.Level != domain.TrustUntrusted || res[0].LevelBefore != domain.TrustLimited ||
		res[0].Trust.Factors.AllowedCalls != 5 {
		t.Errorf("trust = %+v (before %s); want 20 untrusted after limited, 5 allowed calls", res[0].Trust, res[0].LevelBefore)
	}
	// Still over the threshold in the same hour: stored once.
	res = fold(t, s, r, activity(a.ID, c.Now(), 10, 0))
	if len(res[0].Anomalies) != 0 {
		t.Errorf("Fold(same hour again) stored %+v; want none: one per agent, type and window", res[0].Anomalies)
	}
	// The next hour is another window.
	c.Add(time.Hour)
	res = fold(t, s, r, activity(a.ID, c.Now(), 6, 0))
	if len(res[0].Anomalies) != 1 {
		t.Errorf("Fold(next hour) = %+v; want a new anomaly", res)
	}
	list, _, err := s.ListAnomalies(ctx, AnomalyFilter{}, Page{Limit: 10})
	if err != nil || len(list) != 2 {
		t.Fatalf("ListAnomalies = %+v, %v; want 2", list, err)
	}
	n := 0
	for _, e := range events(t, s) {
		if e.Action == "anomaly.detected" {
			n++
			if e.AgentID != a.ID || e.Actor.Type != domain.ActorSystem || !slices.Contains([]string{list[0].ID, list[1].ID}, e.Resource) {
				t.Errorf("anomaly event = %+v; want the agent's, by the system, naming the anomaly", e)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d anomaly.detected events; want 2 (one per anomaly): %v", n, eventActions(t, s))
	}
}

func testEvidenceNamesTheAuditRows(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	a := contractAgents(t, s, "u", 1)[0]
	var denied []string
	for i := range 25 {
		result, code := domain.ResultAllowed, "allowed"
		if i%2 == 0 {
			result, code = domain.ResultDenied, "no_permission"
		}
		e, err := s.InsertAudit(ctx, domain.AuditEntry{AgentID: a.ID, Action: "r", Resource: "x", Result: result, Code: code, Reason: "r"}, Consumption{})
		if err != nil {
			t.Fatal(err)
		}
		if result == domain.ResultDenied {
			denied = append(denied, e.ID)
		}
		c.Add(time.Millisecond)
	}
	// A row of the hour before is not evidence of this one.
	c.Add(-2 * time.Hour)
	if _, err := s.InsertAudit(ctx, domain.AuditEntry{AgentID: a.ID, Action: "r", Resource: "x", Result: domain.ResultDenied, Code: "no_permission",
		Reason: "r"}, Consumption{}); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Hour)
	hour := c.Now().Truncate(time.Hour)
	r := hourly(1000, time.Hour)
	r.Detect = func(AgentTotals) []Finding {
		return []Finding{
			{Type: domain.AnomalyHighDenialRate, Severity: domain.SeverityHigh, Window: hour, Hour: hour, Source: EvidenceDenials},
			{Type: domain.AnomalyHighFrequency, Severity: domain.SeverityMedium, Window: hour, Hour: hour, Source: EvidenceCalls},
			{Type: domain.AnomalyProbing, Severity: domain.SeverityHigh, Window: hour, Hour: hour, Source: EvidenceProbes},
		}
	}
	act := activity(a.ID, hour, 25, 13)
	act.Hours[0].Probes = []Probe{{"docs:a", "aud_1"}, {"docs:b", "aud_2"}, {"docs:a", "aud_3"}}
	act.Findings = []Finding{{Type: domain.AnomalyOffHours, Severity: domain.SeverityLow, Window: hour.Truncate(24 * time.Hour),
		Source: EvidenceGiven, AuditIDs: []string{"aud_a", "aud_b"}}}
	res := fold(t, s, r, act)
	ids := map[string][]string{}
	for _, an := range res[0].Anomalies {
		var ev struct{ AuditIDs []string }
		if err := json.Unmarshal(an.Evidence, &ev); err != nil {
			t.Fatal(err)
		}
		ids[an.Type] = ev.AuditIDs
	}
	slices.Reverse(denied)
	if want := denied[:MaxEvidenceIDs/2+3]; !slices.Equal(ids[domain.AnomalyHighDenialRate], want) {
		t.Errorf("high_denial_rate evidence = %v; want this hour's 13 denials, newest first %v", ids[domain.AnomalyHighDenialRate], want)
	}
	if len(ids[domain.AnomalyHighFrequency]) != MaxEvidenceIDs || ids[domain.AnomalyHighFrequency][0] != denied[0] {
		t.Errorf("high_frequency evidence = %v; want the hour's latest %d calls", ids[domain.AnomalyHighFrequency], MaxEvidenceIDs)
	}
	if got := ids[domain.AnomalyProbing]; !slices.Equal(got, []string{"aud_2", "aud_1"}) {
		t.Errorf("probing evidence = %v; want the first row probing each resource [aud_2 aud_1]", got)
	}
	if got := ids[domain.AnomalyOffHours]; !slices.Equal(got, []string{"aud_b", "aud_a"}) {
		t.Errorf("off_hours evidence = %v; want the given rows, newest first", got)
	}
}

func testSuspendOnAndResume(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	ag := contractAgents(t, s, "u", 2)
	a, other := ag[0], ag[1]
	start, _ := s.LatestChange(ctx)
	r := hourly(5, time.Hour, domain.AnomalyHighFrequency)
	res := fold(t, s, r, activity(a.ID, c.Now(), 6, 0), activity(other.ID, c.Now(), 2, 0))
	if len(res) != 2 || !res[0].Suspended || res[1].Suspended || !res[0].Changed() || res[1].Changed() {
		t.Fatalf("Fold = %+v; want %s suspended and changed, the other not", res, a.ID)
	}
	got, err := s.GetAgent(ctx, a.ID)
	if err != nil || got.Status != domain.StatusSuspended {
		t.Fatalf("GetAgent = %+v, %v; want suspended", got.Status, err)
	}
	changes, _ := s.ChangesSince(ctx, start, 10)
	if len(changes) != 1 || changes[0].Kind != ChangeAgent || changes[0].EntityID != a.ID {
		t.Errorf("changes = %+v; want one of the suspended agent", changes)
	}
	for status, want := range map[string][]string{domain.StatusSuspended: {a.ID}, domain.StatusActive: {other.ID}} {
		list, _, err := s.ListAgents(ctx, AgentFilter{Status: status}, Page{Limit: 10})
		var ids []string
		for _, x := range list {
			ids = append(ids, x.ID)
		}
		if err != nil || !slices.Equal(ids, want) {
			t.Errorf("ListAgents(%s) = %v, %v; want %v", status, ids, err, want)
		}
	}
	// Suspended, an agent may still be updated and rotated (fixing it
	// before resuming it), and the next hour's anomaly does not suspend
	// it twice.
	name := "fixed"
	if _, err := s.UpdateAgent(ctx, a.ID, AgentUpdate{Name: &name}); err != nil {
		t.Errorf("UpdateAgent(suspended) = %v", err)
	}
	if _, err := s.RotateToken(ctx, a.ID, "rotated"); err != nil {
		t.Errorf("RotateToken(suspended) = %v", err)
	}
	c.Add(time.Hour)
	if res := fold(t, s, r, activity(a.ID, c.Now(), 6, 0)); len(res[0].Anomalies) != 1 || res[0].Suspended {
		t.Errorf("Fold(suspended, next hour) = %+v; want an anomaly, no second suspension", res)
	}
	back, err := s.ResumeAgent(ctx, a.ID)
	if err != nil || back.Status != domain.StatusActive || back.Name != "fixed" {
		t.Fatalf("ResumeAgent = %+v, %v; want active", back, err)
	}
	if again, err := s.ResumeAgent(ctx, a.ID); err != nil || again.Status != domain.StatusActive {
		t.Errorf("ResumeAgent(active) = %+v, %v; want it unchanged", again.Status, err)
	}
	var susp, resumes int
	for _, e := range events(t, s) {
		switch e.Action {
		case "agent.suspend":
			susp++
			if e.Actor.Type != domain.ActorSystem || e.AgentID != a.ID || !json.Valid(e.Changes) {
				t.Errorf("agent.suspend = %+v", e)
			}
		case "agent.resume":
			resumes++
		}
	}
	if susp != 1 || resumes != 1 {
		t.Errorf("%d agent.suspend and %d agent.resume events; want 1 each: %v", susp, resumes, eventActions(t, s))
	}
	if _, err := s.RevokeAgent(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResumeAgent(ctx, other.ID); !errors.Is(err, ErrRevoked) {
		t.Errorf("ResumeAgent(revoked) = %v; want ErrRevoked", err)
	}
	if _, err := s.ResumeAgent(ctx, "agt_missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ResumeAgent(missing) = %v; want ErrNotFound", err)
	}
	// A revoked agent is not suspended, whatever it does.
	if res := fold(t, s, r, activity(other.ID, c.Now(), 9, 0)); res[0].Suspended {
		t.Errorf("Fold(revoked) suspended it")
	}
}

func testTrustLevelChangeReachesTheAgent(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	a := contractAgents(t, s, "u", 1)[0]
	if got, _ := s.GetAgent(ctx, a.ID); got.Trust != (domain.Trust{Score: 50, Level: domain.TrustLimited, ComputedAt: a.CreatedAt}) {
		t.Errorf("fresh agent's trust = %+v; want the initial 50, limited, as of its creation", got.Trust)
	}
	if _, ok, err := s.GetTrust(ctx, a.ID); ok || err != nil {
		t.Errorf("GetTrust(never scored) = %v, %v; want none", ok, err)
	}
	if _, _, err := s.GetTrust(ctx, "agt_missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetTrust(missing) = %v; want ErrNotFound", err)
	}
	r := hourly(1000, 24*time.Hour)
	start, _ := s.LatestChange(ctx)
	// One denial: 40, still limited: no change of level, nothing fed.
	c.Add(time.Minute)
	fold(t, s, r, activity(a.ID, c.Now(), 1, 1))
	rec, ok, err := s.GetTrust(ctx, a.ID)
	if err != nil || !ok || rec.Score != 40 || rec.Level != domain.TrustLimited || rec.Factors.Denials != 1 || !rec.ComputedAt.Equal(c.Now()) {
		t.Errorf("GetTrust = %+v, %v, %v; want 40 limited, 1 denial, now", rec, ok, err)
	}
	if got, _ := s.GetAgent(ctx, a.ID); got.Trust.Score != 50 || got.Trust.Level != domain.TrustLimited {
		t.Errorf("agent's trust = %+v; want unchanged (the policy sees the score at the last change of level)", got.Trust)
	}
	if ch, _ := s.ChangesSince(ctx, start, 10); len(ch) != 0 {
		t.Errorf("changes = %+v; want none for a score that keeps its level", ch)
	}
	// A second: 30, untrusted: fed, audited, read with the agent.
	c.Add(time.Minute)
	res := fold(t, s, r, activity(a.ID, c.Now(), 1, 1))
	if !res[0].Changed() || res[0].LevelBefore != domain.TrustLimited {
		t.Errorf("Fold = %+v; want a change from limited", res)
	}
	want := domain.Trust{Score: 30, Level: domain.TrustUntrusted, ComputedAt: c.Now()}
	for name, read := range map[string]func() (domain.Agent, error){
		"GetAgent":         func() (domain.Agent, error) { return s.GetAgent(ctx, a.ID) },
		"AgentByTokenHash": func() (domain.Agent, error) { return s.AgentByTokenHash(ctx, a.TokenHash) },
		"ListAgents": func() (domain.Agent, error) {
			l, _, err := s.ListAgents(ctx, AgentFilter{}, Page{Limit: 1})
			return l[0], err
		},
		"EachAgent": func() (domain.Agent, error) {
			var out domain.Agent
			return out, s.EachAgent(ctx, func(x domain.Agent) error { out = x; return nil })
		},
	} {
		if got, err := read(); err != nil || got.Trust != want {
			t.Errorf("%s().Trust = %+v, %v; want %+v", name, got.Trust, err, want)
		}
	}
	if ch, _ := s.ChangesSince(ctx, start, 10); len(ch) != 1 || ch[0].EntityID != a.ID {
		t.Errorf("changes = %+v; want the agent's", ch)
	}
	var trustEvents []domain.AuditEntry
	for _, e := range events(t, s) {
		if e.Action == "agent.trust" {
			trustEvents = append(trustEvents, e)
		}
	}
	var changes struct{ Before, After struct{ Level string } }
	if len(trustEvents) != 1 || json.Unmarshal(trustEvents[0].Changes, &changes) != nil ||
		changes.Before.Level != domain.TrustLimited || changes.After.Level != domain.TrustUntrusted {
		t.Errorf("agent.trust events = %+v; want one, limited → untrusted", trustEvents)
	}
	levels, err := s.TrustLevels(ctx)
	if err != nil || levels[domain.TrustUntrusted] != 1 || len(levels) != 1 {
		t.Errorf("TrustLevels = %v, %v; want one untrusted", levels, err)
	}
	contractAgents(t, s, "v", 2)
	if levels, _ := s.TrustLevels(ctx); levels[domain.TrustLimited] != 2 {
		t.Errorf("TrustLevels = %v; want the two never scored at the initial level, limited", levels)
	}
	// Stale: computed before the given time.
	if ids, err := s.StaleTrust(ctx, c.Now().Add(time.Second), 10); err != nil || !slices.Equal(ids, []string{a.ID}) {
		t.Errorf("StaleTrust = %v, %v; want [%s]", ids, err, a.ID)
	}
	if ids, _ := s.StaleTrust(ctx, c.Now(), 10); len(ids) != 0 {
		t.Errorf("StaleTrust(now) = %v; want none", ids)
	}
}

func testInitialTrustFollowsTheThresholds(t *testing.T, b backend) {
	s := openStore(t, Options{URL: b.url(t), TrustThresholds: domain.TrustThresholds{Limited: 20, Standard: 50, Trusted: 70, Elevated: 90}})
	a := contractAgents(t, s, "u", 1)[0]
	if got, err := s.GetAgent(t.Context(), a.ID); err != nil || got.Trust.Level != domain.TrustStandard || got.Trust.Score != 50 {
		t.Errorf("GetAgent().Trust = %+v, %v; want 50, standard under thresholds 20/50/70/90", got.Trust, err)
	}
	if levels, _ := s.TrustLevels(t.Context()); levels[domain.TrustStandard] != 1 {
		t.Errorf("TrustLevels = %v; want one standard", levels)
	}
}

func testDenialsAndAnomaliesLeaveTheWindow(t *testing.T, s *Store, c *clock) {
	a := contractAgents(t, s, "u", 1)[0]
	r := hourly(5, 2*time.Hour)
	res := fold(t, s, r, activity(a.ID, c.Now(), 6, 1))
	if res[0].Trust.Factors.Denials != 1 || res[0].Trust.Factors.Anomalies != 1 {
		t.Fatalf("trust = %+v; want a denial and an anomaly", res[0].Trust)
	}
	// Denials count by the hour: the hour of this one leaves the 2h window
	// once 2h have passed since its end.
	c.Add(3 * time.Hour)
	// A recomputation with no activity (the stale sweep's): both have left
	// the window; the allowed calls stay.
	res = fold(t, s, r, AgentActivity{AgentID: a.ID})
	if f := res[0].Trust.Factors; f.Denials != 0 || f.Anomalies != 0 || f.AllowedCalls != 5 || res[0].Trust.Score != 50 {
		t.Errorf("trust after the window = %+v; want no denial, no anomaly, 5 allowed calls, 50", res[0].Trust)
	}
}

func testListAnomaliesFiltersAndPages(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	ag := contractAgents(t, s, "u", 2)
	hour := c.Now().Truncate(time.Hour)
	names := map[string]string{}
	for i := range 3 {
		for j, a := range ag {
			typ := domain.AnomalyTypes[(i+j)%2]
			res := fold(t, s, FoldRules{Score: hourly(0, time.Hour).Score, Window: time.Hour}, AgentActivity{AgentID: a.ID,
				Findings: []Finding{{Type: typ, Severity: domain.SeverityLow, Window: hour.Add(time.Duration(i) * time.Hour), Description: "d"}}})
			names[res[0].Anomalies[0].ID] = fmt.Sprintf("a%d-%d-%s", j, i, typ)
			c.Add(time.Minute)
		}
	}
	ids := func(f AnomalyFilter, p Page) ([]string, string) {
		t.Helper()
		list, next, err := s.ListAnomalies(ctx, f, p)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range list {
			out = append(out, a.ID)
		}
		return out, next
	}
	all, _ := ids(AnomalyFilter{}, Page{Limit: 100})
	if len(all) != 6 || !slices.IsSortedFunc(all, func(a, b string) int { return -cmpStrings(a, b) }) {
		t.Fatalf("ListAnomalies = %s; want 6, newest first", labelled(names, all))
	}
	first, next := ids(AnomalyFilter{}, Page{Limit: 4})
	rest, last := ids(AnomalyFilter{}, Page{Limit: 4, Cursor: next})
	if !slices.Equal(append(first, rest...), all) || last != "" {
		t.Errorf("pages %s + %s (next %q); want %s", labelled(names, first), labelled(names, rest), last, labelled(names, all))
	}
	both, _ := ids(AnomalyFilter{AgentID: ag[0].ID, Type: domain.AnomalyHighFrequency}, Page{Limit: 100})
	if len(both) != 2 {
		t.Errorf("ListAnomalies(agent 0, high_frequency) = %s; want its 2", labelled(names, both))
	}
	since, _ := ids(AnomalyFilter{Since: c.Now().Add(-2 * time.Minute)}, Page{Limit: 100})
	if !slices.Equal(since, all[:2]) {
		t.Errorf("ListAnomalies(since the last 2) = %s; want %s", labelled(names, since), labelled(names, all[:2]))
	}
	if _, _, err := s.ListAnomalies(ctx, AnomalyFilter{}, Page{}); err == nil {
		t.Error("ListAnomalies(limit 0) accepted")
	}
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testUnknownAgentsAreSkippedAndCountersPruned(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	a := contractAgents(t, s, "u", 1)[0]
	res := fold(t, s, hourly(0, time.Hour), activity("agt_nobody", c.Now(), 3, 3), activity(a.ID, c.Now().Add(-3*time.Hour), 1, 0))
	if len(res) != 1 || res[0].AgentID != a.ID {
		t.Fatalf("Fold = %+v; want only the agent that exists", res)
	}
	n, err := s.PruneAnomalyCounters(ctx, c.Now().Add(-2*time.Hour))
	if err != nil || n != 1 {
		t.Errorf("PruneAnomalyCounters = %d, %v; want the one old hour", n, err)
	}
}

func testReplicasFoldIntoTheSameCounters(t *testing.T, b backend) {
	stores := b.replicas(t, 2)
	a := contractAgents(t, stores[0], "u", 1)[0]
	hour := time.Now().Truncate(time.Hour)
	var mu sync.Mutex
	var found []domain.Anomaly
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() {
			for range 10 {
				res, err := s.Fold(t.Context(), []AgentActivity{activity(a.ID, hour, 3, 1)}, hourly(40, time.Hour))
				if err != nil {
					t.Errorf("Fold = %v", err)
					return
				}
				mu.Lock()
				for _, r := range res {
					found = append(found, r.Anomalies...)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	rec, _, err := stores[1].GetTrust(t.Context(), a.ID)
	if err != nil || rec.Factors.AllowedCalls != 40 || rec.Factors.Denials != 20 {
		t.Errorf("trust = %+v, %v; want the 40 allowed calls and 20 denials of both replicas", rec, err)
	}
	if len(found) != 1 {
		t.Errorf("anomalies stored = %+v; want one (60 calls > 40), whichever replica crossed", found)
	}
}

func testTrustIsRecomputedWhenItMayMove(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	a := contractAgents(t, s, "u", 1)[0]
	r := hourly(1000, time.Hour)
	computed := func() (time.Time, int64) {
		t.Helper()
		rec, ok, err := s.GetTrust(ctx, a.ID)
		if err != nil || !ok {
			t.Fatalf("GetTrust = %v, %v", ok, err)
		}
		return rec.ComputedAt, rec.Factors.AllowedCalls
	}
	fold(t, s, r, activity(a.ID, c.Now(), 98, 0)) // never computed: computed now
	first, calls := computed()
	if !first.Equal(c.Now()) || calls != 98 {
		t.Fatalf("trust computed at %s with %d calls; want now, 98", first, calls)
	}
	c.Add(time.Second)
	fold(t, s, r, activity(a.ID, c.Now(), 1, 0)) // 99 allowed calls: nothing that scores moved
	if at, _ := computed(); !at.Equal(first) {
		t.Errorf("trust recomputed at %s for an allowed call that changes nothing; want it left at %s", at, first)
	}
	c.Add(time.Second)
	fold(t, s, r, activity(a.ID, c.Now(), 1, 0)) // the 100th: +1
	if at, calls := computed(); !at.Equal(c.Now()) || calls != 100 {
		t.Errorf("trust at the 100th allowed call computed at %s with %d calls; want now, 100", at, calls)
	}
	c.Add(time.Second)
	fold(t, s, r, activity(a.ID, c.Now(), 1, 1)) // a denial
	if at, _ := computed(); !at.Equal(c.Now()) {
		t.Errorf("trust after a denial computed at %s; want now", at)
	}
	c.Add(TrustRefresh)
	fold(t, s, r, activity(a.ID, c.Now(), 1, 0)) // stale
	if at, calls := computed(); !at.Equal(c.Now()) || calls != 101 {
		t.Errorf("stale trust computed at %s with %d calls; want now, 101", at, calls)
	}
}
