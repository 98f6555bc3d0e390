package anomalies

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/store"
)

func TestScoreIsKavachOSFormula(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, c := range []struct {
		name                       string
		allowed, denials, anoms    int64
		age                        time.Duration
		want                       int
		wantAllowed, wantAge       int
		wantAgeDays                float64
		wantDenialPen, wantAnomPen int
	}{
		{name: "fresh", want: 50},
		{name: "99 allowed calls earn nothing yet", allowed: 99, want: 50},
		{name: "+1 per 100 allowed calls", allowed: 1234, age: 20 * day, want: 67, wantAllowed: 12, wantAge: 5, wantAgeDays: 20},
		{name: "at most +25", allowed: 1_000_000, age: 26 * day, want: 80, wantAllowed: 25, wantAge: 5, wantAgeDays: 26},
		{name: "at most +1 a day of age: no farming", allowed: 1_000_000, age: 3*day + time.Hour, want: 53, wantAllowed: 3, wantAgeDays: 3},
		{name: "a fresh agent earns nothing from calls", allowed: 2600, want: 50},
		{name: "-5 per denial", denials: 3, want: 35, wantDenialPen: 15},
		{name: "-10 per anomaly", anoms: 2, want: 30, wantAnomPen: 20},
		{name: "clamped at 0", denials: 5, anoms: 4, want: 0, wantDenialPen: 25, wantAnomPen: 40},
		{name: "7 days exactly: no bonus", age: 7 * day, want: 50, wantAgeDays: 7},
		{name: "over 7 days: +5", age: 7*day + time.Hour, want: 55, wantAge: 5, wantAgeDays: 7},
		{name: "over 30 days: +10, not 15", age: 31 * day, want: 60, wantAge: 10, wantAgeDays: 31},
		{name: "the most it gives: 85", allowed: 1_000_000, age: 40 * day, want: 85, wantAllowed: 25, wantAge: 10, wantAgeDays: 40},
		{name: "a million denials stay in range", denials: 1_000_000, want: 0, wantDenialPen: 5000},
	} {
		score, f := Score(store.TrustInput{AllowedCalls: c.allowed, Denials: c.denials, Anomalies: c.anoms, CreatedAt: now.Add(-c.age), Now: now})
		want := domain.TrustFactors{Base: 50, AllowedCalls: c.allowed, AllowedBonus: c.wantAllowed, Denials: c.denials, DenialPenalty: c.wantDenialPen,
			Anomalies: c.anoms, AnomalyPenalty: c.wantAnomPen, AgeDays: c.wantAgeDays, AgeBonus: c.wantAge}
		if score != c.want || f != want {
			t.Errorf("%s: Score = %d, %+v; want %d, %+v", c.name, score, f, c.want, want)
		}
	}
}

func newTest(o Options) *Anomalies {
	if o.HighFrequency == 0 {
		o.HighFrequency, o.DenialRate, o.MinCalls, o.Probing = 30, 50, 10, 5
	}
	return New(nil, nil, o, time.Now, slog.New(slog.DiscardHandler))
}

func types(fs []store.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Type+"/"+f.Severity)
	}
	return out
}

func TestDetect(t *testing.T) {
	t.Parallel()
	s := newTest(Options{})
	hour := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name                   string
		calls, denials, probed int64
		want                   []string
	}{
		{name: "quiet", calls: 30, want: nil},
		{name: "over the frequency threshold", calls: 31, want: []string{"high_frequency/medium"}},
		{name: "twice the threshold", calls: 60, want: []string{"high_frequency/high"}},
		{name: "8 denials in 10 calls", calls: 10, denials: 8, want: []string{"high_denial_rate/medium"}},
		{name: "denial rate at the threshold", calls: 10, denials: 5, want: []string{"high_denial_rate/medium"}},
		{name: "under the threshold", calls: 10, denials: 4, want: nil},
		{name: "too few calls to judge", calls: 9, denials: 9, want: nil},
		{name: "9 of 10 denied", calls: 10, denials: 9, want: []string{"high_denial_rate/high"}},
		{name: "probing", calls: 5, denials: 5, probed: 5, want: []string{"probing/high"}},
		{name: "not yet probing", calls: 4, denials: 4, probed: 4, want: nil},
	} {
		got := s.detect(store.AgentTotals{AgentID: "agt_1", Hours: []store.HourTotals{{Hour: hour, Calls: c.calls, Denials: c.denials, Probed: c.probed}}})
		if !slices.Equal(types(got), c.want) {
			t.Errorf("%s: detect = %v; want %v", c.name, types(got), c.want)
		}
		for _, f := range got {
			if !f.Window.Equal(hour) || f.Description == "" || len(f.Counts) == 0 {
				t.Errorf("%s: finding %+v; want the hour as window, a description and counts", c.name, f)
			}
		}
	}
}

func TestActivityGroupsRows(t *testing.T) {
	t.Parallel()
	s := newTest(Options{Probing: 2, HighFrequency: 1, DenialRate: 1, MinCalls: 1})
	h := time.Date(2026, 5, 1, 12, 10, 0, 0, time.UTC)
	row := func(agent, id string, at time.Time, denied, approval bool, code, resource string) store.CommittedDecision {
		return store.CommittedDecision{AuditID: id, AgentID: agent, At: at, Denied: denied, Approval: approval, Code: code, Resource: resource}
	}
	acts := s.activity([]store.CommittedDecision{
		row("a", "1", h, false, false, "allowed", "x"),
		row("a", "2", h.Add(time.Minute), true, false, "no_permission", "p1"),
		row("a", "3", h.Add(2*time.Minute), true, false, "no_permission", "p1"),
		row("a", "4", h.Add(3*time.Minute), true, true, "approval_required", "deploy"),
		row("a", "5", h.Add(time.Hour), true, false, "no_permission", "p2"),
		row("b", "6", h, true, false, "rate_limited", "x"),
	})
	if len(acts) != 2 || acts[0].AgentID != "a" || acts[1].AgentID != "b" || len(acts[0].Hours) != 2 {
		t.Fatalf("activity = %+v; want a (2 hours), b", acts)
	}
	first := acts[0].Hours[0]
	if !first.Hour.Equal(h.Truncate(time.Hour)) || first.Calls != 4 || first.Allowed != 1 || first.Denials != 2 ||
		len(first.Probes) != 1 || first.Probes[0] != (store.Probe{Resource: "p1", AuditID: "2"}) {
		t.Errorf("a's first hour = %+v; want 4 calls, 1 allowed, 2 denials (an approval request is no denial), p1 probed once by row 2", first)
	}
	if second := acts[0].Hours[1]; second.Calls != 1 || second.Denials != 1 || len(second.Probes) != 1 {
		t.Errorf("a's second hour = %+v", second)
	}
	if len(acts[0].Findings) != 0 {
		t.Errorf("findings without expected hours: %+v", acts[0].Findings)
	}
	// Merging the same activity twice doubles the counts of each hour.
	again := s.activity([]store.CommittedDecision{row("a", "1", h, false, false, "allowed", "x"), row("c", "9", h, false, false, "allowed", "x")})
	m := merge(acts, again)
	if len(m) != 3 || m[0].Hours[0].Calls != 5 || m[0].Hours[0].Allowed != 2 || m[2].AgentID != "c" {
		t.Errorf("merge = %+v", m)
	}
}

func TestOffHours(t *testing.T) {
	t.Parallel()
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Skip(err)
	}
	day := func(y int, m time.Month, d int, loc *time.Location) time.Time {
		return time.Date(y, m, d, 0, 0, 0, 0, loc).UTC()
	}
	for _, c := range []struct {
		name     string
		hours    *[2]int
		loc      *time.Location
		at       time.Time
		outside  bool
		expected time.Time
	}{
		{"none configured", nil, time.UTC, time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC), false, time.Time{}},
		{"inside 9-17", &[2]int{9, 17}, time.UTC, time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC), false, day(2026, 5, 1, time.UTC)},
		{"the end hour is outside", &[2]int{9, 17}, time.UTC, time.Date(2026, 5, 1, 17, 0, 0, 0, time.UTC), true, day(2026, 5, 1, time.UTC)},
		{"before the start", &[2]int{9, 17}, time.UTC, time.Date(2026, 5, 1, 8, 59, 0, 0, time.UTC), true, day(2026, 5, 1, time.UTC)},
		{"across midnight, late", &[2]int{22, 6}, time.UTC, time.Date(2026, 5, 1, 23, 30, 0, 0, time.UTC), false, day(2026, 5, 1, time.UTC)},
		{"across midnight, early", &[2]int{22, 6}, time.UTC, time.Date(2026, 5, 2, 5, 59, 0, 0, time.UTC), false, day(2026, 5, 2, time.UTC)},
		{"across midnight, noon", &[2]int{22, 6}, time.UTC, time.Date(2026, 5, 2, 12, 0, 0, 0, time.UTC), true, day(2026, 5, 2, time.UTC)},
		// 04:00 UTC is 09:30 in Kolkata: inside 9-17 there, and the day is Kolkata's.
		{"in the zone", &[2]int{9, 17}, kolkata, time.Date(2026, 5, 1, 4, 0, 0, 0, time.UTC), false, day(2026, 5, 1, kolkata)},
		{"outside in the zone", &[2]int{9, 17}, kolkata, time.Date(2026, 4, 30, 20, 0, 0, 0, time.UTC), true, day(2026, 5, 1, kolkata)},
	} {
		s := newTest(Options{ExpectedHours: c.hours, Location: c.loc})
		d, outside := s.offHours(c.at)
		if outside != c.outside || !d.Equal(c.expected) {
			t.Errorf("%s: offHours(%s) = %s, %v; want %s, %v", c.name, c.at, d, outside, c.expected, c.outside)
		}
	}
	s := newTest(Options{ExpectedHours: &[2]int{9, 17}})
	at := time.Date(2026, 5, 1, 20, 0, 0, 0, time.UTC)
	var rows []store.CommittedDecision
	for i := range 25 {
		rows = append(rows, store.CommittedDecision{AuditID: string(rune('A' + i)), AgentID: "a", At: at.Add(time.Duration(i) * time.Minute)})
	}
	rows = append(rows, store.CommittedDecision{AuditID: "in", AgentID: "a", At: at.Add(-10 * time.Hour)})
	acts := s.activity(rows)
	if len(acts[0].Findings) != 1 {
		t.Fatalf("findings = %+v; want one off_hours per agent and day", acts[0].Findings)
	}
	f := acts[0].Findings[0]
	if f.Type != domain.AnomalyOffHours || f.Severity != domain.SeverityLow || !f.Window.Equal(day(2026, 5, 1, time.UTC)) ||
		f.Counts["calls"] != 25 || len(f.AuditIDs) != store.MaxEvidenceIDs || f.AuditIDs[len(f.AuditIDs)-1] != "Y" {
		t.Errorf("off_hours finding = %+v; want 25 calls, the last 20 rows, the day's window", f)
	}
}
