package sidecar_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/store"
)

// Before the data is loaded into OPA, decisions and writes are refused with
// 503 rather than answered (and audited) from an empty store.
func TestNotReadyRefusesDecisionsAndWrites(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{URL: ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(st, eng, service.Options{AdminKey: testAdminKey, Roles: testRoles(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newServer(t, svc, sidecar.Options{}))
	defer srv.Close()
	cl := client.New(srv.URL).WithAPIKey(testAdminKey)
	_, err = cl.Authorize(ctx, api.AuthorizeRequest{AgentID: "agt_x", Action: "read", Resource: "x"}, "")
	if ce := asClientError(err); ce == nil || ce.Status != 503 || ce.Code != "not_ready" {
		t.Errorf("authorize before load = %v; want 503 not_ready", err)
	}
	_, err = cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "n"})
	if ce := asClientError(err); ce == nil || ce.Status != 503 {
		t.Errorf("create before load = %v; want 503", err)
	}
	if n := 0; st.ExportAudit(ctx, store.AuditFilter{}, func(domain.AuditEntry) error { n++; return nil }) != nil || n != 0 {
		t.Errorf("audit rows written before load: %d", n)
	}
	if err := svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Authorize(ctx, api.AuthorizeRequest{AgentID: "agt_x", Action: "read", Resource: "x"}, ""); err != nil {
		t.Errorf("authorize after load = %v", err)
	}
}

func TestExpiryTooFarIsRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	far := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := e.cl.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "u", Name: "n", ExpiresAt: api.NewTimePtr(&far)})
	if ce := asClientError(err); ce == nil || ce.Status != 422 || ce.Code != "invalid_expiry" {
		t.Errorf("expiresAt in 2300 = %v; want 422 invalid_expiry", err)
	}
}

// Reviving an expired agent takes a slot like creating one.
func TestRevivingAnExpiredAgentRespectsMaxPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{MaxPerUser: 1})
	ctx := t.Context()
	soon := e.clock.Now().Add(time.Minute)
	old := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "old", ExpiresAt: api.NewTimePtr(&soon)})
	e.clock.Add(2 * time.Minute)
	e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "new"})
	later, _ := json.Marshal(e.clock.Now().Add(time.Hour))
	_, err := e.cl.UpdateAgent(ctx, old.ID, api.UpdateAgentRequest{ExpiresAt: later})
	if ce := asClientError(err); ce == nil || ce.Code != "agent_limit_reached" {
		t.Errorf("reviving past maxPerUser = %v; want agent_limit_reached", err)
	}
	name := "renamed"
	if _, err := e.cl.UpdateAgent(ctx, old.ID, api.UpdateAgentRequest{Name: &name}); err != nil {
		t.Errorf("renaming an expired agent = %v; want it allowed (no revival)", err)
	}
}

func TestCSVExportIsRFC4180AndDefusesFormulas(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{{Resource: "*", Actions: []string{"*"}}}})
	if _, err := e.cl.Authorize(t.Context(), api.AuthorizeRequest{AgentID: a.ID, Action: "=HYPERLINK(\"http://x\")", Resource: "@evil"}, ""); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := e.cl.ExportAudit(t.Context(), client.AuditFilter{Kind: "decision"}, "csv", &buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Count(out, "\r\n") != 2 {
		t.Errorf("export lines do not end in CRLF: %q", out)
	}
	if !strings.Contains(out, `"'=HYPERLINK(""http://x"")"`) || !strings.Contains(out, ",'@evil,") {
		t.Errorf("formula-like cells are not defused: %q", out)
	}
}

// A client that stops reading an export must not stall decisions, even on
// the single connection of ":memory:".
func TestStalledExportDoesNotBlockDecisions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{URL: ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, _ := engine.New(ctx)
	svc, _ := service.New(st, eng, service.Options{AdminKey: testAdminKey, Roles: testRoles(t)})
	if err := svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newServer(t, svc, sidecar.Options{}))
	defer srv.Close()
	for i := range 30000 {
		if _, err := st.InsertAudit(ctx, domain.AuditEntry{Action: "a", Resource: fmt.Sprint("r:", i, strings.Repeat("x", 200)),
			Result: domain.ResultDenied, Code: "c", Reason: "r"}, store.Consumption{}); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/audit/export?format=csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).Peek(10); err != nil {
		t.Fatal(err)
	}
	// The export is stuck on a full socket now; a decision must still pass.
	done := make(chan error, 1)
	go func() {
		_, err := client.New(srv.URL).WithAPIKey(testAdminKey).Authorize(context.Background(), api.AuthorizeRequest{AgentID: "agt_x", Action: "read", Resource: "x"}, "")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a decision hung behind a stalled export")
	}
}

// A runtime error in the policy (here, an extension whose complete rule has
// two values for one rare resource, which the load-time smoke test does not
// try) is an audited denial, not a 500 without a trace.
func TestPolicyErrorIsAnAuditedDenial(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{URL: ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.New(ctx, map[string]string{"conflict.rego": `package kavach.ext

v := 1 if input.resource == "special:case"

v := 2 if input.resource == "special:case"

deny contains {"code": "c", "reason": "r"} if v == 1
`})
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := service.New(st, eng, service.Options{AdminKey: testAdminKey, Roles: testRoles(t)})
	if err := svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newServer(t, svc, sidecar.Options{}))
	defer srv.Close()
	cl := client.New(srv.URL).WithAPIKey(testAdminKey)
	a, err := cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{{Resource: "*", Actions: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.Authorize(ctx, api.AuthorizeRequest{AgentID: a.ID, Action: "read", Resource: "special:case"}, "")
	if err != nil || res.Allowed || res.Code != "policy_error" || res.AuditID == "" {
		t.Fatalf("decision under a failing policy = %+v, %v; want an audited policy_error denial", res, err)
	}
	if res, _ := cl.Authorize(ctx, api.AuthorizeRequest{AgentID: a.ID, Action: "read", Resource: "x"}, ""); !res.Allowed {
		t.Errorf("a request the broken rule does not reach = %+v; want allowed", res)
	}
}

func TestQuotaIsNotMultipliedByDelegationOrReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	ctx := t.Context()
	limited := []api.Permission{{Resource: "api:x", Actions: []string{"call"}, Constraints: map[string]any{"maxCallsPerHour": 2}}}
	a := e.create(t, api.CreateAgentRequest{OwnerID: "alice", Name: "a", Permissions: limited})
	b := e.create(t, api.CreateAgentRequest{OwnerID: "alice", Name: "b", Permissions: []api.Permission{}})
	c := e.create(t, api.CreateAgentRequest{OwnerID: "alice", Name: "c", Permissions: []api.Permission{}})
	exp := e.clock.Now().Add(time.Hour)
	depth := 2
	if _, err := e.cl.Delegate(ctx, api.DelegateRequest{FromAgent: a.ID, ToAgent: b.ID, ExpiresAt: api.NewTimePtr(&exp), MaxDepth: &depth,
		Permissions: []api.Permission{{Resource: "api:x", Actions: []string{"call"}}}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := e.cl.Delegate(ctx, api.DelegateRequest{FromAgent: b.ID, ToAgent: c.ID, ExpiresAt: api.NewTimePtr(&exp), MaxDepth: &depth,
			Permissions: []api.Permission{{Resource: "api:x", Actions: []string{"call"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	allowed := 0
	for range 10 {
		res, err := e.cl.Authorize(ctx, api.AuthorizeRequest{AgentID: c.ID, Action: "call", Resource: "api:x"}, "")
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed {
			allowed++
		}
	}
	if allowed != 2 {
		t.Errorf("C, holding one limit-2 grant through three delegations, was allowed %d calls; want 2", allowed)
	}

	// Tightening a limit keeps the calls already counted.
	d := e.create(t, api.CreateAgentRequest{OwnerID: "bob", Name: "d", Permissions: []api.Permission{
		{Resource: "api:y", Actions: []string{"call"}, Constraints: map[string]any{"maxCallsPerHour": 3}}}})
	for range 3 {
		if res, _ := e.cl.Authorize(ctx, api.AuthorizeRequest{AgentID: d.ID, Action: "call", Resource: "api:y"}, ""); !res.Allowed {
			t.Fatalf("call under limit 3: %+v", res)
		}
	}
	tighter := []api.Permission{{Resource: "api:y", Actions: []string{"call"}, Constraints: map[string]any{"maxCallsPerHour": 2}}}
	if _, err := e.cl.UpdateAgent(ctx, d.ID, api.UpdateAgentRequest{Permissions: &tighter}); err != nil {
		t.Fatal(err)
	}
	if res, _ := e.cl.Authorize(ctx, api.AuthorizeRequest{AgentID: d.ID, Action: "call", Resource: "api:y"}, ""); res.Code != "rate_limited" {
		t.Errorf("after tightening 3 -> 2 with 3 calls made: %+v; want rate_limited", res)
	}
}

func TestInheritedApprovalGoesToTheDelegatorsOwner(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	ctx := t.Context()
	a := e.create(t, api.CreateAgentRequest{OwnerID: "alice", Name: "a", Permissions: []api.Permission{
		{Resource: "db:prod", Actions: []string{"drop"}, Constraints: map[string]any{"requireApproval": true}}}})
	m := e.create(t, api.CreateAgentRequest{OwnerID: "mallory", Name: "m", Permissions: []api.Permission{}})
	exp := e.clock.Now().Add(time.Hour)
	if _, err := e.cl.Delegate(ctx, api.DelegateRequest{FromAgent: a.ID, ToAgent: m.ID, ExpiresAt: api.NewTimePtr(&exp),
		Permissions: []api.Permission{{Resource: "db:prod", Actions: []string{"drop"}}}}); err != nil {
		t.Fatal(err)
	}
	res, err := e.cl.Authorize(ctx, api.AuthorizeRequest{AgentID: m.ID, Action: "drop", Resource: "db:prod"}, "")
	if err != nil || res.Code != "approval_required" {
		t.Fatalf("delegated gated call = %+v, %v", res, err)
	}
	appr, _ := e.cl.GetApproval(ctx, res.ApprovalID)
	if appr.OwnerID != "alice" {
		t.Errorf("approval filed under %q; want alice, whose permission requires it", appr.OwnerID)
	}
}

func TestControlCharactersAreRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, service.Options{})
	a := e.create(t, api.CreateAgentRequest{OwnerID: "u", Name: "n", Permissions: []api.Permission{{Resource: "*", Actions: []string{"*"}}}})
	for _, req := range []api.AuthorizeRequest{
		{AgentID: a.ID, Action: "read", Resource: "api:x\x00y"},
		{AgentID: a.ID, Action: "read", Resource: "x", Context: &api.RequestContext{UserAgent: "ua\x00"}},
	} {
		_, err := e.cl.Authorize(t.Context(), req, "")
		if ce := asClientError(err); ce == nil || ce.Status != 400 {
			t.Errorf("Authorize(%q) = %v; want 400", req.Resource, err)
		}
	}
	if _, err := e.cl.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "u", Name: "bad\x00name"}); asClientError(err) == nil {
		t.Error("a name with NUL was accepted")
	}
}
