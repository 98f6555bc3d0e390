package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of the audit log: paging, filters and export, the group
// commit (every row acknowledged is committed, also when the store closes
// under load, and from two stores at once) and its counters.
func auditTests() []storeTest {
	return []storeTest{
		{name: "QueryAndExport", fn: testAuditQueryAndExport},
		{name: "ConcurrentWritesAllCommit", fn: testConcurrentAuditWritesAllCommit},
		{name: "GroupCommitStats", fn: testGroupCommitStats},
		{name: "TwoStoresOnOneDatabase", opens: testTwoStoresOnOneDatabase, replicas: true},
		{name: "CloseDrainsTheQueue", opens: testCloseDrainsTheAuditQueue, replicas: true},
	}
}

func testAuditQueryAndExport(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	var ids []string
	for i := range 25 {
		e := domain.AuditEntry{AgentID: fmt.Sprint("agt_", i%3), OwnerID: fmt.Sprint("user-", i%2), Action: "read",
			Resource: "r", Result: domain.ResultAllowed, Code: "allowed", Reason: "ok", DurationUS: int64(i)}
		if i%5 == 0 {
			e.Result, e.Code = domain.ResultDenied, "no_permission"
			e.Arguments = []byte(`{"path":"a,\"b\"\nc"}`)
		}
		got, err := s.InsertAudit(ctx, e, Consumption{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got.ID)
		c.Add(time.Second)
	}
	// Paging newest first visits every row once.
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		entries, next, err := s.QueryAudit(ctx, AuditFilter{Limit: 10, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			seen = append(seen, e.ID)
		}
		if next == "" {
			if pages != 2 {
				t.Errorf("pages = %d; want 3", pages+1)
			}
			break
		}
		cursor = next
	}
	rev := slices.Clone(ids)
	slices.Reverse(rev)
	if !slices.Equal(seen, rev) {
		t.Errorf("paged IDs = %v; want %v", seen, rev)
	}
	start := fromMillis(toMillis(newClock().Now()))
	for _, tt := range []struct {
		f    AuditFilter
		want int
	}{
		{AuditFilter{AgentID: "agt_0"}, 9},
		{AuditFilter{OwnerID: "user-1"}, 12},
		{AuditFilter{Result: domain.ResultDenied}, 5},
		{AuditFilter{Result: domain.ResultDenied, AgentID: "agt_0"}, 2},
		{AuditFilter{Since: start.Add(10 * time.Second)}, 15},
		{AuditFilter{Since: start.Add(10 * time.Second), Until: start.Add(12 * time.Second)}, 2},
	} {
		tt.f.Limit = 100
		entries, _, err := s.QueryAudit(ctx, tt.f)
		if err != nil || len(entries) != tt.want {
			t.Errorf("QueryAudit(%+v) = %d rows, %v; want %d", tt.f, len(entries), err, tt.want)
		}
	}
	var exported []string
	err := s.ExportAudit(ctx, AuditFilter{Limit: 1}, func(e domain.AuditEntry) error {
		exported = append(exported, e.ID)
		if e.Result == domain.ResultDenied && string(e.Arguments) != `{"path":"a,\"b\"\nc"}` {
			t.Errorf("arguments = %s; want them back verbatim", e.Arguments)
		}
		return nil
	})
	if err != nil || !slices.Equal(exported, ids) {
		t.Errorf("ExportAudit = %d rows, %v; want all %d oldest first", len(exported), err, len(ids))
	}
	stop := errors.New("stop")
	if err := s.ExportAudit(ctx, AuditFilter{}, func(domain.AuditEntry) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ExportAudit callback error = %v; want it returned", err)
	}
}

func testConcurrentAuditWritesAllCommit(t *testing.T, s *Store, _ *clock) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			_, err := s.InsertAudit(ctx, domain.AuditEntry{Action: "a", Resource: "r", Result: domain.ResultDenied, Code: "c", Reason: "r"}, Consumption{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log`).Scan(&n); err != nil || n != 100 {
		t.Errorf("audit rows = %d, %v; want 100", n, err)
	}
}

// Two stores writing to one database at once (two processes on one
// SQLite file, two replicas on PostgreSQL): every row lands.
func testTwoStoresOnOneDatabase(t *testing.T, be backend) {
	ctx := t.Context()
	a, b := be.pair(t)
	var wg sync.WaitGroup
	for i := range 40 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			if _, err := s.InsertAudit(ctx, domain.AuditEntry{Action: "a", Resource: "r", Result: domain.ResultAllowed, Code: "c", Reason: "r"}, Consumption{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	entries, _, err := b.QueryAudit(ctx, AuditFilter{Limit: 100})
	if err != nil || len(entries) != 40 {
		t.Errorf("rows seen by the second store = %d, %v; want 40", len(entries), err)
	}
}

// Closing the store while writers are queuing: every caller gets an answer,
// and every row acknowledged is on disk.
func testCloseDrainsTheAuditQueue(t *testing.T, be backend) {
	for round := range 5 {
		url := be.url(t)
		s, err := Open(t.Context(), Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var acked atomic.Int32
		// Close comes once every writer is in its loop: each has had a row
		// acknowledged (or given up), and so is queuing its next.
		const writers = 32
		var looping sync.WaitGroup
		looping.Add(writers)
		for range writers {
			wg.Go(func() {
				inLoop := sync.OnceFunc(looping.Done)
				defer inLoop()
				for {
					if _, err := s.InsertAudit(context.Background(), domain.AuditEntry{Action: "a", Resource: "r", Result: domain.ResultDenied, Code: "c", Reason: "r"}, Consumption{}); err != nil {
						return
					}
					acked.Add(1)
					inLoop()
				}
			})
		}
		allLooping := make(chan struct{})
		go func() { looping.Wait(); close(allLooping) }()
		select {
		case <-allLooping:
		case <-time.After(20 * time.Second):
			_ = s.Close()
			t.Fatalf("round %d: after 20s, %d rows acknowledged and some writer has none", round, acked.Load())
		}
		done := make(chan struct{})
		go func() { _ = s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("Close hung")
		}
		waited := make(chan struct{})
		go func() { wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(20 * time.Second):
			t.Fatal("writers hung after Close")
		}
		r, err := Open(t.Context(), Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		_ = r.ExportAudit(t.Context(), AuditFilter{}, func(domain.AuditEntry) error { n++; return nil })
		_ = r.Close()
		if n < int(acked.Load()) {
			t.Fatalf("round %d: %d rows acknowledged, %d on disk", round, acked.Load(), n)
		}
	}
}

// The group commit's counters (for /metrics) count what it committed and
// refused, and nothing else.
func testGroupCommitStats(t *testing.T, s *Store, _ *clock) {
	ctx := t.Context()
	if st := s.AuditStats(); st.Rows != 0 || st.Batches != 0 || st.Failures != 0 || st.Async {
		t.Fatalf("AuditStats() of a new store = %+v; want zeros, not async", st)
	}
	const n = 40
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := s.InsertAudit(ctx, domain.AuditEntry{Action: "a", Resource: "r", Result: domain.ResultDenied, Code: "c", Reason: "r"}, Consumption{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// A row that consumes something commits in a transaction of its own,
	// outside the group commit.
	rate := Consumption{Rates: []RateEvent{{AgentID: "agt_x", PermKey: "k", Resource: "r", Limit: 5}}}
	if _, err := s.InsertAudit(ctx, domain.AuditEntry{AgentID: "agt_x", Action: "a", Resource: "r", Result: domain.ResultAllowed, Code: "allowed", Reason: "r"}, rate); err != nil {
		t.Fatal(err)
	}
	// A row asked with a revoked key is refused: a failure, not a row.
	k, err := s.CreateKey(ctx, domain.APIKey{Name: "k", Roles: []string{"decider"}, Hash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	refused := domain.AuditEntry{Action: "a", Resource: "r", Result: domain.ResultAllowed, Code: "allowed", Reason: "r", Actor: domain.Actor{Type: domain.ActorKey, ID: k.ID}}
	if _, err := s.InsertAudit(ctx, refused, Consumption{}); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("InsertAudit(revoked key) = %v; want ErrKeyRevoked", err)
	}
	// A caller is answered before its batch is counted; Close waits for
	// the writer to finish.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.AuditStats()
	bounds := []uint64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}
	var inBuckets uint64
	for _, c := range st.SizeBuckets {
		inBuckets += c
	}
	if st.Rows != n || st.SizeSum != n || st.Failures != 1 || st.Queued != 0 || st.Async {
		t.Errorf("AuditStats() = rows %d, size sum %d, failures %d, queued %d, async %v; want %d, %d, 1, 0, false",
			st.Rows, st.SizeSum, st.Failures, st.Queued, st.Async, n, n)
	}
	if st.Batches < 1 || st.Batches > n || inBuckets != st.Batches || !slices.Equal(st.BucketBounds, bounds) || len(st.SizeBuckets) != len(bounds) {
		t.Errorf("AuditStats() = %d batches, buckets %v over bounds %v; want 1 to %d batches, each in one bucket of %v",
			st.Batches, st.SizeBuckets, st.BucketBounds, n, bounds)
	}
}
