package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of events and the webhook outbox: each change records its
// event, numbered in commit order, which each subscribed endpoint's cursor
// reaches (no delivery row is written for it); decision events only when
// asked for; a cursor is leased to one replica at a time and advanced only
// by its holder from where it was read, with the retries of what failed;
// a retry is leased to one replica at a time and its outcome recorded only
// by the lease holder; pruning keeps what is pending or not yet attempted.
func outboxTests() []storeTest {
	return []storeTest{
		{name: "EventsAndDeliveries", opens: testEventsAndDeliveries},
		{name: "ClaimsAreExclusive", opens: testClaimsAreExclusive, replicas: true},
		{name: "AttemptsAndPrune", opens: testAttemptsAndPrune},
		{name: "GroupCommittedDecisions", opens: testGroupCommittedDecisionEvents},
		{name: "CursorLeaseAndAdvance", opens: testCursorLeaseAndAdvance},
		{name: "CursorRace", opens: testCursorRace, replicas: true},
		{name: "PruneRespectsCursors", opens: testPruneRespectsCursors},
	}
}

// queueRetries makes endpoint's cursor pass every event it subscribes to,
// as if each first attempt had failed with 503 and were due again at next:
// a retry each.
func queueRetries(t *testing.T, s *Store, endpoint string, next time.Time) []domain.Event {
	t.Helper()
	ctx := t.Context()
	c, err := s.GetCursor(ctx, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, sub := range s.sinks.subs {
		if sub.Endpoint == endpoint {
			types = sub.Types
		}
	}
	evs, err := s.EventsSince(ctx, c.Seq, 0, EventFilter{Types: types}, 1000)
	if err != nil || len(evs) == 0 {
		t.Fatalf("EventsSince(cursor %d) = %d events, %v", c.Seq, len(evs), err)
	}
	if ok, err := s.LeaseCursor(ctx, "queue", endpoint, c.Seq, time.Minute); !ok || err != nil {
		t.Fatalf("LeaseCursor = %v, %v", ok, err)
	}
	var retries []Retry
	for _, e := range evs {
		retries = append(retries, Retry{Seq: e.Seq, EventAt: e.Time,
			Attempt: Attempt{At: s.now(), Status: 503, Error: "receiver answered 503", Next: next}})
	}
	if ok, err := s.AdvanceCursor(ctx, "queue", endpoint, c.Seq, evs[len(evs)-1].Seq, time.Minute, retries); !ok || err != nil {
		t.Fatalf("AdvanceCursor = %v, %v", ok, err)
	}
	if err := s.ReleaseCursor(ctx, "queue", endpoint); err != nil {
		t.Fatal(err)
	}
	return evs
}

func outboxStore(t *testing.T, url string, c *clock, decisions ...string) *Store {
	t.Helper()
	opts := Options{URL: url, Timeout: replicaTimeout, Subscriptions: []Subscription{
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
	// No delivery row: each endpoint's cursor, started at Open, reaches
	// the events it subscribes to.
	if ds, _, err := s.ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 10}); err != nil || len(ds) != 0 {
		t.Errorf("deliveries = %s, %v; want none (the cursors reach the events)", js(t, ds), err)
	}
	select {
	case <-s.Deliveries():
	default:
		t.Error("no nudge after events an endpoint subscribes to committed")
	}
	for ep, want := range map[string]string{"wh_a": "agent.created,authorize.denied", "wh_b": "agent.revoked"} {
		c, err := s.GetCursor(ctx, ep)
		if err != nil || c.Seq != 0 || c.LeaseOwner != "" {
			t.Fatalf("GetCursor(%s) = %s, %v; want at 0, unleased", ep, js(t, c), err)
		}
		var sub []string
		for _, x := range s.sinks.subs {
			if x.Endpoint == ep {
				sub = x.Types
			}
		}
		behind, _ := s.EventsSince(ctx, c.Seq, 0, EventFilter{Types: sub}, 10)
		var got []string
		for _, e := range behind {
			got = append(got, e.Type)
		}
		if strings.Join(got, ",") != want {
			t.Errorf("events after %s's cursor = %v; want %s", ep, got, want)
		}
	}
	if n, oldest, err := s.PendingDeliveries(ctx); n != 3 || !oldest.Equal(c.Now()) || err != nil {
		t.Errorf("PendingDeliveries = %d, %v, %v; want the 3 events not yet attempted", n, oldest, err)
	}
	// A change that fails records no event and queues nothing.
	if _, err := s.CreateAgent(ctx, newAgent("u", a.TokenHash), 0); err == nil {
		t.Fatal("CreateAgent(duplicate token) succeeded")
	}
	if n, _ := s.LatestEvent(ctx); n != evs[2].Seq {
		t.Errorf("LatestEvent = %d after a failed change; want %d", n, evs[2].Seq)
	}

	// With decisions asked for, allowed ones are recorded though nothing
	// subscribes to them, and queue nothing. A store opened later keeps the
	// endpoints' cursors where they are.
	s2 := outboxStore(t, b.url(t), c, domain.EventAuthorizeAllowed)
	if _, err := s2.InsertAudit(ctx, domain.AuditEntry{AgentID: "agt_x", Action: "read", Resource: "r", Result: domain.ResultAllowed, Code: "allowed", Reason: "r"}, Consumption{}); err != nil {
		t.Fatal(err)
	}
	evs2, _ := s2.EventsSince(ctx, 0, 0, EventFilter{}, 10)
	ds2, _, _ := s2.ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 10})
	if len(evs2) != 1 || evs2[0].Type != domain.EventAuthorizeAllowed || len(ds2) != 0 {
		t.Errorf("events %s, deliveries %s; want one authorize.allowed and no delivery", js(t, evs2), js(t, ds2))
	}
	if c, err := s2.GetCursor(ctx, "wh_a"); err != nil || c.Seq != 0 {
		t.Errorf("GetCursor(wh_a) on a second store = %s, %v; want still at 0", js(t, c), err)
	}
}

func testClaimsAreExclusive(t *testing.T, b backend) {
	url := b.url(t)
	stores := []*Store{outboxStore(t, url, nil), outboxStore(t, url, nil), outboxStore(t, url, nil)}
	for range 30 {
		contractAgents(t, stores[0], "u"+time.Now().Format("150405.000000000"), 1)
	}
	queueRetries(t, stores[0], "wh_a", time.Now())
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
	queueRetries(t, s, "wh_a", c.Now())
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
	if ds[0].Attempts != 1 || ds[0].LastStatus != 503 || !ds[0].CreatedAt.Equal(ds[0].Event.Time) {
		t.Errorf("a retry = %s; want the failed first attempt, created at its event's time", js(t, ds[0]))
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
	if d := state[ds[0].ID]; d.State != domain.DeliveryDelivered || d.Attempts != 2 || d.LastStatus != 204 || d.DeliveredAt == nil {
		t.Errorf("delivered = %s", js(t, d))
	}
	if d := state[ds[1].ID]; d.State != domain.DeliveryPending || d.Attempts != 2 || !d.NextAttemptAt.Equal(c.Now().Add(2*time.Second)) {
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
	if len(again) != 1 || again[0].Attempts != 2 {
		t.Errorf("after a release: claimed %s; want the delivery with its two attempts", js(t, again))
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
	// an old pending retry keeps its event (and those after it), though
	// the cursors, not followed since, do not.
	late := contractAgents(t, s, "late", 1)[0]
	queueRetries(t, s, "wh_a", c.Now().Add(time.Hour))
	c.Add(8 * 24 * time.Hour)
	fresh := contractAgents(t, s, "fresh", 1)[0]
	if _, err := s.PruneEvents(ctx, c.Now().Add(-7*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	left, _, _ := s.ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 10})
	evs, _ := s.EventsSince(ctx, 0, 0, EventFilter{}, 10)
	if len(left) != 1 || len(evs) != 2 || evs[0].AgentID != late.ID || evs[1].AgentID != fresh.ID {
		t.Errorf("after pruning: deliveries %s, events %s; want the pending retry, its event and the one after (first agents %d)", js(t, left), js(t, evs), len(agents))
	}
}

// Decisions committed together (group commit) write their events in
// multi-row statements: every denied one gets its event.
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
	// No delivery row: wh_a's cursor, at 0, reaches them all.
	if ds, _, err := s.ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 1000}); err != nil || len(ds) != 0 {
		t.Errorf("%d deliveries, %v; want none", len(ds), err)
	}
	if c, err := s.GetCursor(ctx, "wh_a"); err != nil || c.Seq != 0 {
		t.Errorf("GetCursor(wh_a) = %s, %v; want at 0", js(t, c), err)
	}
}

// A cursor is leased to one owner at a time and advanced only by its
// holder from the seq it read, with the retries of what failed in the same
// transaction; a holder that crashed between sending and advancing leaves
// the events to the next holder, who reads them under the same ids.
func testCursorLeaseAndAdvance(t *testing.T, b backend) {
	c := newClock()
	s := outboxStore(t, b.url(t), c)
	ctx := t.Context()
	contractAgents(t, s, "u", 3)
	evs, _ := s.EventsSince(ctx, 0, 0, EventFilter{}, 10)
	if len(evs) != 3 {
		t.Fatalf("%d events; want 3", len(evs))
	}
	lease := func(owner string, seq int64, want bool) {
		t.Helper()
		if ok, err := s.LeaseCursor(ctx, owner, "wh_a", seq, time.Minute); ok != want || err != nil {
			t.Errorf("LeaseCursor(%s, at %d) = %v, %v; want %v", owner, seq, ok, err, want)
		}
	}
	advance := func(owner string, from, to int64, want bool, retries ...Retry) {
		t.Helper()
		if ok, err := s.AdvanceCursor(ctx, owner, "wh_a", from, to, time.Minute, retries); ok != want || err != nil {
			t.Errorf("AdvanceCursor(%s, %d → %d) = %v, %v; want %v", owner, from, to, ok, err, want)
		}
	}
	failed := func(e domain.Event) Retry {
		return Retry{Seq: e.Seq, EventAt: e.Time, Attempt: Attempt{At: c.Now(), Status: 503, Error: "receiver answered 503",
			Next: c.Now().Add(2 * time.Second)}}
	}
	lease("a", 0, true)
	lease("b", 0, false) // a's lease is live
	lease("a", 5, false) // not where the cursor is
	advance("b", 0, 3, false, failed(evs[0]))
	if ds, _, _ := s.ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 10}); len(ds) != 0 {
		t.Errorf("a refused advance queued %s", js(t, ds))
	}
	advance("a", 0, evs[1].Seq, true, failed(evs[1]))
	advance("a", 0, evs[2].Seq, false) // from a seq it is no longer at
	cur, err := s.GetCursor(ctx, "wh_a")
	if err != nil || cur.Seq != evs[1].Seq || cur.LeaseOwner != "a" || !cur.LeaseUntil.Equal(c.Now().Add(time.Minute)) {
		t.Errorf("GetCursor = %s, %v; want at %d, leased to a", js(t, cur), err, evs[1].Seq)
	}
	ds, _, _ := s.ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 10})
	if len(ds) != 1 || ds[0].Event.ID != evs[1].ID || ds[0].State != domain.DeliveryPending || ds[0].Attempts != 1 ||
		ds[0].LastStatus != 503 || !ds[0].NextAttemptAt.Equal(c.Now().Add(2*time.Second)) {
		t.Errorf("retries = %s; want the second event's, pending after one attempt", js(t, ds))
	}

	// a sends the third event, then dies before advancing: once its lease
	// has run out, b takes the cursor and reads the event under its id.
	sent, _ := s.EventsSince(ctx, cur.Seq, 0, EventFilter{Types: []string{domain.EventAgentCreated}}, 10)
	c.Add(time.Minute + time.Second)
	lease("b", cur.Seq, true)
	again, _ := s.EventsSince(ctx, cur.Seq, 0, EventFilter{Types: []string{domain.EventAgentCreated}}, 10)
	if len(sent) != 1 || len(again) != 1 || again[0].ID != sent[0].ID {
		t.Fatalf("sent %s, sent again %s; want the one event, under one id", js(t, sent), js(t, again))
	}
	advance("a", cur.Seq, evs[2].Seq, false) // a's advance comes too late
	gone := failed(evs[2])
	gone.Failed, gone.Status, gone.Next = true, 410, time.Time{}
	advance("b", cur.Seq, evs[2].Seq, true, gone)
	advance("b", evs[2].Seq, evs[2].Seq, true, failed(evs[2])) // the same retry again: one row
	failedRows, _, _ := s.ListDeliveries(ctx, DeliveryFilter{State: domain.DeliveryFailed}, Page{Limit: 10})
	all, _, _ := s.ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 10})
	if len(failedRows) != 1 || failedRows[0].Event.ID != evs[2].ID || failedRows[0].LastStatus != 410 || len(all) != 2 {
		t.Errorf("failed = %s, all = %d; want the third event's 410, one row per event", js(t, failedRows), len(all))
	}
	// Released, the cursor is free at once.
	if err := s.ReleaseCursor(ctx, "b", "wh_a"); err != nil {
		t.Fatal(err)
	}
	lease("a", evs[2].Seq, true)

	// A new endpoint starts at the newest event; starting it again moves
	// nothing.
	if err := s.StartCursor(ctx, "wh_new"); err != nil {
		t.Fatal(err)
	}
	contractAgents(t, s, "more", 1)
	if err := s.StartCursor(ctx, "wh_new"); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.GetCursor(ctx, "wh_new"); err != nil || cur.Seq != evs[2].Seq {
		t.Errorf("GetCursor(wh_new) = %s, %v; want at %d, the newest event when it started", js(t, cur), err, evs[2].Seq)
	}
	if _, err := s.GetCursor(ctx, "wh_none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetCursor(unknown) = %v; want ErrNotFound", err)
	}
}

// Three replicas race to follow one cursor while events commit, with
// leases short enough to run out mid-pass: each event is passed by exactly
// one successful advance, every replica that sent an event sent it under
// the same id, and each failed event has one retry.
func testCursorRace(t *testing.T, b backend) {
	url := b.url(t)
	stores := []*Store{outboxStore(t, url, nil), outboxStore(t, url, nil), outboxStore(t, url, nil)}
	ctx := t.Context()
	const events = 120
	var produced sync.WaitGroup
	produced.Go(func() {
		for i := range events {
			if _, err := stores[i%3].InsertAudit(ctx, domain.AuditEntry{AgentID: "agt_x", Action: "read", Resource: "r",
				Result: domain.ResultDenied, Code: "c", Reason: "r"}, Consumption{}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	done := make(chan struct{})
	go func() { produced.Wait(); close(done) }()
	var mu sync.Mutex
	ids := map[int64]string{} // seq → the id it was sent under
	passed := map[int64]int{} // seq → successful advances past it
	refused := 0              // advances refused: the lease was taken over
	var wg sync.WaitGroup
	for i, s := range stores {
		owner := fmt.Sprintf("replica-%d", i)
		wg.Go(func() {
			for n := 0; ; n++ {
				finished := false
				select {
				case <-done:
					finished = true
				default:
				}
				c, err := s.GetCursor(ctx, "wh_a")
				if err != nil {
					t.Error(err)
					return
				}
				latest, _ := s.LatestEvent(ctx)
				if finished && c.Seq == latest {
					return
				}
				if ok, err := s.LeaseCursor(ctx, owner, "wh_a", c.Seq, 20*time.Millisecond); err != nil || !ok {
					time.Sleep(time.Millisecond)
					continue
				}
				evs, err := s.EventsSince(ctx, c.Seq, 0, EventFilter{Types: []string{domain.EventAuthorizeDenied}}, 7)
				if err != nil || len(evs) == 0 {
					continue
				}
				var retries []Retry
				mu.Lock()
				for _, e := range evs {
					if id, ok := ids[e.Seq]; ok && id != e.ID {
						t.Errorf("event %d sent under %s and %s", e.Seq, id, e.ID)
					}
					ids[e.Seq] = e.ID
					if e.Seq%5 == 0 {
						retries = append(retries, Retry{Seq: e.Seq, EventAt: e.Time, Attempt: Attempt{At: time.Now(), Status: 500,
							Error: "receiver answered 500", Next: time.Now().Add(time.Hour)}})
					}
				}
				mu.Unlock()
				if n%4 == 3 {
					time.Sleep(30 * time.Millisecond) // a slow receiver: the lease runs out
				}
				ok, err := s.AdvanceCursor(ctx, owner, "wh_a", c.Seq, evs[len(evs)-1].Seq, 20*time.Millisecond, retries)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, e := range evs {
					if ok {
						passed[e.Seq]++
					}
				}
				if !ok {
					refused++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d advances refused after a takeover", refused)
	all, _ := stores[0].EventsSince(ctx, 0, 0, EventFilter{}, 1000)
	if len(all) != events {
		t.Fatalf("%d events; want %d", len(all), events)
	}
	wantRetries := 0
	for _, e := range all {
		if passed[e.Seq] != 1 {
			t.Errorf("event %d passed by %d advances; want 1", e.Seq, passed[e.Seq])
		}
		if ids[e.Seq] != e.ID {
			t.Errorf("event %d sent under %q; want its id %s", e.Seq, ids[e.Seq], e.ID)
		}
		if e.Seq%5 == 0 {
			wantRetries++
		}
	}
	ds, _, err := stores[0].ListDeliveries(ctx, DeliveryFilter{}, Page{Limit: 1000})
	if err != nil || len(ds) != wantRetries {
		t.Errorf("%d retries, %v; want %d, one per failed event", len(ds), err, wantRetries)
	}
	for _, d := range ds {
		if d.Event.Seq%5 != 0 {
			t.Errorf("retry of event %d, which did not fail", d.Event.Seq)
		}
	}
}

// Pruning keeps the events after a cursor a replica followed within
// retention, ignores the cursors of endpoints gone longer, and those
// cursors are dropped unless the endpoint is still configured.
func testPruneRespectsCursors(t *testing.T, b backend) {
	c := newClock()
	s := outboxStore(t, b.url(t), c)
	ctx := t.Context()
	contractAgents(t, s, "u", 3)
	evs, _ := s.EventsSince(ctx, 0, 0, EventFilter{}, 10)
	if ok, _ := s.LeaseCursor(ctx, "a", "wh_a", 0, time.Minute); !ok {
		t.Fatal("LeaseCursor refused")
	}
	if ok, _ := s.AdvanceCursor(ctx, "a", "wh_a", 0, evs[0].Seq, time.Minute, nil); !ok {
		t.Fatal("AdvanceCursor refused")
	}
	c.Add(8 * 24 * time.Hour)
	contractAgents(t, s, "fresh", 1)
	// wh_a is followed (its holder renews the lease); wh_b, at 0, was
	// last followed 8 days ago.
	if ok, _ := s.LeaseCursor(ctx, "a", "wh_a", evs[0].Seq, time.Minute); !ok {
		t.Fatal("LeaseCursor refused")
	}
	before := c.Now().Add(-7 * 24 * time.Hour)
	if n, err := s.PruneEvents(ctx, before); n != 1 || err != nil {
		t.Errorf("PruneEvents = %d, %v; want 1: the event wh_a's cursor passed", n, err)
	}
	left, _ := s.EventsSince(ctx, 0, 0, EventFilter{}, 10)
	if len(left) != 3 || left[0].Seq != evs[1].Seq {
		t.Errorf("events left %s; want the two after wh_a's cursor and the new one", js(t, left))
	}
	if ok, _ := s.AdvanceCursor(ctx, "a", "wh_a", evs[0].Seq, left[2].Seq, time.Minute, nil); !ok {
		t.Fatal("AdvanceCursor refused")
	}
	if n, err := s.PruneEvents(ctx, before); n != 2 || err != nil {
		t.Errorf("PruneEvents after the cursor moved = %d, %v; want 2 (the newest is kept)", n, err)
	}
	if n, err := s.DropStaleCursors(ctx, []string{"wh_a"}, before); n != 1 || err != nil {
		t.Errorf("DropStaleCursors = %d, %v; want wh_b's", n, err)
	}
	if _, err := s.GetCursor(ctx, "wh_b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetCursor(wh_b) after dropping = %v; want ErrNotFound", err)
	}
	if n, err := s.DropStaleCursors(ctx, nil, c.Now().Add(time.Hour)); n != 1 || err != nil {
		t.Errorf("DropStaleCursors(none known) = %d, %v; want wh_a's", n, err)
	}
}
