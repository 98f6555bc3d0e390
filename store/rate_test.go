package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of rate-limit events: counting, pruning, and a limit that
// holds across replicas.
func rateEventTests() []storeTest {
	return []storeTest{
		{name: "PruneRateEvents", fn: testPruneRateEvents},
		{name: "ExactAcrossReplicas", opens: testRateLimitIsExactAcrossReplicas, replicas: true},
	}
}

func testPruneRateEvents(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	start := c.Now()
	call := func(agent, resource string, keys ...string) {
		t.Helper()
		var rates []RateEvent
		for _, k := range keys {
			rates = append(rates, RateEvent{AgentID: agent, PermKey: k, Resource: resource, Limit: 1000})
		}
		e := domain.AuditEntry{AgentID: agent, Action: "call", Resource: resource, Result: domain.ResultAllowed, Code: "allowed", Reason: "ok"}
		if _, err := s.InsertAudit(ctx, e, Consumption{Rates: rates}); err != nil {
			t.Fatalf("InsertAudit(%s, %s, %v) = %v", agent, resource, keys, err)
		}
	}
	// Ten events, at start, +10m, +20m, +30m, +40m.
	call("agt_a", "r", "k1", "k2")
	c.Add(10 * time.Minute)
	call("agt_a", "r", "k1")
	call("agt_b", "r", "k1")
	c.Add(10 * time.Minute)
	cut := c.Now() // start+20m
	call("agt_a", "r", "k1")
	call("agt_a", "r2", "k1")
	c.Add(10 * time.Minute)
	call("agt_a", "r", "k1", "k2")
	c.Add(10 * time.Minute)
	call("agt_a", "r", "k1")
	call("agt_b", "r", "k1")

	type key struct{ agent, resource string }
	series := []key{{"agt_a", "r"}, {"agt_b", "r"}, {"agt_a", "r2"}, {"agt_c", "r"}}
	counts := func(since time.Time) map[key]map[string]int {
		t.Helper()
		out := map[key]map[string]int{}
		for _, k := range series {
			n, err := s.CountCalls(ctx, k.agent, k.resource, since)
			if err != nil {
				t.Fatalf("CountCalls(%s, %s, %s) = %v", k.agent, k.resource, since, err)
			}
			out[k] = n
		}
		return out
	}
	check := func(since time.Time, want map[key]map[string]int) {
		t.Helper()
		got := counts(since)
		for _, k := range series {
			if !maps.Equal(got[k], want[k]) && (len(got[k]) != 0 || len(want[k]) != 0) {
				t.Errorf("CountCalls(%s, %s, %s) = %v; want %v", k.agent, k.resource, since.Sub(start), got[k], want[k])
			}
		}
	}
	ever := start.Add(-time.Millisecond)
	check(ever, map[key]map[string]int{
		{"agt_a", "r"}:  {"k1": 5, "k2": 2},
		{"agt_b", "r"}:  {"k1": 2},
		{"agt_a", "r2"}: {"k1": 1},
	})
	sinceCut := counts(cut)

	prune := func(before time.Time, want int64) {
		t.Helper()
		if n, err := s.PruneRateEvents(ctx, before); err != nil || n != want {
			t.Errorf("PruneRateEvents(start+%s) = %d, %v; want %d", before.Sub(start), n, err, want)
		}
	}
	prune(ever, 0) // nothing is older than the first event

	// The cut-off is the start of a window: PruneRateEvents(t) removes
	// exactly the events that CountCalls(…, since=t) no longer counts, the
	// ones at or before t. (Windows are open at their start: CountCalls and
	// the limit check in InsertAudit count at > since.) Events after t stay.
	prune(cut, 6)
	check(ever, map[key]map[string]int{
		{"agt_a", "r"}: {"k1": 2, "k2": 1},
		{"agt_b", "r"}: {"k1": 1},
	})
	if got := counts(cut); fmt.Sprint(got) != fmt.Sprint(sinceCut) {
		t.Errorf("CountCalls(since=cut-off) after PruneRateEvents(cut-off) = %v; want unchanged %v", got, sinceCut)
	}
	prune(cut, 0) // again: nothing left to prune

	// The window still counts what is left, and new calls.
	call("agt_a", "r", "k1")
	check(c.Now().Add(-RateWindow), map[key]map[string]int{
		{"agt_a", "r"}: {"k1": 3, "k2": 1},
		{"agt_b", "r"}: {"k1": 1},
	})
	prune(c.Now().Add(time.Minute), 5)
	check(ever, map[key]map[string]int{})
}

// Two replicas racing for one quota: the database admits exactly the limit.
func testRateLimitIsExactAcrossReplicas(t *testing.T, be backend) {
	a, b := be.pair(t)
	var allowed, limited atomic.Int32
	var wg sync.WaitGroup
	for i := range 50 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			_, err := s.InsertAudit(context.Background(), domain.AuditEntry{AgentID: "agt_x", Action: "call", Resource: "r", Result: domain.ResultAllowed, Code: "allowed", Reason: "r"},
				Consumption{Rates: []RateEvent{{AgentID: "agt_x", PermKey: "k", Resource: "r", Limit: 10}}})
			switch {
			case err == nil:
				allowed.Add(1)
			case errors.Is(err, ErrRateLimited):
				limited.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 10 || limited.Load() != 40 {
		t.Errorf("50 calls on two replicas under a limit of 10: %d allowed, %d limited", allowed.Load(), limited.Load())
	}
	counts, err := a.CountCalls(t.Context(), "agt_x", "r", time.Now().Add(-time.Hour))
	if err != nil || counts["k"] != 10 {
		t.Errorf("CountCalls = %v, %v; want k=10", counts, err)
	}
	page, _, _ := b.QueryAudit(t.Context(), AuditFilter{Limit: 100})
	if len(page) != 10 {
		t.Errorf("audit rows = %d; want 10 (a refused call writes nothing)", len(page))
	}
}
