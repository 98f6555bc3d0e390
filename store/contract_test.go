package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The storage contract of delegations, approvals and rate-limit events,
// organised by concern: each Test…Contract runs one subtest per method, and
// each subtest runs on every backend (backends) with a fresh store and its
// own clock, so no subtest depends on another's data or time. Time only
// moves with c.Add.

func TestDelegationsContract(t *testing.T) {
	t.Run("GetDelegation", func(t *testing.T) { backends(t, testGetDelegation) })
	t.Run("ListDelegations", func(t *testing.T) { backends(t, testListDelegations) })
	t.Run("EachDelegation", func(t *testing.T) { backends(t, testEachDelegation) })
}

func TestApprovalsContract(t *testing.T) {
	t.Run("GetApproval", func(t *testing.T) { backends(t, testGetApproval) })
	t.Run("ListApprovals", func(t *testing.T) { backends(t, testListApprovals) })
	t.Run("EachApproval", func(t *testing.T) { backends(t, testEachApproval) })
	t.Run("PendingApproval", func(t *testing.T) { backends(t, testPendingApproval) })
}

func TestRateEventsContract(t *testing.T) {
	t.Run("PruneRateEvents", func(t *testing.T) { backends(t, testPruneRateEvents) })
}

// --- helpers -----------------------------------------------------------

// contractAgents creates n agents of one owner and returns them.
func contractAgents(t *testing.T, s *Store, owner string, n int) []domain.Agent {
	t.Helper()
	out := make([]domain.Agent, n)
	for i := range out {
		a, err := s.CreateAgent(t.Context(), newAgent(owner, fmt.Sprintf("%s-%d", owner, i)), 0)
		if err != nil {
			t.Fatalf("CreateAgent(%s #%d) = %v", owner, i, err)
		}
		out[i] = a
	}
	return out
}

// delegate stores a one-grant delegation from one agent to another.
func delegate(t *testing.T, s *Store, from, to string, expires time.Time) domain.Delegation {
	t.Helper()
	d, err := s.CreateDelegation(t.Context(), domain.Delegation{FromAgent: from, ToAgent: to, Depth: 1, MaxDepth: 2, ExpiresAt: expires,
		Permissions: []domain.Grant{{Resource: "mcp:github:*", Actions: []string{"read"}, Chain: []domain.Link{}, CoveredBy: from + "#0"}}})
	if err != nil {
		t.Fatalf("CreateDelegation(%s -> %s) = %v", from, to, err)
	}
	return d
}

func revokeDelegation(t *testing.T, s *Store, id string) domain.Delegation {
	t.Helper()
	d, err := s.RevokeDelegation(t.Context(), id)
	if err != nil {
		t.Fatalf("RevokeDelegation(%s) = %v", id, err)
	}
	return d
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

// js renders v as JSON, to compare whole records and print them.
func js(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%T) = %v", v, err)
	}
	return string(b)
}

func delegationIDs(ds []domain.Delegation) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids
}

// labelled names IDs by the labels a test gave them, for readable failures.
func labelled(names map[string]string, ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if n, ok := names[id]; ok {
			out[i] = n
		} else {
			out[i] = id
		}
	}
	return "[" + strings.Join(out, " ") + "]"
}

// --- delegations -------------------------------------------------------

func testGetDelegation(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	ag := contractAgents(t, s, "owner", 2)

	t.Run("found", func(t *testing.T) {
		grants := []domain.Grant{
			{Resource: "mcp:github:*", Actions: []string{"read", "write"}, Constraints: domain.Constraints{MaxCallsPerHour: 10},
				Inherited: []domain.Inherited{{Key: "agt_root#0", Constraints: domain.Constraints{RequireApproval: &yes}}},
				Chain:     []domain.Link{{DelegationID: "dlg_parent", Index: 1}}, CoveredBy: "agt_root#0"},
			{Resource: "mcp:deploy:staging", Actions: []string{"execute"}, Chain: []domain.Link{}, CoveredBy: "agt_root#1"},
		}
		// Sub-millisecond expiry: the store keeps milliseconds.
		in := domain.Delegation{FromAgent: ag[0].ID, ToAgent: ag[1].ID, Depth: 2, MaxDepth: 3, Permissions: grants,
			ExpiresAt: c.Now().Add(time.Hour + 1500*time.Microsecond)}
		created, err := s.CreateDelegation(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.GetDelegation(ctx, created.ID)
		if err != nil || js(t, got) != js(t, created) {
			t.Fatalf("GetDelegation(%s) = %s, %v; want %s", created.ID, js(t, got), err, js(t, created))
		}
		if js(t, got.Permissions) != js(t, grants) {
			t.Errorf("GetDelegation(%s).Permissions = %s; want %s", created.ID, js(t, got.Permissions), js(t, grants))
		}
		if want := c.Now().Add(time.Hour + time.Millisecond); !got.ExpiresAt.Equal(want) || !got.CreatedAt.Equal(c.Now()) {
			t.Errorf("GetDelegation(%s) times = expires %s, created %s; want %s, %s", created.ID, got.ExpiresAt, got.CreatedAt, want, c.Now())
		}
		if got.Status != domain.StatusActive || got.RevokedAt != nil {
			t.Errorf("GetDelegation(%s) = status %q, revokedAt %v; want active, nil", created.ID, got.Status, got.RevokedAt)
		}
	})

	t.Run("not found", func(t *testing.T) {
		for _, id := range []string{"dlg_missing", "", ag[0].ID} {
			if got, err := s.GetDelegation(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetDelegation(%q) = %+v, %v; want ErrNotFound", id, got, err)
			}
		}
	})

	// Status is derived when read: an active delegation at or past its
	// expiry is expired; a revoked one stays revoked.
	for _, tt := range []struct {
		name   string
		revoke bool
		after  time.Duration // clock moves this far after creation
		want   string
	}{
		{"active when created", false, 0, domain.StatusActive},
		{"active 1ms before expiry", false, time.Hour - time.Millisecond, domain.StatusActive},
		{"expired at expiry", false, time.Hour, domain.StatusExpired},
		{"expired past expiry", false, 48 * time.Hour, domain.StatusExpired},
		{"revoked", true, 0, domain.StatusRevoked},
		{"revoked stays revoked past expiry", true, 48 * time.Hour, domain.StatusRevoked},
	} {
		t.Run("status/"+tt.name, func(t *testing.T) {
			d := delegate(t, s, ag[0].ID, ag[1].ID, c.Now().Add(time.Hour))
			revokedAt := c.Now()
			if tt.revoke {
				revokeDelegation(t, s, d.ID)
			}
			c.Add(tt.after)
			got, err := s.GetDelegation(ctx, d.ID)
			if err != nil || got.Status != tt.want {
				t.Fatalf("GetDelegation(%s).Status = %q, %v; want %q", d.ID, got.Status, err, tt.want)
			}
			switch {
			case tt.revoke && (got.RevokedAt == nil || !got.RevokedAt.Equal(revokedAt)):
				t.Errorf("GetDelegation(%s).RevokedAt = %v; want %s", d.ID, got.RevokedAt, revokedAt)
			case !tt.revoke && got.RevokedAt != nil:
				t.Errorf("GetDelegation(%s).RevokedAt = %v; want nil", d.ID, got.RevokedAt)
			}
		})
	}
}

func testListDelegations(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	ag := contractAgents(t, s, "owner", 5)
	a, b, cc, d, e := ag[0].ID, ag[1].ID, ag[2].ID, ag[3].ID, ag[4].ID

	// Creation order differs from expiry order and from agent order.
	d1 := delegate(t, s, a, b, c.Now().Add(2*time.Hour))
	c.Add(time.Second)
	d2 := delegate(t, s, b, cc, c.Now().Add(time.Hour))
	d3 := delegate(t, s, cc, a, c.Now().Add(10*time.Minute)) // same millisecond as d2
	c.Add(time.Minute)
	d4 := delegate(t, s, cc, d, c.Now().Add(3*time.Hour))
	d5 := delegate(t, s, a, cc, c.Now().Add(30*time.Minute))
	revokeDelegation(t, s, d5.ID)
	c.Add(20 * time.Minute) // d3 is past its expiry now

	names := map[string]string{d1.ID: "d1", d2.ID: "d2", d3.ID: "d3", d4.ID: "d4", d5.ID: "d5"}
	status := map[string]string{d1.ID: domain.StatusActive, d2.ID: domain.StatusActive, d3.ID: domain.StatusExpired, d4.ID: domain.StatusActive, d5.ID: domain.StatusRevoked}
	for _, tt := range []struct {
		name  string
		agent string
		want  []string
	}{
		{"from and to", a, []string{d1.ID, d3.ID, d5.ID}},
		{"to then from", b, []string{d1.ID, d2.ID}},
		{"many", cc, []string{d2.ID, d3.ID, d4.ID, d5.ID}},
		{"only to", d, []string{d4.ID}},
		{"agent without delegations", e, []string{}},
		{"unknown agent", "agt_missing", []string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListDelegations(ctx, tt.agent)
			if err != nil {
				t.Fatalf("ListDelegations(%s) = %v", tt.agent, err)
			}
			if ids := delegationIDs(got); !slices.Equal(ids, tt.want) {
				t.Fatalf("ListDelegations(%s) = %s; want %s (oldest first)", tt.agent, labelled(names, ids), labelled(names, tt.want))
			}
			if got == nil {
				t.Errorf("ListDelegations(%s) = nil; want an empty slice", tt.agent)
			}
			for _, dl := range got {
				if dl.FromAgent != tt.agent && dl.ToAgent != tt.agent {
					t.Errorf("ListDelegations(%s) returned %s (%s -> %s); want only delegations from or to it", tt.agent, names[dl.ID], dl.FromAgent, dl.ToAgent)
				}
				if dl.Status != status[dl.ID] {
					t.Errorf("ListDelegations(%s): %s status = %q; want %q", tt.agent, names[dl.ID], dl.Status, status[dl.ID])
				}
			}
		})
	}
}

func testEachDelegation(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	calls := 0
	if err := s.EachDelegation(ctx, func(domain.Delegation) error { calls++; return nil }); err != nil || calls != 0 {
		t.Fatalf("EachDelegation(empty store) = %d calls, %v; want 0, nil", calls, err)
	}

	ag := contractAgents(t, s, "owner", 4)
	var want []string
	revoked := map[string]bool{}
	expires := map[string]time.Time{}
	for i := range 25 {
		d := delegate(t, s, ag[i%4].ID, ag[(i+1)%4].ID, c.Now().Add(time.Duration(1+i%5)*time.Minute))
		want = append(want, d.ID)
		expires[d.ID] = d.ExpiresAt
		if i%6 == 0 {
			revokeDelegation(t, s, d.ID)
			revoked[d.ID] = true
		}
		c.Add(time.Duration(i%3) * time.Millisecond) // some share a millisecond
	}
	c.Add(3 * time.Minute)

	var got []string
	err := s.EachDelegation(ctx, func(d domain.Delegation) error {
		got = append(got, d.ID)
		wantStatus := domain.StatusActive
		switch {
		case revoked[d.ID]:
			wantStatus = domain.StatusRevoked
		case !c.Now().Before(expires[d.ID]):
			wantStatus = domain.StatusExpired
		}
		if d.Status != wantStatus {
			t.Errorf("EachDelegation: %s status = %q; want %q", d.ID, d.Status, wantStatus)
		}
		// What streams is what a single read returns.
		one, err := s.GetDelegation(ctx, d.ID)
		if err != nil || js(t, one) != js(t, d) {
			t.Errorf("EachDelegation: %s = %s; want GetDelegation's %s, %v", d.ID, js(t, d), js(t, one), err)
		}
		return nil
	})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("EachDelegation = %v, %v; want all %d in creation order %v", got, err, len(want), want)
	}

	stop := errors.New("stop")
	calls = 0
	err = s.EachDelegation(ctx, func(domain.Delegation) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("EachDelegation(fn fails on call 3) = %d calls, %v; want 3, the callback's error", calls, err)
	}
}

// --- approvals ---------------------------------------------------------

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
		f    ApprovalFilter
		want []string
	}{
		{ApprovalFilter{}, all},
		{ApprovalFilter{Status: domain.ApprovalPending}, []string{pNew, pOld}},
		{ApprovalFilter{Status: domain.ApprovalApproved}, []string{apr}},
		{ApprovalFilter{Status: domain.ApprovalExpired}, []string{pEdge, aprGone, pGone}},
		{ApprovalFilter{Status: domain.ApprovalDenied}, []string{den}},
		{ApprovalFilter{Status: domain.ApprovalUsed}, []string{used}},
		{ApprovalFilter{OwnerID: "u1"}, []string{pEdge, used, den, apr, pGone, pOld}},
		{ApprovalFilter{OwnerID: "u2"}, []string{pNew, aprGone}},
		{ApprovalFilter{OwnerID: "nobody"}, []string{}},
		{ApprovalFilter{AgentID: a1.ID}, []string{pEdge, used, apr, pOld}},
		{ApprovalFilter{AgentID: a2.ID}, []string{den, pGone}},
		{ApprovalFilter{Status: domain.ApprovalPending, OwnerID: "u1"}, []string{pOld}},
		{ApprovalFilter{Status: domain.ApprovalExpired, AgentID: a3.ID}, []string{aprGone}},
		{ApprovalFilter{OwnerID: "u2", AgentID: a1.ID}, []string{}},
		{ApprovalFilter{Limit: 3}, all[:3]},
		{ApprovalFilter{Limit: 1, OwnerID: "u2"}, []string{pNew}},
		{ApprovalFilter{Limit: 2, Status: domain.ApprovalExpired}, []string{pEdge, aprGone}},
		{ApprovalFilter{Limit: 100}, all},
	} {
		t.Run(fmt.Sprintf("%+v", tt.f), func(t *testing.T) {
			got, err := s.ListApprovals(ctx, tt.f)
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
			before, err := s.ListApprovals(ctx, ApprovalFilter{Limit: 1000})
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
			after, err := s.ListApprovals(ctx, ApprovalFilter{Limit: 1000})
			if err != nil || len(after) != len(before) {
				t.Errorf("approvals after PendingApproval = %d, %v; want %d (it creates none)", len(after), err, len(before))
			}
		})
	}
}

// --- rate-limit events -------------------------------------------------

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
