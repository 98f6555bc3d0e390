package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of approvals: reads, lists and their filters, the window of
// EachApproval, the reuse of a pending request, and one resolution and one
// use per approval across replicas.
func approvalTests() []storeTest {
	return []storeTest{
		{name: "GetApproval", fn: testGetApproval},
		{name: "ListApprovals", fn: testListApprovals},
		{name: "EachApproval", fn: testEachApproval},
		{name: "PendingApproval", fn: testPendingApproval},
		{name: "UsedOnceAcrossReplicas", opens: testApprovalUsedOnceAcrossReplicas, replicas: true},
		{name: "ConcurrentResolveHasOneWinner", opens: testConcurrentResolveHasOneWinner, replicas: true},
	}
}

// request opens a pending approval for an agent.
func request(t *testing.T, s *Store, a domain.Agent, action, resource string, expires time.Time) domain.Approval {
	t.Helper()
	ap, err := s.CreateApproval(t.Context(), domain.Approval{AgentID: a.ID, OwnerID: a.OwnerID, Action: action, Resource: resource, ExpiresAt: expires})
	if err != nil {
		t.Fatalf("CreateApproval(%s, %s, %s) = %v", a.ID, action, resource, err)
	}
	return ap
}

// settle moves a pending approval to status: approved, denied, or used
// (approved, then consumed by an allowed call).
func settle(t *testing.T, s *Store, id, status string) {
	t.Helper()
	ctx := t.Context()
	resolveTo := status
	if status == domain.ApprovalUsed {
		resolveTo = domain.ApprovalApproved
	}
	if _, err := s.ResolveApproval(ctx, id, resolveTo, "contract test"); err != nil {
		t.Fatalf("ResolveApproval(%s, %s) = %v", id, resolveTo, err)
	}
	if status == domain.ApprovalUsed {
		e := domain.AuditEntry{Action: "execute", Resource: "r", Result: domain.ResultAllowed, Code: "allowed", Reason: "approved", ApprovalID: id}
		if _, err := s.InsertAudit(ctx, e, Consumption{ApprovalID: id}); err != nil {
			t.Fatalf("InsertAudit(use %s) = %v", id, err)
		}
	}
}

func testGetApproval(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	ag := contractAgents(t, s, "user-1", 1)[0]

	t.Run("found", func(t *testing.T) {
		in := domain.Approval{AgentID: ag.ID, OwnerID: "user-root", Action: "execute", Resource: "mcp:deploy:production",
			Arguments: json.RawMessage(`{"branch":"main","force":false}`), ExpiresAt: c.Now().Add(15*time.Minute + 500*time.Microsecond)}
		created, err := s.CreateApproval(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.GetApproval(ctx, created.ID)
		if err != nil || js(t, got) != js(t, created) || got.StoredStatus != domain.ApprovalPending {
			t.Fatalf("GetApproval(%s) = %s (stored %q), %v; want %s (stored pending)", created.ID, js(t, got), got.StoredStatus, err, js(t, created))
		}
		if string(got.Arguments) != string(in.Arguments) {
			t.Errorf("GetApproval(%s).Arguments = %s; want %s verbatim", created.ID, got.Arguments, in.Arguments)
		}
		if want := c.Now().Add(15 * time.Minute); !got.ExpiresAt.Equal(want) {
			t.Errorf("GetApproval(%s).ExpiresAt = %s; want %s (milliseconds)", created.ID, got.ExpiresAt, want)
		}
	})

	t.Run("not found", func(t *testing.T) {
		for _, id := range []string{"apr_missing", "", ag.ID} {
			if got, err := s.GetApproval(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetApproval(%q) = %+v, %v; want ErrNotFound", id, got, err)
			}
		}
	})

	// "expired" is derived when read, for pending and approved requests
	// only; the stored status stays what it was.
	for _, tt := range []struct {
		name       string
		settleTo   string        // "" leaves it pending
		after      time.Duration // clock moves this far after creation
		want, kept string
	}{
		{"pending before expiry", "", time.Hour - time.Millisecond, domain.ApprovalPending, domain.ApprovalPending},
		{"pending at expiry", "", time.Hour, domain.ApprovalExpired, domain.ApprovalPending},
		{"pending past expiry", "", 30 * time.Hour, domain.ApprovalExpired, domain.ApprovalPending},
		{"approved before expiry", domain.ApprovalApproved, time.Hour - time.Millisecond, domain.ApprovalApproved, domain.ApprovalApproved},
		{"approved at expiry", domain.ApprovalApproved, time.Hour, domain.ApprovalExpired, domain.ApprovalApproved},
		{"approved past expiry", domain.ApprovalApproved, 30 * time.Hour, domain.ApprovalExpired, domain.ApprovalApproved},
		{"denied past expiry", domain.ApprovalDenied, 30 * time.Hour, domain.ApprovalDenied, domain.ApprovalDenied},
		{"used past expiry", domain.ApprovalUsed, 30 * time.Hour, domain.ApprovalUsed, domain.ApprovalUsed},
	} {
		t.Run("status/"+tt.name, func(t *testing.T) {
			ap := request(t, s, ag, "execute", "mcp:deploy:production", c.Now().Add(time.Hour))
			if tt.settleTo != "" {
				settle(t, s, ap.ID, tt.settleTo)
			}
			c.Add(tt.after)
			got, err := s.GetApproval(ctx, ap.ID)
			if err != nil || got.Status != tt.want || got.StoredStatus != tt.kept {
				t.Errorf("GetApproval(%s) = status %q (stored %q), %v; want %q (stored %q)", ap.ID, got.Status, got.StoredStatus, err, tt.want, tt.kept)
			}
		})
	}
}

func testListApprovals(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	u1 := contractAgents(t, s, "u1", 2)
	a1, a2 := u1[0], u1[1]
	a3 := contractAgents(t, s, "u2", 1)[0]
	start := c.Now()
	now := start.Add(time.Hour) // the clock at the time of the queries

	// Created a minute apart, oldest first; times relative to start.
	names := map[string]string{}
	var order []string // creation order
	add := func(name string, a domain.Agent, expires time.Duration, status string) string {
		ap := request(t, s, a, "execute", "mcp:deploy:"+name, start.Add(expires))
		if status != "" {
			settle(t, s, ap.ID, status)
		}
		names[ap.ID] = name
		order = append(order, ap.ID)
		c.Add(time.Minute)
		return ap.ID
	}
	pOld := add("pOld", a1, 2*time.Hour, "")                               // pending
	pGone := add("pGone", a2, 30*time.Minute, "")                          // expired (pending)
	apr := add("apr", a1, 2*time.Hour, domain.ApprovalApproved)            // approved
	aprGone := add("aprGone", a3, 45*time.Minute, domain.ApprovalApproved) // expired (approved)
	den := add("den", a2, 2*time.Hour, domain.ApprovalDenied)              // denied
	used := add("used", a1, 2*time.Hour, domain.ApprovalUsed)              // used
	pNew := add("pNew", a3, 2*time.Hour, "")                               // pending
	pEdge := add("pEdge", a1, time.Hour, "")                               // expires exactly at now: expired
	c.Add(now.Sub(c.Now()))

	all := slices.Clone(order)
	slices.Reverse(all)
	for _, tt := range []struct {
		f     ApprovalFilter
		limit int // 0: 100
		want  []string
	}{
		{ApprovalFilter{}, 0, all},
		{ApprovalFilter{Status: domain.ApprovalPending}, 0, []string{pNew, pOld}},
		{ApprovalFilter{Status: domain.ApprovalApproved}, 0, []string{apr}},
		{ApprovalFilter{Status: domain.ApprovalExpired}, 0, []string{pEdge, aprGone, pGone}},
		{ApprovalFilter{Status: domain.ApprovalDenied}, 0, []string{den}},
		{ApprovalFilter{Status: domain.ApprovalUsed}, 0, []string{used}},
		{ApprovalFilter{OwnerID: "u1"}, 0, []string{pEdge, used, den, apr, pGone, pOld}},
		{ApprovalFilter{OwnerID: "u2"}, 0, []string{pNew, aprGone}},
		{ApprovalFilter{OwnerID: "nobody"}, 0, []string{}},
		{ApprovalFilter{AgentID: a1.ID}, 0, []string{pEdge, used, apr, pOld}},
		{ApprovalFilter{AgentID: a2.ID}, 0, []string{den, pGone}},
		{ApprovalFilter{Status: domain.ApprovalPending, OwnerID: "u1"}, 0, []string{pOld}},
		{ApprovalFilter{Status: domain.ApprovalExpired, AgentID: a3.ID}, 0, []string{aprGone}},
		{ApprovalFilter{OwnerID: "u2", AgentID: a1.ID}, 0, []string{}},
		{ApprovalFilter{}, 3, all[:3]},
		{ApprovalFilter{OwnerID: "u2"}, 1, []string{pNew}},
		{ApprovalFilter{Status: domain.ApprovalExpired}, 2, []string{pEdge, aprGone}},
		{ApprovalFilter{}, 100, all},
	} {
		t.Run(fmt.Sprintf("%+v/%d", tt.f, tt.limit), func(t *testing.T) {
			got, _, err := s.ListApprovals(ctx, tt.f, Page{Limit: cmp.Or(tt.limit, 100)})
			if err != nil {
				t.Fatalf("ListApprovals(%+v) = %v", tt.f, err)
			}
			ids := make([]string, len(got))
			for i, ap := range got {
				ids[i] = ap.ID
				if tt.f.Status != "" && ap.Status != tt.f.Status {
					t.Errorf("ListApprovals(%+v): %s status = %q; want %q", tt.f, names[ap.ID], ap.Status, tt.f.Status)
				}
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("ListApprovals(%+v) = %s; want %s (newest first)", tt.f, labelled(names, ids), labelled(names, tt.want))
			}
		})
	}
}

func testEachApproval(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	ag := contractAgents(t, s, "owner", 1)[0]
	calls := 0
	if err := s.EachApproval(ctx, 24*time.Hour, func(domain.Approval) error { calls++; return nil }); err != nil || calls != 0 {
		t.Fatalf("EachApproval(empty store) = %d calls, %v; want 0, nil", calls, err)
	}

	// All created now with expiries relative to start; queries run at
	// now = start+48h. Statuses vary: the window is about expiry only.
	start := c.Now()
	now := start.Add(48 * time.Hour)
	names := map[string]string{}
	add := func(name string, expires time.Duration, status string) string {
		ap := request(t, s, ag, "execute", "mcp:deploy:"+name, start.Add(expires))
		if status != "" {
			settle(t, s, ap.ID, status)
		}
		names[ap.ID] = name
		c.Add(time.Millisecond)
		return ap.ID
	}
	live := add("live", 72*time.Hour, "")                             // not expired
	justNow := add("expired-0", 48*time.Hour, "")                     // expires exactly at now
	hourAgo := add("expired-1h", 47*time.Hour, domain.ApprovalDenied) // expired 1h ago
	dayAgoLess := add("expired-24h-1ms", 24*time.Hour+time.Millisecond, domain.ApprovalApproved)
	dayAgo := add("expired-24h", 24*time.Hour, domain.ApprovalUsed) // expired exactly 24h ago
	old := add("expired-47h", time.Hour, "")                        // expired 47h ago
	c.Add(now.Sub(c.Now()))

	status := map[string]string{live: domain.ApprovalPending, justNow: domain.ApprovalExpired, hourAgo: domain.ApprovalDenied,
		dayAgoLess: domain.ApprovalExpired, dayAgo: domain.ApprovalUsed, old: domain.ApprovalExpired}
	// fn sees every approval that expired less than keep ago, or not at all.
	for _, tt := range []struct {
		keep time.Duration
		want []string
	}{
		{0, []string{live}},
		{time.Millisecond, []string{live, justNow}},
		{time.Hour, []string{live, justNow}},
		{time.Hour + time.Millisecond, []string{live, justNow, hourAgo}},
		{24 * time.Hour, []string{live, justNow, hourAgo, dayAgoLess}},
		{24*time.Hour + time.Millisecond, []string{live, justNow, hourAgo, dayAgoLess, dayAgo}},
		{47 * time.Hour, []string{live, justNow, hourAgo, dayAgoLess, dayAgo}},
		{48 * time.Hour, []string{live, justNow, hourAgo, dayAgoLess, dayAgo, old}},
	} {
		t.Run(fmt.Sprint("keep=", tt.keep), func(t *testing.T) {
			var got []string
			err := s.EachApproval(ctx, tt.keep, func(a domain.Approval) error {
				got = append(got, a.ID)
				if a.Status != status[a.ID] {
					t.Errorf("EachApproval(%s): %s status = %q; want %q", tt.keep, names[a.ID], a.Status, status[a.ID])
				}
				return nil
			})
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("EachApproval(%s) = %s, %v; want %s (oldest first)", tt.keep, labelled(names, got), err, labelled(names, tt.want))
			}
		})
	}

	stop := errors.New("stop")
	calls = 0
	err := s.EachApproval(ctx, 48*time.Hour, func(domain.Approval) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Errorf("EachApproval(fn fails on call 2) = %d calls, %v; want 2, the callback's error", calls, err)
	}
}

func testPendingApproval(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	ags := contractAgents(t, s, "owner", 2)
	a, b := ags[0], ags[1]
	const action = "execute"

	// Each case opens requests on a resource of its own, then says which
	// one PendingApproval must return for (a, action, resource): "" means
	// ErrNotFound.
	for i, tt := range []struct {
		name  string
		setup func(t *testing.T, res string) string
	}{
		{"none", func(*testing.T, string) string { return "" }},
		{"one pending", func(t *testing.T, res string) string {
			return request(t, s, a, action, res, c.Now().Add(time.Hour)).ID
		}},
		{"newest of two pending", func(t *testing.T, res string) string {
			request(t, s, a, action, res, c.Now().Add(time.Hour))
			c.Add(time.Second)
			return request(t, s, a, action, res, c.Now().Add(time.Hour)).ID
		}},
		{"newest of two pending in one millisecond", func(t *testing.T, res string) string {
			request(t, s, a, action, res, c.Now().Add(time.Hour))
			return request(t, s, a, action, res, c.Now().Add(time.Hour)).ID
		}},
		{"newest even if it expires first", func(t *testing.T, res string) string {
			request(t, s, a, action, res, c.Now().Add(2*time.Hour))
			c.Add(time.Second)
			return request(t, s, a, action, res, c.Now().Add(time.Hour)).ID
		}},
		{"older pending when the newest is denied", func(t *testing.T, res string) string {
			older := request(t, s, a, action, res, c.Now().Add(time.Hour))
			c.Add(time.Second)
			settle(t, s, request(t, s, a, action, res, c.Now().Add(time.Hour)).ID, domain.ApprovalDenied)
			return older.ID
		}},
		{"denied only", func(t *testing.T, res string) string {
			settle(t, s, request(t, s, a, action, res, c.Now().Add(time.Hour)).ID, domain.ApprovalDenied)
			return ""
		}},
		{"approved is not pending", func(t *testing.T, res string) string {
			settle(t, s, request(t, s, a, action, res, c.Now().Add(time.Hour)).ID, domain.ApprovalApproved)
			return ""
		}},
		{"used is not pending", func(t *testing.T, res string) string {
			settle(t, s, request(t, s, a, action, res, c.Now().Add(time.Hour)).ID, domain.ApprovalUsed)
			return ""
		}},
		{"expired at its expiry", func(t *testing.T, res string) string {
			request(t, s, a, action, res, c.Now().Add(time.Minute))
			c.Add(time.Minute)
			return ""
		}},
		{"older unexpired when the newest expired", func(t *testing.T, res string) string {
			older := request(t, s, a, action, res, c.Now().Add(time.Hour))
			c.Add(time.Second)
			request(t, s, a, action, res, c.Now().Add(time.Minute))
			c.Add(time.Minute)
			return older.ID
		}},
		{"other agent, action or resource", func(t *testing.T, res string) string {
			request(t, s, b, action, res, c.Now().Add(time.Hour))
			request(t, s, a, "read", res, c.Now().Add(time.Hour))
			request(t, s, a, action, res+":other", c.Now().Add(time.Hour))
			request(t, s, a, action, strings.ToUpper(res), c.Now().Add(time.Hour))
			return ""
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := fmt.Sprintf("mcp:deploy:case-%d", i)
			want := tt.setup(t, res)
			before, _, err := s.ListApprovals(ctx, ApprovalFilter{}, Page{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			// Repeated calls reuse the same request and create none.
			for range 2 {
				got, err := s.PendingApproval(ctx, a.ID, action, res)
				if want == "" {
					if !errors.Is(err, ErrNotFound) {
						t.Fatalf("PendingApproval(%s, %s, %s) = %s, %v; want ErrNotFound", a.ID, action, res, got.ID, err)
					}
					continue
				}
				if err != nil || got.ID != want {
					t.Fatalf("PendingApproval(%s, %s, %s) = %q, %v; want %q", a.ID, action, res, got.ID, err, want)
				}
				if got.Status != domain.ApprovalPending || got.AgentID != a.ID || got.Action != action || got.Resource != res {
					t.Errorf("PendingApproval(%s, %s, %s) = %s; want a pending request for exactly that", a.ID, action, res, js(t, got))
				}
			}
			after, _, err := s.ListApprovals(ctx, ApprovalFilter{}, Page{Limit: 1000})
			if err != nil || len(after) != len(before) {
				t.Errorf("approvals after PendingApproval = %d, %v; want %d (it creates none)", len(after), err, len(before))
			}
		})
	}
}

func testApprovalUsedOnceAcrossReplicas(t *testing.T, be backend) {
	a, b := be.pair(t)
	ctx := t.Context()
	ag, err := a.CreateAgent(ctx, newAgent("u", "h"), 0)
	if err != nil {
		t.Fatal(err)
	}
	ap, _ := a.CreateApproval(ctx, domain.Approval{AgentID: ag.ID, OwnerID: "u", Action: "r", Resource: "x", ExpiresAt: time.Now().Add(time.Hour)})
	if _, err := b.ResolveApproval(ctx, ap.ID, domain.ApprovalApproved, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ResolveApproval(ctx, ap.ID, domain.ApprovalDenied, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("resolving twice = %v; want ErrConflict", err)
	}
	var used atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			_, err := s.InsertAudit(context.Background(), domain.AuditEntry{AgentID: ag.ID, Action: "r", Resource: "x", Result: domain.ResultAllowed, Code: "allowed", Reason: "r"},
				Consumption{ApprovalID: ap.ID})
			if err == nil {
				used.Add(1)
			} else if !errors.Is(err, ErrConflict) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if used.Load() != 1 {
		t.Errorf("20 racing uses of one approval on two replicas: %d succeeded; want 1", used.Load())
	}
}

// Two replicas resolving one approval at once: exactly one wins.
func testConcurrentResolveHasOneWinner(t *testing.T, be backend) {
	a, b := be.pair(t)
	ctx := t.Context()
	ag, err := a.CreateAgent(ctx, newAgent("u", "h"), 0)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		ap, _ := a.CreateApproval(ctx, domain.Approval{AgentID: ag.ID, OwnerID: "u", Action: "r", Resource: fmt.Sprint("x", round), ExpiresAt: time.Now().Add(time.Hour)})
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i, s := range []*Store{a, b} {
			status := []string{domain.ApprovalApproved, domain.ApprovalDenied}[i]
			wg.Go(func() {
				_, err := s.ResolveApproval(context.Background(), ap.ID, status, "")
				if err == nil {
					wins.Add(1)
				} else if !errors.Is(err, ErrConflict) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d resolutions succeeded; want exactly 1", round, wins.Load())
		}
	}
}
