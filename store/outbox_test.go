package store

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of events and the webhook outbox: each change records its
// event, numbered in commit order, with a pending delivery per endpoint
// subscribed to its type (none for others); decision events only when
// asked for; a delivery is leased to one replica at a time and its outcome
// recorded only by the lease holder; pruning keeps what is pending.
func outboxTests() []storeTest {
	return []storeTest{
		{name: "EventsAndDeliveries", opens: testEventsAndDeliveries},
		{name: "ClaimsAreExclusive", opens: testClaimsAreExclusive, replicas: true},
		{name: "AttemptsAndPrune", opens: testAttemptsAndPrune},
		{name: "GroupCommittedDecisions", opens: testGroupCommittedDecisionEvents},
	}
}

func outboxStore(t *testing.T, url string, c *clock, decisions ...string) *Store {
	t.Helper()
	opts := Options{URL: url, Subscriptions: []Subscription{
		{Endpoint: "wh_a", Types: []string{domain.EventAgentCreated, domain.EventAuthorizeDenied}},
		{Endpoint: "wh_b", Types: []string{domain.EventAgentRevoked}},
	}, DecisionEvents: decisions}
	if c != nil {
		opts.Now = c.Now
	}
	return openStore(t, opts)
}

func testEventsAndDeliveries(t *testing.T, b backend) {
	c := newClock()
	s := outboxStore(t, b.url(t), c)
	ctx := t.Context()
	a := contractAgents(t, s, "u", 1)[0]
	if _, err := s.RevokeAgent(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	for _, res := range []string{domain.ResultAllowed, domain.ResultDenied} {
		if _, err := s.InsertAudit(ctx, domain.AuditEntry{AgentID: a.ID, Action: "read", Resource: "r", Result: res, Code: "c", Reason: "r"}, Consumption{}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.EventsSince(ctx, 0, 0, EventFilter{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i, e := range evs {
		types = append(types, e.Type)
		if i > 0 && e.Seq <= evs[i-1].Seq {
			t.Errorf("seq %d after %d", e.Seq, evs[i-1].Seq)
		}
		if !strings.HasPrefix(e.ID, "msg_") || e.AgentID != a.ID || !e.Time.Equal(c.Now()) {
			t.Errorf("event %s", js(t, e))
		}
		if strings.Contains(string(e.Data), `"`+a.TokenHash+`"`) {
			t.Errorf("event %s holds the token hash: %s", e.Type, e.Data)
		}
	}
	// authorize.denied is subscribed, so recorded; authorize.allowed not.
	if got := strings.Join(types, ","); got != "agent.created,agent.revoked,authorize.denied" {
		t.Errorf("events = %s; want agent.created,agent.revoked,authorize.denied", got)
	}
	var data map[string]any
	_ = json.Unmarshal(evs[2].Data, &data)
	if data["agentId"] != a.ID || data["code"] != "c" || data["allowed"] != false {
		t.Errorf("authorize.denied data = %v", data)
	}
	only, err := s.EventsSince(ctx, evs[0].Seq, evs[2].Seq, EventFilter{Types: []string{domain.EventAgentRevoked}}, 100)
	if err != nil || len(only) != 1 || only[0].Type != domain.EventAgentRevoked {
		t.Errorf("EventsSince(after the first, revoked only) = %s, %v", js(t, only), err)
	}
	ds, next, err := s.ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 10})
	if err != nil || next != "" {
		t.Fatal(err, next)
	}
	got := map[string]string{}
	for _, d := range ds {
		got[d.Endpoint+" "+d.Event.Type] = d.State
	}
	want := map[string]string{"wh_a agent.created": "pending", "wh_a authorize.denied": "pending", "wh_b agent.revoked": "pending"}
	if js(t, got) != js(t, want) {
		t.Errorf("deliveries = %v; want %v", got, want)
	}
	// A change that fails records no event and queues nothing.
	if _, err := s.CreateAgent(ctx, newAgent("u", a.TokenHash), 0); err == nil {
		t.Fatal("CreateAgent(duplicate token) succeeded")
	}
	if n, _ := s.LatestEvent(ctx); n != evs[2].Seq {
		t.Errorf("LatestEvent = %d after a failed change; want %d", n, evs[2].Seq)
	}

	// With decisions asked for, allowed ones are recorded though nothing
	// subscribes to them, and queue nothing.
	s2 := outboxStore(t, b.url(t), c, domain.EventAuthorizeAllowed)
	if _, err := s2.InsertAudit(ctx, domain.AuditEntry{AgentID: "agt_x", Action: "read", Resource: "r", Result: domain.ResultAllowed, Code: "allowed", Reason: "r"}, Consumption{}); err != nil {
		t.Fatal(err)
	}
	evs2, _ := s2.EventsSince(ctx, 0, 0, EventFilter{}, 10)
	ds2, _, _ := s2.ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 10})
	if len(evs2) != 1 || evs2[0].Type != domain.EventAuthorizeAllowed || len(ds2) != 0 {
		t.Errorf("events %s, deliveries %s; want one authorize.allowed and no delivery", js(t, evs2), js(t, ds2))
	}
}

func testClaimsAreExclusive(t *testing.T, b backend) {
	url := b.url(t)
	stores := []*Store{outboxStore(t, url, nil), outboxStore(t, url, nil), outboxStore(t, url, nil)}
	for range 30 {
		contractAgents(t, stores[0], "u"+time.Now().Format("150405.000000000"), 1)
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			for {
				ds, err := s.ClaimDeliveries(t.Context(), "owner-"+string(rune('a'+i)), "wh_a", time.Minute, 4)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					claimed[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != 30 {
		t.Errorf("%d deliveries claimed; want 30", len(claimed))
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("delivery %s claimed %d times under live leases", id, n)
		}
	}
}

func testAttemptsAndPrune(t *testing.T, b backend) {
	c := newClock()
	s := outboxStore(t, b.url(t), c)
	ctx := t.Context()
	if n, err := s.PruneEvents(ctx, c.Now()); n != 0 || err != nil {
		t.Errorf("PruneEvents(no events) = %d, %v", n, err)
	}
	agents := contractAgents(t, s, "u", 3)
	if other, _ := s.ClaimDeliveries(ctx, "me", "wh_b", time.Minute, 10); len(other) != 0 {
		t.Errorf("claimed %d deliveries of another endpoint", len(other))
	}
	ds, err := s.ClaimDeliveries(ctx, "me", "wh_a", time.Minute, 10)
	if err != nil || len(ds) != 3 {
		t.Fatalf("ClaimDeliveries = %d, %v; want 3", len(ds), err)
	}
	if again, _ := s.ClaimDeliveries(ctx, "other", "wh_a", time.Minute, 10); len(again) != 0 {
		t.Errorf("claimed %d deliveries under a live lease", len(again))
	}
	// Another owner cannot record an attempt on a lease it does not hold.
	if n, err := s.RecordAttempts(ctx, "other", []Attempt{{ID: ds[0].ID, At: c.Now()}}); err != nil || n != 0 {
		t.Errorf("RecordAttempts(not the owner) = %d, %v; want 0", n, err)
	}
	n, err := s.RecordAttempts(ctx, "me", []Attempt{
		{ID: ds[0].ID, At: c.Now(), Status: 204},
		{ID: ds[1].ID, At: c.Now(), Status: 503, Error: "receiver answered 503", Next: c.Now().Add(2 * time.Second)},
		{ID: ds[2].ID, At: c.Now(), Error: strings.Repeat("é", 300), Failed: true},
	})
	if err != nil || n != 3 {
		t.Fatalf("RecordAttempts = %d, %v; want 3", n, err)
	}
	list, _, _ := s.ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 10})
	state := map[string]domain.WebhookDelivery{}
	for _, d := range list {
		state[d.ID] = d
	}
	if d := state[ds[0].ID]; d.State != domain.DeliveryDelivered || d.Attempts != 1 || d.LastStatus != 204 || d.DeliveredAt == nil {
		t.Errorf("delivered = %s", js(t, d))
	}
	if d := state[ds[1].ID]; d.State != domain.DeliveryPending || d.Attempts != 1 || !d.NextAttemptAt.Equal(c.Now().Add(2*time.Second)) {
		t.Errorf("retrying = %s", js(t, d))
	}
	if d := state[ds[2].ID]; d.State != domain.DeliveryFailed || len(d.LastError) > 200 || !strings.HasPrefix(d.LastError, "é") {
		t.Errorf("failed = %s (error %d bytes)", d.State, len(d.LastError))
	}
	// Not due yet; due after the wait.
	if due, _ := s.ClaimDeliveries(ctx, "me", "wh_a", time.Minute, 10); len(due) != 0 {
		t.Errorf("claimed %d before the retry is due", len(due))
	}
	c.Add(2 * time.Second)
	if due, _ := s.ClaimDeliveries(ctx, "me", "wh_a", time.Minute, 10); len(due) != 1 || due[0].ID != ds[1].ID {
		t.Errorf("claimed %s once due; want the retry", js(t, due))
	}
	pending, oldest, err := s.PendingDeliveries(ctx)
	if err != nil || pending != 1 || !oldest.Equal(ds[1].CreatedAt) {
		t.Errorf("PendingDeliveries = %d, %v, %v; want 1, %v", pending, oldest, err, ds[1].CreatedAt)
	}
	// A lease that ran out is taken over by another replica; released, a
	// delivery is due again at once, its attempts uncounted.
	c.Add(2 * time.Minute)
	taken, _ := s.ClaimDeliveries(ctx, "other", "wh_a", time.Minute, 10)
	if len(taken) != 1 {
		t.Fatalf("claimed %d after the lease ran out; want the one", len(taken))
	}
	if n, err := s.RecordAttempts(ctx, "other", []Attempt{{ID: taken[0].ID, Release: true}}); n != 1 || err != nil {
		t.Errorf("RecordAttempts(release) = %d, %v", n, err)
	}
	again, _ := s.ClaimDeliveries(ctx, "me", "wh_a", time.Minute, 10)
	if len(again) != 1 || again[0].Attempts != 1 {
		t.Errorf("after a release: claimed %s; want the delivery with its one attempt", js(t, again))
	}
	// An endpoint gone from every configuration: its old pending
	// deliveries are given up; a known endpoint's are not.
	if n, err := s.FailOrphanDeliveries(ctx, []string{"wh_a"}, c.Now()); n != 0 || err != nil {
		t.Errorf("FailOrphanDeliveries(wh_a known) = %d, %v; want 0", n, err)
	}
	if n, err := s.FailOrphanDeliveries(ctx, []string{"wh_b"}, c.Now()); n != 1 || err != nil {
		t.Errorf("FailOrphanDeliveries(wh_a gone) = %d, %v; want 1", n, err)
	}
	// Pruning after retention drops settled deliveries and their events;
	// an old pending delivery keeps its event (and those after it).
	late := contractAgents(t, s, "late", 1)[0]
	c.Add(8 * 24 * time.Hour)
	fresh := contractAgents(t, s, "fresh", 1)[0]
	if _, err := s.PruneEvents(ctx, c.Now().Add(-7*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	left, _, _ := s.ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 10})
	evs, _ := s.EventsSince(ctx, 0, 0, EventFilter{}, 10)
	if len(left) != 2 || len(evs) != 2 || evs[0].AgentID != late.ID || evs[1].AgentID != fresh.ID {
		t.Errorf("after pruning: deliveries %s, events %s; want the two pending ones and their events (first agents %d)", js(t, left), js(t, evs), len(agents))
	}
}

// Decisions committed together (group commit) write their events in
// multi-row statements: every denied one gets its event and delivery.
func testGroupCommittedDecisionEvents(t *testing.T, b backend) {
	s := outboxStore(t, b.url(t), nil)
	ctx := t.Context()
	var wg sync.WaitGroup
	const n = 250
	audits := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			res := domain.ResultDenied
			if i%5 == 0 {
				res = domain.ResultAllowed
			}
			e, err := s.InsertAudit(ctx, domain.AuditEntry{AgentID: "agt_x", Action: "read", Resource: "r", Result: res, Code: "c", Reason: "r"}, Consumption{})
			if err != nil {
				t.Error(err)
				return
			}
			if res == domain.ResultDenied {
				audits <- e.ID
			}
		})
	}
	wg.Wait()
	close(audits)
	want := map[string]bool{}
	for id := range audits {
		want[id] = true
	}
	evs, err := s.EventsSince(ctx, 0, 0, EventFilter{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, e := range evs {
		var d struct{ AuditID string }
		_ = json.Unmarshal(e.Data, &d)
		if e.Type != domain.EventAuthorizeDenied || !want[d.AuditID] || seen[e.Seq] {
			t.Errorf("event %s", js(t, e))
		}
		seen[e.Seq] = true
		delete(want, d.AuditID)
	}
	if len(want) != 0 || len(evs) != n*4/5 {
		t.Errorf("%d events; %d denials without one", len(evs), len(want))
	}
	ds, _, err := s.ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 1000})
	if err != nil || len(ds) != n*4/5 {
		t.Errorf("%d deliveries, %v; want %d", len(ds), err, n*4/5)
	}
	for _, d := range ds {
		if !seen[d.Event.Seq] || d.Endpoint != "wh_a" {
			t.Errorf("delivery %s", js(t, d))
		}
	}
}
