package tests

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/internal/mysqltest"
	"github.com/kavach-dev/kavach/internal/pgtest"
	"github.com/kavach-dev/kavach/store"
)

// Anomaly detection and trust against the real binary: each anomaly type
// is flagged within detectionBound of the call that crosses its threshold
// (measured, and logged), trust follows behaviour, suspendOn suspends and
// resume restores, and on PostgreSQL two replicas share the counters and
// see each other's anomalies.

// detectionBound is how long after the crossing call an anomaly must be
// listed: the 2 s, and room for a loaded test machine.
const detectionBound = 2500 * time.Millisecond

// anomalyConfig writes a config file with the given anomaly section body
// (indented under anomaly:) and returns its path.
func anomalyConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kavach.yaml")
	writeFile(t, p, "anomaly:\n"+body)
	return p
}

// waitAnomaly polls cl until an anomaly of typ for agent is listed, and
// returns it with the time since from it took; it fails past the bound.
func waitAnomaly(t *testing.T, cl *client.Client, agent, typ string, from time.Time, bound time.Duration) (api.Anomaly, time.Duration) {
	t.Helper()
	for {
		list, err := cl.ListAnomalies(t.Context(), client.AnomalyFilter{AgentID: agent, Type: typ})
		if err != nil {
			t.Fatalf("ListAnomalies(%s, %s) = %v", agent, typ, err)
		}
		if len(list.Anomalies) > 0 {
			return list.Anomalies[0], time.Since(from)
		}
		if time.Since(from) > bound {
			t.Fatalf("no %s anomaly for %s within %v of the crossing call", typ, agent, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pollUntil polls cond every 10 ms until it holds, failing after bound.
func pollUntil(t *testing.T, what string, bound time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not within %v", what, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// waitInStep waits until replica b has applied every change committed to
// db's feed so far (read from the database: a writer's own position moves
// only when it polls).
func waitInStep(t *testing.T, db string, b *client.Client) {
	t.Helper()
	st, err := store.Open(t.Context(), store.Options{URL: db, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := st.LatestChange(t.Context())
	_ = st.Close()
	if err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "B applies the feed", detectionBound, func() bool {
		hb, err := b.Health(t.Context())
		return err == nil && hb.Sync != nil && hb.Sync.AppliedSeq >= seq
	})
}

func readCall(t *testing.T, cl *client.Client, agent, resource string) api.AuthorizeResponse {
	t.Helper()
	res, err := cl.Authorize(t.Context(), api.AuthorizeRequest{AgentID: agent, Action: "read", Resource: resource}, "")
	if err != nil {
		t.Fatalf("Authorize(%s, %s) = %v", agent, resource, err)
	}
	return res
}

func docsAgent(t *testing.T, cl *client.Client, name string) api.AgentWithToken {
	t.Helper()
	a, err := cl.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "anomaly-owner", Name: name,
		Permissions: []api.Permission{perm("docs:*", "read")}})
	if err != nil {
		t.Fatalf("CreateAgent(%s) = %v", name, err)
	}
	return a
}

func TestAnomalyDetectionOnSQLite(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"), "--config", anomalyConfig(t,
		"  highFrequencyThreshold: 30\n  suspendOn: [probing]\n"))
	cl := s.adminClient()
	busy, denier, clean, prober := docsAgent(t, cl, "busy"), docsAgent(t, cl, "denier"), docsAgent(t, cl, "clean"), docsAgent(t, cl, "prober")

	// high_frequency: 40 calls over a threshold of 30; the 31st crosses it.
	var crossed time.Time
	for i := range 40 {
		if res := readCall(t, cl, busy.ID, "docs:x"); !res.Allowed {
			t.Fatalf("busy call %d = %+v; want allowed", i, res)
		}
		if i == 30 {
			crossed = time.Now()
		}
	}
	hf, took := waitAnomaly(t, cl, busy.ID, "high_frequency", crossed, detectionBound)
	t.Logf("high_frequency listed %v after the crossing call (the 31st of 40)", took)
	var ev struct {
		Calls    int      `json:"calls"`
		AuditIDs []string `json:"auditIds"`
	}
	if err := json.Unmarshal(hf.Evidence, &ev); err != nil || ev.Calls < 31 || len(ev.AuditIDs) != 20 || hf.Severity != "medium" {
		t.Errorf("high_frequency = %+v (%v); want medium, over 30 calls, the last 20 audit IDs", hf, err)
	}

	// high_denial_rate: 8 denials in 10 calls (one resource: no probing);
	// the clean agent's 10 allowed calls are not.
	for i := range 10 {
		resource := "docs:x"
		if i >= 2 {
			resource = "secrets:x"
		}
		readCall(t, cl, denier.ID, resource)
		readCall(t, cl, clean.ID, "docs:x")
	}
	crossed = time.Now()
	_, took = waitAnomaly(t, cl, denier.ID, "high_denial_rate", crossed, detectionBound)
	t.Logf("high_denial_rate listed %v after the 10th call", took)

	// probing: 6 resources never held, denied no_permission; suspendOn
	// suspends the agent.
	for i := range 6 {
		if res := readCall(t, cl, prober.ID, fmt.Sprintf("secrets:vault-%d", i)); res.Code != "no_permission" {
			t.Fatalf("probe %d = %+v; want no_permission", i, res)
		}
		if i == 4 {
			crossed = time.Now()
		}
	}
	_, took = waitAnomaly(t, cl, prober.ID, "probing", crossed, detectionBound)
	t.Logf("probing listed %v after the 5th distinct resource", took)

	// Trust: the prober is below the clean agent and at most limited.
	ctx := t.Context()
	var pt, ct api.Trust
	pollUntil(t, "the prober's trust recomputed", detectionBound, func() bool {
		var err error
		if pt, err = cl.AgentTrust(ctx, prober.ID); err != nil {
			t.Fatal(err)
		}
		return pt.Factors.Anomalies > 0
	})
	// The clean agent's calls are folded on their own schedule (every
	// 250 ms, later on a loaded machine): wait for all ten.
	pollUntil(t, "the clean agent's trust recomputed", detectionBound, func() bool {
		var err error
		if ct, err = cl.AgentTrust(ctx, clean.ID); err != nil {
			t.Fatal(err)
		}
		return ct.Factors.AllowedCalls >= 10
	})
	if pt.Score >= ct.Score || (pt.Level != "limited" && pt.Level != "untrusted") || ct.Factors.AllowedCalls != 10 {
		t.Errorf("trust: prober %+v, clean %+v; want the prober lower and at most limited", pt, ct)
	}
	clean2, err := cl.ListAnomalies(ctx, client.AnomalyFilter{AgentID: clean.ID})
	if err != nil || len(clean2.Anomalies) != 0 {
		t.Errorf("the clean agent's anomalies = %+v, %v; want none", clean2.Anomalies, err)
	}

	// Containment: suspended (the status and the decision), then resumed
	// by an admin.
	a, err := cl.GetAgent(ctx, prober.ID)
	if err != nil || a.Status != "suspended" {
		t.Fatalf("GetAgent(prober) = %s, %v; want suspended", a.Status, err)
	}
	if res := readCall(t, cl, prober.ID, "docs:x"); res.Allowed || res.Code != "agent_suspended" {
		t.Errorf("decision for the suspended agent = %+v; want denied agent_suspended", res)
	}
	auditor := client.New(s.URL).WithAPIKey(s.mintKey(t, "auditor", "auditor").Key)
	if _, err := auditor.ResumeAgent(ctx, prober.ID); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("ResumeAgent by an auditor = %v; want 403", err)
	}
	if list, err := auditor.ListAnomalies(ctx, client.AnomalyFilter{}); err != nil || len(list.Anomalies) < 3 {
		t.Errorf("ListAnomalies by an auditor = %d, %v; want the anomalies", len(list.Anomalies), err)
	}
	out, stderr, code := cli(t, nil, "agent", "resume", prober.ID, "--server", s.URL)
	if code != 0 || !strings.Contains(out, `"status": "active"`) {
		t.Fatalf("kavach agent resume = %d %s %s; want the agent active", code, out, stderr)
	}
	if res := readCall(t, cl, prober.ID, "docs:x"); !res.Allowed {
		t.Errorf("decision after resume = %+v; want allowed", res)
	}
	out, stderr, code = cli(t, nil, "anomalies", "list", "--agent", prober.ID, "--since", "1h", "--server", s.URL)
	if code != 0 || !strings.Contains(out, `"type": "probing"`) {
		t.Errorf("kavach anomalies list = %d %s %s; want the probing anomaly", code, out, stderr)
	}
	out, stderr, code = cli(t, nil, "agent", "trust", clean.ID, "--server", s.URL)
	if code != 0 || !strings.Contains(out, `"level": "limited"`) || !strings.Contains(out, `"allowedCalls": 10`) {
		t.Errorf("kavach agent trust = %d %s %s; want the clean agent's trust", code, out, stderr)
	}
	for _, action := range []string{"anomaly.detected", "agent.suspend", "agent.resume", "agent.trust"} {
		page, err := cl.QueryAudit(ctx, client.AuditFilter{Kind: "event", Action: action, AgentID: prober.ID})
		if err != nil || len(page.Entries) == 0 {
			t.Errorf("audit events %s of the prober = %d, %v; want some", action, len(page.Entries), err)
		}
	}

	body := scrape(t, s)
	for _, line := range []string{`kavach_anomalies_total{type="high_frequency"} 1`, `kavach_anomalies_total{type="probing"} 1`,
		`kavach_anomalies_total{type="high_denial_rate"} 1`, `kavach_agents_by_trust_level{level="limited"}`} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
}

func TestOffHoursAndDisabledDetection(t *testing.T) {
	t.Parallel()
	// The expected hours exclude this hour and the next, so a call now is
	// off hours even if the test crosses an hour.
	h := time.Now().UTC().Hour()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"), "--config", anomalyConfig(t,
		fmt.Sprintf("  expectedHours: {start: %d, end: %d}\n", (h+2)%24, (h+3)%24)))
	cl := s.adminClient()
	night := docsAgent(t, cl, "night")
	day := time.Now().UTC().YearDay()
	readCall(t, cl, night.ID, "docs:x")
	an, took := waitAnomaly(t, cl, night.ID, "off_hours", time.Now(), detectionBound)
	t.Logf("off_hours listed %v after the call", took)
	if an.Severity != "low" || !strings.Contains(an.Description, "outside the expected hours") {
		t.Errorf("off_hours = %+v", an)
	}
	readCall(t, cl, night.ID, "docs:y")
	time.Sleep(600 * time.Millisecond)
	if list, _ := cl.ListAnomalies(t.Context(), client.AnomalyFilter{AgentID: night.ID}); len(list.Anomalies) != 1 && time.Now().UTC().YearDay() == day {
		t.Errorf("anomalies = %+v; want one off_hours a day", list.Anomalies)
	}

	// anomaly.enabled false: nothing is counted or flagged, and trust
	// stays the initial score.
	off := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"), "--config", anomalyConfig(t,
		"  enabled: false\n  highFrequencyThreshold: 3\n"))
	ocl := off.adminClient()
	quiet := docsAgent(t, ocl, "quiet")
	for range 10 {
		readCall(t, ocl, quiet.ID, "secrets:x")
	}
	time.Sleep(time.Second)
	if list, err := ocl.ListAnomalies(t.Context(), client.AnomalyFilter{}); err != nil || len(list.Anomalies) != 0 {
		t.Errorf("anomalies with detection off = %+v, %v; want none", list.Anomalies, err)
	}
	if tr, err := ocl.AgentTrust(t.Context(), quiet.ID); err != nil || tr.Score != 50 || tr.Factors.Denials != 0 {
		t.Errorf("trust with detection off = %+v, %v; want the initial 50", tr, err)
	}
}

func TestAnomaliesAcrossReplicasOnPostgres(t *testing.T) {
	testAnomaliesAcrossReplicas(t, pgtest.URL(t), "postgres")
}

func TestAnomaliesAcrossReplicasOnMySQL(t *testing.T) {
	testAnomaliesAcrossReplicas(t, mysqltest.URL(t), "mysql")
}

func testAnomaliesAcrossReplicas(t *testing.T, db, engine string) {
	cfg := anomalyConfig(t, "  highFrequencyThreshold: 30\n  suspendOn: [probing]\n")
	a := start(t, "--database", db, "--config", cfg)
	b := start(t, "--database", db, "--config", cfg)
	ca, cb := a.adminClient(), b.adminClient()
	ctx := t.Context()

	// 40 calls, alternating between the replicas: 20 each, under the
	// threshold on either alone; the shared counters cross it.
	split := docsAgent(t, ca, "split")
	// B must have the agent before it is called, or it denies: within
	// the propagation lag (a poll interval on MySQL, which has no LISTEN).
	waitInStep(t, db, cb)
	var crossed time.Time
	for i := range 40 {
		cl := ca
		if i%2 == 1 {
			cl = cb
		}
		readCall(t, cl, split.ID, "docs:x")
		if i == 30 {
			crossed = time.Now()
		}
	}
	an, took := waitAnomaly(t, cb, split.ID, "high_frequency", crossed, detectionBound)
	t.Logf("%s: high_frequency of calls split over two replicas listed on B %v after the crossing call", engine, took)
	if onA, err := ca.ListAnomalies(ctx, client.AnomalyFilter{AgentID: split.ID}); err != nil || len(onA.Anomalies) != 1 || onA.Anomalies[0].ID != an.ID {
		t.Errorf("A lists %+v, %v; want the one anomaly B lists", onA.Anomalies, err)
	}

	// Detected on A, visible on B; the suspension too.
	prober := docsAgent(t, ca, "prober")
	for i := range 5 {
		readCall(t, ca, prober.ID, fmt.Sprintf("secrets:vault-%d", i))
	}
	_, took = waitAnomaly(t, cb, prober.ID, "probing", time.Now(), detectionBound)
	t.Logf("%s: probing detected on A listed on B %v after the last probe", engine, took)
	pollUntil(t, "B sees the prober suspended", detectionBound, func() bool {
		ag, err := cb.GetAgent(ctx, prober.ID)
		return err == nil && ag.Status == "suspended"
	})
	took = pollUntil(t, "B denies the suspended agent", detectionBound, func() bool {
		return readCall(t, cb, prober.ID, "docs:x").Code == "agent_suspended"
	})
	t.Logf("%s: B denied the suspended agent %v after seeing the suspension", engine, took)
	if _, err := cb.ResumeAgent(ctx, prober.ID); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "A sees the prober resumed", detectionBound, func() bool {
		return readCall(t, ca, prober.ID, "docs:x").Allowed
	})
	tb, err := cb.AgentTrust(ctx, prober.ID)
	if err != nil || tb.Level != "untrusted" {
		t.Errorf("B: the prober's trust = %+v, %v; want untrusted", tb, err)
	}
}
