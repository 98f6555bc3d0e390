package tests

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/internal/mysqltest"
	"github.com/kavach-dev/kavach/internal/pgtest"
)

// Two secrets in the whsec_ form: the base64 of 32 bytes each.
var (
	secretA = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	secretB = "whsec_" + base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
)

// delivery is one request a receiver got.
type delivery struct {
	path                 string
	id, ts, sig, ctype   string
	body                 []byte
	status               int
	Type                 string          `json:"type"`
	Timestamp            string          `json:"timestamp"`
	Data                 json.RawMessage `json:"data"`
	legacyApprovalObject json.RawMessage
}

// receiver is a real HTTP server that records every delivery and answers
// per its fail function (nil: 204 to everything).
type hookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []delivery
	fail func(d delivery, attempt int) int // a non-2xx status to refuse
	seen map[string]int                    // attempts per path and webhook-id
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	r := &hookReceiver{seen: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		d := delivery{path: req.URL.Path, id: req.Header.Get("webhook-id"), ts: req.Header.Get("webhook-timestamp"),
			sig: req.Header.Get("webhook-signature"), ctype: req.Header.Get("Content-Type"), body: b, status: http.StatusNoContent}
		_ = json.Unmarshal(b, &d)
		var legacy struct {
			Approval json.RawMessage `json:"approval"`
		}
		_ = json.Unmarshal(b, &legacy)
		d.legacyApprovalObject = legacy.Approval
		r.mu.Lock()
		key := req.URL.Path + " " + d.id
		r.seen[key]++
		attempt := r.seen[key]
		if r.fail != nil {
			if st := r.fail(d, attempt); st != 0 {
				d.status = st
			}
		}
		r.got = append(r.got, d)
		r.mu.Unlock()
		w.WriteHeader(d.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// delivered returns the deliveries to path that were accepted (2xx).
func (r *hookReceiver) delivered(path string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivery
	for _, d := range r.got {
		if d.path == path && d.status < 300 {
			out = append(out, d)
		}
	}
	return out
}

// all returns every request to path, accepted or not.
func (r *hookReceiver) all(path string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivery
	for _, d := range r.got {
		if d.path == path {
			out = append(out, d)
		}
	}
	return out
}

// verify checks a delivery's signature as the Standard Webhooks
// specification says: the secret's base64 after whsec_ is the key; the
// signed content is "id.timestamp.body"; webhook-signature holds
// space-separated "v1,<base64>" entries, one of which must match; the
// timestamp must be within five minutes.
func verify(secret string, d delivery) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	if d.id == "" || d.ts == "" || d.sig == "" {
		return fmt.Errorf("missing headers: id %q, timestamp %q, signature %q", d.id, d.ts, d.sig)
	}
	ts, err := strconv.ParseInt(d.ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not Unix seconds", d.ts)
	}
	if skew := time.Since(time.Unix(ts, 0)); skew > 5*time.Minute || skew < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp %s is %s off", d.ts, skew)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(d.id + "." + d.ts + "." + string(d.body)))
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	for _, part := range strings.Fields(d.sig) {
		v, sig, ok := strings.Cut(part, ",")
		if ok && v == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("no signature in %q matches", d.sig)
}

func dataOf(t *testing.T, d delivery) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(d.Data, &m); err != nil {
		t.Fatalf("%s data %s: %v", d.Type, d.Data, err)
	}
	return m
}

// Every subscribed event arrives signed; an endpoint that refuses the first
// attempt gets the same webhook-id and body again; what an endpoint did not
// subscribe to is never sent; no body holds a secret; the deliveries are
// listed and counted.
func TestWebhooksDeliverEverySubscribedEvent(t *testing.T) {
	t.Parallel()
	rcv := newHookReceiver(t)
	rcv.fail = func(d delivery, attempt int) int {
		if d.path == "/flaky" && attempt == 1 {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	all := []string{"agent.created", "agent.updated", "agent.rotated", "agent.revoked", "agent.suspended",
		"delegation.created", "delegation.revoked", "authorize.denied", "approval.requested", "approval.resolved",
		"anomaly.detected", "key.created", "key.revoked"}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf(`webhooks:
  - url: %[1]s/all
    secret: %[2]s
    events: [%[3]s]
  - url: %[1]s/flaky
    secretEnv: FLAKY_WEBHOOK_SECRET
    previousSecret: %[2]s
    events: [agent.created]
approval:
  webhookUrl: %[1]s/legacy
anomaly:
  probingThreshold: 3
  suspendOn: [probing]
`, rcv.srv.URL, secretA, strings.Join(all, ", ")))
	s, err := startEnv(t, []string{"FLAKY_WEBHOOK_SECRET=" + secretB}, "--database", filepath.Join(dir, "kavach.db"), "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl := s.adminClient()
	ctx := t.Context()

	key := s.mintKey(t, "ci", "auditor")
	if _, err := cl.RevokeKey(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	parent := mustCreate(t, cl, perm("docs:*", "read"), constrained("deploy:prod", map[string]any{"requireApproval": true}, "execute"))
	child := mustCreate(t, cl)
	if _, err := cl.UpdateAgent(ctx, parent.ID, api.UpdateAgentRequest{Name: ptr("renamed")}); err != nil {
		t.Fatal(err)
	}
	del, err := cl.Delegate(ctx, api.DelegateRequest{FromAgent: parent.ID, ToAgent: child.ID,
		Permissions: []api.Permission{perm("docs:a", "read")}, ExpiresAt: ptr(api.NewTime(time.Now().Add(time.Hour)))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.RevokeDelegation(ctx, del.ID); err != nil {
		t.Fatal(err)
	}
	allowed := authz(t, cl, api.AuthorizeRequest{AgentID: parent.ID, Action: "read", Resource: "docs:x"})
	denied := authz(t, cl, api.AuthorizeRequest{AgentID: parent.ID, Action: "write", Resource: "docs:x"})
	if !allowed.Allowed || denied.Allowed {
		t.Fatalf("allowed %+v, denied %+v", allowed, denied)
	}
	ask := authz(t, cl, api.AuthorizeRequest{AgentID: parent.ID, Action: "execute", Resource: "deploy:prod"})
	if ask.Code != "approval_required" {
		t.Fatalf("approval call = %+v", ask)
	}
	if _, err := cl.ResolveApproval(ctx, ask.ApprovalID, true, api.ResolveApprovalRequest{}); err != nil {
		t.Fatal(err)
	}
	rotated, err := cl.RotateAgent(ctx, parent.ID)
	if err != nil {
		t.Fatal(err)
	}
	// probing: three resources never held, denied no_permission; suspends.
	prober := mustCreate(t, cl, perm("docs:*", "read"))
	for i := range 3 {
		authz(t, cl, api.AuthorizeRequest{AgentID: prober.ID, Action: "read", Resource: fmt.Sprintf("secrets:%d", i)})
	}
	waitFor(t, "the prober's suspension", func() bool {
		a, err := cl.GetAgent(ctx, prober.ID)
		return err == nil && a.Status == "suspended"
	})
	if _, err := cl.RevokeAgent(ctx, child.ID); err != nil {
		t.Fatal(err)
	}

	byType := func(typ string) []delivery {
		var out []delivery
		for _, d := range rcv.delivered("/all") {
			if d.Type == typ {
				out = append(out, d)
			}
		}
		return out
	}
	waitFor(t, "every subscribed event type at /all", func() bool {
		for _, typ := range all {
			if len(byType(typ)) == 0 {
				return false
			}
		}
		return true
	})
	secrets := []string{parent.Token, child.Token, prober.Token, rotated.Token, key.Key, adminKey,
		strings.TrimPrefix(secretA, "whsec_"), strings.TrimPrefix(secretB, "whsec_")}
	for _, d := range rcv.all("/all") {
		if err := verify(secretA, d); err != nil {
			t.Errorf("%s %s: %v", d.Type, d.id, err)
		}
		if err := verify(secretB, d); err == nil {
			t.Errorf("%s verifies with the other endpoint's secret", d.Type)
		}
		if d.ctype != "application/json" || !strings.HasPrefix(d.id, "msg_") || d.Timestamp == "" {
			t.Errorf("%s: content type %q, id %q, timestamp %q", d.Type, d.ctype, d.id, d.Timestamp)
		}
		for _, sec := range secrets {
			if strings.Contains(string(d.body), sec) {
				t.Errorf("%s body holds a secret: %s", d.Type, d.body)
			}
		}
	}
	// authorize.allowed is not subscribed: only the denied decisions came.
	for _, d := range rcv.all("/all") {
		if d.Type == "authorize.allowed" {
			t.Errorf("unsubscribed authorize.allowed delivered: %s", d.body)
		}
	}
	deniedData := map[string]bool{}
	for _, d := range byType("authorize.denied") {
		m := dataOf(t, d)
		deniedData[m["auditId"].(string)] = true
		if m["agentId"] == "" || m["code"] == "" || m["allowed"] != false {
			t.Errorf("authorize.denied data = %v", m)
		}
	}
	if !deniedData[denied.AuditID] || !deniedData[ask.AuditID] || deniedData[allowed.AuditID] {
		t.Errorf("authorize.denied audit IDs %v; want %s and %s, not the allowed %s", deniedData, denied.AuditID, ask.AuditID, allowed.AuditID)
	}
	if m := dataOf(t, byType("approval.requested")[0]); m["approvalId"] != ask.ApprovalID || m["agentId"] != parent.ID {
		t.Errorf("approval.requested data = %v", m)
	}
	if m := dataOf(t, byType("approval.resolved")[0]); m["approvalId"] != ask.ApprovalID || m["status"] != "approved" {
		t.Errorf("approval.resolved data = %v", m)
	}
	if m := dataOf(t, byType("agent.suspended")[0]); m["agentId"] != prober.ID {
		t.Errorf("agent.suspended data = %v", m)
	}
	if m := dataOf(t, byType("key.created")[0]); m["id"] != key.ID {
		t.Errorf("key.created data = %v", m)
	}
	for _, d := range byType("agent.created") {
		if m := dataOf(t, d); m["agentId"] == "" || m["actor"] == nil {
			t.Errorf("agent.created data = %v", m)
		}
	}

	// /flaky: only agent.created (3 agents), each refused once, then
	// delivered under the same id with the same body, signed with its own
	// secret.
	waitFor(t, "the three agent.created retried at /flaky", func() bool { return len(rcv.delivered("/flaky")) == 3 })
	for _, d := range rcv.all("/flaky") {
		if d.Type != "agent.created" {
			t.Errorf("/flaky got unsubscribed %s", d.Type)
		}
		// Rotating: signed with the new secret and the previous one.
		if err := verify(secretB, d); err != nil {
			t.Errorf("/flaky %s: %v", d.id, err)
		}
		if err := verify(secretA, d); err != nil || len(strings.Fields(d.sig)) != 2 {
			t.Errorf("/flaky %s with the previous secret: %v (signature %q)", d.id, err, d.sig)
		}
	}
	for _, ok := range rcv.delivered("/flaky") {
		var first *delivery
		for _, d := range rcv.all("/flaky") {
			if d.id == ok.id && d.status >= 300 {
				first = &d
				break
			}
		}
		if first == nil {
			t.Errorf("/flaky %s was delivered without the refused first attempt", ok.id)
			continue
		}
		if string(first.body) != string(ok.body) {
			t.Errorf("/flaky %s: the retry's body differs:\n%s\n%s", ok.id, first.body, ok.body)
		}
	}
	// The same event reaches both endpoints under one id.
	created := map[string]bool{}
	for _, d := range byType("agent.created") {
		created[d.id] = true
	}
	for _, d := range rcv.delivered("/flaky") {
		if !created[d.id] {
			t.Errorf("/flaky's agent.created %s is not an id /all received", d.id)
		}
	}
	// approval.webhookUrl: approval.requested, unsigned, with the request
	// as "approval" as before.
	waitFor(t, "the legacy approval webhook", func() bool { return len(rcv.delivered("/legacy")) == 1 })
	leg := rcv.delivered("/legacy")[0]
	var appr api.Approval
	if err := json.Unmarshal(leg.legacyApprovalObject, &appr); err != nil || appr.ID != ask.ApprovalID || leg.Type != "approval.requested" || leg.sig != "" {
		t.Errorf("legacy delivery: type %s, signature %q, approval %s (%v)", leg.Type, leg.sig, leg.legacyApprovalObject, err)
	}

	// GET /v1/webhooks/deliveries (admin only) lists them; /metrics counts.
	waitFor(t, "no pending deliveries", func() bool {
		l, err := cl.ListWebhookDeliveries(ctx, client.DeliveryFilter{State: "pending"})
		return err == nil && len(l.Deliveries) == 0
	})
	flaky, err := cl.ListAllWebhookDeliveries(ctx, client.DeliveryFilter{Type: "agent.created", State: "delivered"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	retried := 0
	for _, d := range flaky.Deliveries {
		if d.Attempts == 2 && d.LastStatus == 204 && d.DeliveredAt != nil {
			retried++
		}
		if strings.Contains(d.URL, "/flaky") || strings.Contains(d.URL, "/all") {
			t.Errorf("delivery %s shows the URL's path: %s", d.ID, d.URL)
		}
	}
	if retried != 3 {
		t.Errorf("deliveries of agent.created with 2 attempts: %d; want 3 (%+v)", retried, flaky.Deliveries)
	}
	auditor := client.New(s.URL).WithAPIKey(s.mintKey(t, "aud", "auditor").Key)
	if _, err := auditor.ListWebhookDeliveries(ctx, client.DeliveryFilter{}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("auditor listing deliveries: %v; want 403", err)
	}
	resp, err := keyed(adminKey).Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(b), `kavach_webhook_attempts_total{endpoint="wh_`) || !strings.Contains(string(b), `outcome="retried"} 3`) {
		t.Errorf("/metrics lacks the webhook counters:\n%s", grepLines(string(b), "webhook"))
	}
}

func ptr[T any](v T) *T { return &v }

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Events committed while the receiver is down survive a SIGKILL of the
// sidecar: the next process delivers them, under the ids the first
// attempts carried.
func TestWebhooksSurviveSIGKILL(t *testing.T) {
	t.Parallel()
	rcv := newHookReceiver(t)
	var down sync.Mutex
	refusing := true
	rcv.fail = func(delivery, int) int {
		down.Lock()
		defer down.Unlock()
		if refusing {
			return http.StatusBadGateway
		}
		return 0
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf("webhooks:\n  - url: %s/hook\n    secret: %s\n    events: [agent.created, agent.revoked]\n", rcv.srv.URL, secretA))
	db := filepath.Join(dir, "kavach.db")
	s := start(t, "--database", db, "--config", cfg)
	cl := s.adminClient()
	var ids []string
	for range 5 {
		a := mustCreate(t, cl)
		ids = append(ids, a.ID)
	}
	// The five refused once, and the refusals recorded; then three more
	// events, committed, and the kill at once (in flight or not yet tried).
	waitFor(t, "a recorded refused attempt of each event", func() bool {
		l, err := cl.ListWebhookDeliveries(t.Context(), client.DeliveryFilter{State: "pending"})
		if err != nil || len(l.Deliveries) != 5 {
			return false
		}
		for _, d := range l.Deliveries {
			if d.Attempts == 0 || d.LastStatus != http.StatusBadGateway {
				return false
			}
		}
		return true
	})
	for range 3 {
		a := mustCreate(t, cl)
		ids = append(ids, a.ID)
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
	attempted := map[string]bool{}
	for _, d := range rcv.all("/hook") {
		attempted[d.id] = true
	}
	down.Lock()
	refusing = false
	down.Unlock()

	// A delivery cut by the kill mid-attempt waits out its lease (30 s).
	s2 := start(t, "--database", db, "--config", cfg)
	deadline := time.Now().Add(90 * time.Second)
	for len(rcv.delivered("/hook")) < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 8 events delivered 90 s after the restart", len(rcv.delivered("/hook")))
		}
		time.Sleep(100 * time.Millisecond)
	}
	agents := map[string]bool{}
	for _, d := range rcv.delivered("/hook") {
		if err := verify(secretA, d); err != nil {
			t.Error(err)
		}
		agents[dataOf(t, d)["agentId"].(string)] = true
	}
	for _, id := range ids {
		if !agents[id] {
			t.Errorf("agent.created of %s never delivered", id)
		}
	}
	// The five attempted before the kill came under the ids they had then.
	again := 0
	for _, d := range rcv.delivered("/hook") {
		if attempted[d.id] {
			again++
		}
	}
	if again < 5 {
		t.Errorf("%d deliveries after the restart carry an id attempted before the kill; want at least 5", again)
	}
	s2.stop(t)
}

// Two replicas on one PostgreSQL (or MySQL) database, both delivering:
// every event reaches the endpoint, each under one id, whichever replica
// made it.
func TestWebhooksAcrossReplicasOnPostgres(t *testing.T) {
	t.Parallel()
	testWebhooksAcrossReplicas(t, pgtest.URL(t))
}

func TestWebhooksAcrossReplicasOnMySQL(t *testing.T) {
	t.Parallel()
	testWebhooksAcrossReplicas(t, mysqltest.URL(t))
}

func testWebhooksAcrossReplicas(t *testing.T, db string) {
	rcv := newHookReceiver(t)
	cfg := filepath.Join(t.TempDir(), "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf("webhooks:\n  - url: %s/hook\n    secret: %s\n    events: [agent.created, authorize.denied]\n", rcv.srv.URL, secretA))
	a := start(t, "--database", db, "--config", cfg)
	b := start(t, "--database", db, "--config", cfg)
	ca, cb := a.adminClient(), b.adminClient()
	audits := map[string]bool{}
	for i := range 20 {
		cl := ca
		if i%2 == 1 {
			cl = cb
		}
		ag, err := cl.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: fmt.Sprintf("owner-%d", i), Name: "n",
			Permissions: []api.Permission{perm("docs:*", "read")}})
		if err != nil {
			t.Fatal(err)
		}
		res := authz(t, cl, api.AuthorizeRequest{AgentID: ag.ID, Action: "write", Resource: "docs:x"})
		audits[res.AuditID] = true
	}
	waitFor(t, "40 events delivered", func() bool { return len(rcv.delivered("/hook")) >= 40 })
	time.Sleep(2 * time.Second)    // a duplicate would come within a poll
	idsOf := map[string][]string{} // the event (its agent or audit row) → the ids it came under
	for _, d := range rcv.delivered("/hook") {
		m := dataOf(t, d)
		ev := d.Type + " " + fmt.Sprint(m["agentId"])
		if d.Type == "authorize.denied" {
			ev = d.Type + " " + m["auditId"].(string)
			if !audits[m["auditId"].(string)] {
				t.Errorf("authorize.denied of unknown audit row %v", m["auditId"])
			}
		}
		if !slices.Contains(idsOf[ev], d.id) {
			idsOf[ev] = append(idsOf[ev], d.id)
		}
		if err := verify(secretA, d); err != nil {
			t.Error(err)
		}
	}
	if len(idsOf) != 40 {
		t.Errorf("%d distinct events delivered; want 40", len(idsOf))
	}
	for ev, ids := range idsOf {
		if len(ids) != 1 {
			t.Errorf("%s delivered under %d ids: %v", ev, len(ids), ids)
		}
	}
	if n := len(rcv.delivered("/hook")); n != 40 {
		t.Logf("%d deliveries for 40 events (at least once: a duplicate keeps its id)", n)
	}
}

// GET /v1/events streams events as SSE to an auditor, resumes after
// Last-Event-ID, and refuses a decider.
func TestEventStream(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	cl := s.adminClient()
	ctx := t.Context()
	auditor := client.New(s.URL).WithAPIKey(s.mintKey(t, "aud", "auditor").Key)
	decider := client.New(s.URL).WithAPIKey(s.mintKey(t, "dec", "decider").Key)
	if err := decider.StreamEvents(ctx, client.EventStream{}, func(api.Event) error { return nil }); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("decider's stream: %v; want 403", err)
	}

	got := make(chan api.Event, 100)
	streamCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- auditor.StreamEvents(streamCtx, client.EventStream{Types: []string{"agent.created", "agent.revoked"}},
			func(ev api.Event) error { got <- ev; return nil })
	}()
	time.Sleep(300 * time.Millisecond) // the stream starts at the next event
	first := mustCreate(t, cl)
	ev := <-got
	if ev.Type != "agent.created" || ev.Seq == 0 || !strings.HasPrefix(ev.ID, "msg_") {
		t.Fatalf("first event = %+v", ev)
	}
	var m map[string]any
	_ = json.Unmarshal(ev.Data, &m)
	if m["agentId"] != first.ID {
		t.Errorf("event data = %v; want agent %s", m, first.ID)
	}
	stop()
	<-done

	// Missed while disconnected: resumed with Last-Event-ID.
	for range 3 {
		mustCreate(t, cl)
	}
	if _, err := cl.RevokeAgent(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	var resumed []api.Event
	streamCtx, stop = context.WithCancel(ctx)
	defer stop()
	err := auditor.StreamEvents(streamCtx, client.EventStream{After: strconv.FormatInt(ev.Seq, 10)}, func(e api.Event) error {
		resumed = append(resumed, e)
		if len(resumed) == 4 {
			stop()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i, e := range resumed {
		types = append(types, e.Type)
		if i > 0 && e.Seq <= resumed[i-1].Seq {
			t.Errorf("seq out of order: %d after %d", e.Seq, resumed[i-1].Seq)
		}
	}
	if strings.Join(types, ",") != "agent.created,agent.created,agent.created,agent.revoked" {
		t.Errorf("resumed events = %v; want the three creations and the revocation", types)
	}

	// A key revoked while its stream is open ends the stream.
	doomed := s.mintKey(t, "doomed", "auditor")
	ended := make(chan error, 1)
	go func() {
		ended <- client.New(s.URL).WithAPIKey(doomed.Key).StreamEvents(ctx, client.EventStream{}, func(api.Event) error { return nil })
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := cl.RevokeKey(ctx, doomed.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Error("the stream of a revoked key is still open after 30s")
	}

	// ?follow=false ends once caught up: a script's snapshot.
	resp, err := keyed(adminKey).Get(s.URL + "/v1/events?after=0&follow=false&types=agent.revoked")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || strings.Count(string(b), "event: agent.revoked") != 1 {
		t.Errorf("snapshot: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	resp, err = keyed(adminKey).Get(s.URL + "/v1/events?types=agent.bogus")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("unknown type: %d; want 400", resp.StatusCode)
	}
}

// Clients that stop reading their streams neither hold the sidecar's
// shutdown nor its exit code (review finding: SIGTERM took 10 s, exit 1).
func TestEventStreamSlowReadersDoNotHoldShutdown(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	cl := s.adminClient()
	big := strings.Repeat("x", 15<<10)
	for i := range 300 {
		if _, err := cl.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: fmt.Sprintf("o-%d", i), Name: "n",
			Permissions: []api.Permission{perm("docs:*", "read")}, Metadata: map[string]any{"blob": big}}); err != nil {
			t.Fatal(err)
		}
	}
	host := strings.TrimPrefix(s.URL, "http://")
	for range 3 {
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		c, err := d.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /v1/events?after=0 HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", host, adminKey)
		if line, _ := bufio.NewReader(c).ReadString('\n'); !strings.Contains(line, "200") {
			t.Fatalf("stream: %q", line)
		}
	}
	time.Sleep(2 * time.Second) // the handlers fill the socket buffers and block
	began := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatal("no exit within 60 s of SIGTERM")
	}
	// Shutdown waits up to 10 s for calls in flight: the streams must not
	// be among them.
	if code, took := s.cmd.ProcessState.ExitCode(), time.Since(began); code != 0 || took > 8*time.Second {
		t.Errorf("SIGTERM with 3 streams that stopped reading: exit %d after %s; want 0, before the 10 s shutdown bound", code, took.Round(100*time.Millisecond))
	}
}

// During a rolling configuration change, a replica that does not know an
// endpoint yet leaves its deliveries to the replicas that do (review
// finding: it failed them for good).
func TestWebhooksRollingConfigChange(t *testing.T) {
	t.Parallel()
	rcv := newHookReceiver(t)
	rcv.fail = func(_ delivery, attempt int) int {
		if attempt == 1 {
			return http.StatusServiceUnavailable // one transient failure each, then fine
		}
		return 0
	}
	db := pgtest.URL(t)
	dir := t.TempDir()
	withHook, without := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	writeFile(t, withHook, fmt.Sprintf("webhooks:\n  - url: %s/hook\n    secret: %s\n    events: [agent.created]\n", rcv.srv.URL, secretA))
	writeFile(t, without, "log:\n  level: info\n")
	a := start(t, "--database", db, "--config", withHook)
	start(t, "--database", db, "--config", without)
	cl := a.adminClient()
	for i := range 10 {
		if _, err := cl.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: fmt.Sprintf("o-%d", i), Name: "n",
			Permissions: []api.Permission{perm("docs:*", "read")}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the ten retried deliveries recorded", func() bool {
		l, err := cl.ListAllWebhookDeliveries(t.Context(), client.DeliveryFilter{State: "delivered"}, 0)
		return err == nil && len(l.Deliveries) == 10
	})
	l, err := cl.ListAllWebhookDeliveries(t.Context(), client.DeliveryFilter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range l.Deliveries {
		if d.State != "delivered" || d.Attempts != 2 {
			t.Errorf("delivery %s: %s after %d attempts (%s); want delivered after 2", d.ID, d.State, d.Attempts, d.LastError)
		}
	}
	if n := len(rcv.delivered("/hook")); n != 10 {
		t.Errorf("the receiver accepted %d deliveries; want 10", n)
	}
}
