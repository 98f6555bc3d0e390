package sidecar_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/service"
)

// Anomalies detected from the audit stream are listed (filtered, paged,
// newest first), scores are read per agent, a suspendOn anomaly suspends
// its agent until an admin resumes it, and /metrics counts both.
func TestAnomaliesTrustAndSuspension(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{Anomalies: service.AnomalyOptions{Enabled: true, HighFrequency: 5, Probing: 3,
		SuspendOn: []string{domain.AnomalyProbing}}})
	ctx := t.Context()
	mk := func(name string) api.AgentWithToken {
		return e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: name, Permissions: []api.Permission{perm("docs:*", "read")}})
	}
	clean, noisy, prober := mk("clean"), mk("noisy"), mk("prober")
	call := func(a api.AgentWithToken, resource string) {
		t.Helper()
		if _, err := e.cl.Authorize(ctx, api.AuthorizeRequest{AgentID: a.ID, Action: "read", Resource: resource}, ""); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		call(clean, "docs:x")
	}
	for range 6 {
		call(noisy, "docs:x")
	}
	for i := range 3 {
		call(prober, fmt.Sprintf("secrets:%d", i))
	}
	e.svc.Fold(ctx)

	list, err := e.cl.ListAllAnomalies(ctx, client.AnomalyFilter{}, 0)
	if err != nil || len(list.Anomalies) != 2 {
		t.Fatalf("ListAllAnomalies = %+v, %v; want high_frequency of noisy and probing of prober", list, err)
	}
	byType := map[string]api.Anomaly{}
	for _, a := range list.Anomalies {
		byType[a.Type] = a
	}
	hf, pr := byType[domain.AnomalyHighFrequency], byType[domain.AnomalyProbing]
	if hf.AgentID != noisy.ID || pr.AgentID != prober.ID || pr.Severity != domain.SeverityHigh || hf.Description == "" {
		t.Errorf("anomalies = %+v", list.Anomalies)
	}
	var ev struct {
		Resources int
		AuditIDs  []string
	}
	if err := json.Unmarshal(pr.Evidence, &ev); err != nil || ev.Resources != 3 || len(ev.AuditIDs) != 3 {
		t.Errorf("probing evidence = %s, %v; want 3 resources and their 3 audit rows", pr.Evidence, err)
	}
	for _, tc := range []struct {
		f    client.AnomalyFilter
		want []string
	}{
		{client.AnomalyFilter{AgentID: noisy.ID}, []string{hf.ID}},
		{client.AnomalyFilter{Type: domain.AnomalyProbing}, []string{pr.ID}},
		{client.AnomalyFilter{AgentID: noisy.ID, Type: domain.AnomalyProbing}, nil},
		{client.AnomalyFilter{Since: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, nil},
		{client.AnomalyFilter{Limit: 1}, []string{list.Anomalies[0].ID, list.Anomalies[1].ID}},
	} {
		got, err := e.cl.ListAllAnomalies(ctx, tc.f, 0)
		var ids []string
		for _, a := range got.Anomalies {
			ids = append(ids, a.ID)
		}
		if err != nil || !slices.Equal(ids, tc.want) {
			t.Errorf("ListAllAnomalies(%+v) = %v, %v; want %v", tc.f, ids, err, tc.want)
		}
	}
	for _, q := range []string{"type=sneezing", "since=yesterday", "agent=" + noisy.ID, "limit=0", "cursor=agt_x"} {
		if status, body := e.do(t, http.MethodGet, "/v1/anomalies?"+q, ""); status != http.StatusBadRequest ||
			!strings.Contains(string(body), "invalid_parameter") {
			t.Errorf("GET /v1/anomalies?%s = %d %s; want 400 invalid_parameter", q, status, body)
		}
	}

	// Trust: the clean agent keeps 50 (limited); the prober, 3 denials
	// and an anomaly down, is at 25 (untrusted).
	ct, err := e.cl.AgentTrust(ctx, clean.ID)
	if err != nil || ct.Score != 50 || ct.Level != domain.TrustLimited || ct.Factors.AllowedCalls != 3 || ct.Factors.Base != 50 {
		t.Errorf("AgentTrust(clean) = %+v, %v; want 50 limited, 3 allowed calls", ct, err)
	}
	pt, err := e.cl.AgentTrust(ctx, prober.ID)
	want := api.TrustFactors{Base: 50, Denials: 3, DenialPenalty: 15, Anomalies: 1, AnomalyPenalty: 10}
	if err != nil || pt.Score != 25 || pt.Level != domain.TrustUntrusted || pt.Factors != want || pt.AgentID != prober.ID {
		t.Errorf("AgentTrust(prober) = %+v, %v; want 25 untrusted with %+v", pt, err, want)
	}
	fresh := mk("fresh")
	if ft, err := e.cl.AgentTrust(ctx, fresh.ID); err != nil || ft.Score != 50 || ft.Level != domain.TrustLimited ||
		!ft.ComputedAt.Equal(fresh.CreatedAt.Time) {
		t.Errorf("AgentTrust(never scored) = %+v, %v; want the initial 50 as of its creation", ft, err)
	}
	var ce *client.Error
	if _, err := e.cl.AgentTrust(ctx, "agt_missing"); !errors.As(err, &ce) || ce.Status != http.StatusNotFound {
		t.Errorf("AgentTrust(missing) = %v; want 404", err)
	}

	// Containment: probing suspended the prober.
	if a, err := e.cl.GetAgent(ctx, prober.ID); err != nil || a.Status != domain.StatusSuspended {
		t.Errorf("GetAgent(prober) = %s, %v; want suspended", a.Status, err)
	}
	sus, err := e.cl.ListAllAgents(ctx, client.AgentFilter{Status: domain.StatusSuspended}, 0)
	if err != nil || len(sus.Agents) != 1 || sus.Agents[0].ID != prober.ID {
		t.Errorf("ListAllAgents(suspended) = %+v, %v; want the prober", sus.Agents, err)
	}
	exp := api.NewTime(time.Now().Add(time.Hour))
	for _, req := range []api.DelegateRequest{{FromAgent: prober.ID, ToAgent: clean.ID}, {FromAgent: clean.ID, ToAgent: prober.ID}} {
		req.Permissions, req.ExpiresAt = []api.Permission{perm("docs:a", "read")}, &exp
		if _, err := e.cl.Delegate(ctx, req); !errors.As(err, &ce) || ce.Status != http.StatusConflict || ce.Code != "agent_suspended" {
			t.Errorf("Delegate(%s → %s) = %v; want 409 agent_suspended", req.FromAgent, req.ToAgent, err)
		}
	}
	back, err := e.cl.ResumeAgent(ctx, prober.ID)
	if err != nil || back.Status != domain.StatusActive {
		t.Fatalf("ResumeAgent = %+v, %v; want active", back, err)
	}
	for _, action := range []string{"anomaly.detected", "agent.suspend", "agent.resume", "agent.trust"} {
		page, err := e.cl.QueryAudit(ctx, client.AuditFilter{Kind: domain.KindEvent, Action: action, AgentID: prober.ID})
		if err != nil || len(page.Entries) != 1 {
			t.Errorf("QueryAudit(%s) = %d rows, %v; want 1", action, len(page.Entries), err)
			continue
		}
		row := page.Entries[0]
		if wantActor := map[string]string{"agent.resume": "admin_env"}[action]; wantActor == "" && row.Actor.Type != domain.ActorSystem ||
			wantActor != "" && row.Actor.Type != wantActor {
			t.Errorf("%s actor = %+v", action, row.Actor)
		}
	}

	status, body := e.do(t, http.MethodGet, "/metrics", "")
	for _, line := range []string{`kavach_anomalies_total{type="probing"} 1`, `kavach_anomalies_total{type="high_frequency"} 1`,
		`kavach_anomalies_total{type="off_hours"} 0`, `kavach_agents_by_trust_level{level="elevated"} 0`} {
		if status != http.StatusOK || !strings.Contains(string(body), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
