package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of paged lists: every list is read a page at a time, in ID
// order, each row exactly once, filters and all; a page before the last
// is full and its cursor is its last ID; the last page says so with an
// empty cursor, also when it is exactly full; rows written while a client
// pages neither repeat nor hide the rows it has yet to reach.
func pagingTests() []storeTest {
	return []storeTest{
		{name: "AgentsEachOnceInOrderWithFilters", fn: testPagedAgents},
		{name: "AgentsPageCountsAgentsNotPermissions", fn: testPagedAgentsKeepPermissions},
		{name: "ApprovalsEachOnceNewestFirstWithFilters", fn: testPagedApprovals},
		{name: "DelegationsEachOnceFromAndTo", fn: testPagedDelegations},
		{name: "KeysEachOnceInOrder", fn: testPagedKeys},
		{name: "WritesWhilePagingNeitherRepeatNorHide", fn: testWritesWhilePaging},
		{name: "LimitMustBePositive", fn: testPageLimitMustBePositive},
	}
}

// walk reads a list with pages of limit rows until its cursor is empty,
// calling between (if set) after each page but the last, and returns the
// IDs in the order read and the number of pages. It fails the test when a
// page holds more than limit rows, or a page before the last is short or
// has a cursor other than its last ID.
func walk[T any](t *testing.T, limit int, list func(Page) ([]T, string, error), id func(T) string, between func()) ([]string, int) {
	t.Helper()
	ids := []string{}
	p := Page{Limit: limit}
	for pages := 1; ; pages++ {
		if pages > 1000 {
			t.Fatalf("walk(limit %d): more than 1000 pages; the cursor does not advance", limit)
		}
		rows, next, err := list(p)
		if err != nil {
			t.Fatalf("page %d (limit %d, cursor %q) = %v", pages, limit, p.Cursor, err)
		}
		if len(rows) > limit {
			t.Fatalf("page %d (limit %d) = %d rows; want at most %d", pages, limit, len(rows), limit)
		}
		for _, r := range rows {
			ids = append(ids, id(r))
		}
		if next == "" {
			return ids, pages
		}
		if len(rows) != limit || next != id(rows[len(rows)-1]) {
			t.Fatalf("page %d (limit %d) = %d rows, cursor %q; want a full page whose cursor is its last ID", pages, limit, len(rows), next)
		}
		p.Cursor = next
		if between != nil {
			between()
		}
	}
}

// wantPages is how many pages n rows take at limit a page: one at least.
func wantPages(n, limit int) int { return max(1, (n+limit-1)/limit) }

func agentID(a domain.Agent) string           { return a.ID }
func approvalID(a domain.Approval) string     { return a.ID }
func delegationID(d domain.Delegation) string { return d.ID }
func keyID(k domain.APIKey) string            { return k.ID }

func testPagedAgents(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	// 23 agents of two owners: every third expires in a minute, every
	// fifth is revoked.
	type row struct{ id, owner, status string }
	var rows []row
	for i := range 23 {
		a := newAgent(fmt.Sprintf("u%d", i%2+1), fmt.Sprintf("paged-%d", i))
		if i%3 == 0 {
			exp := c.Now().Add(time.Minute)
			a.ExpiresAt = &exp
		}
		created, err := s.CreateAgent(ctx, a, 0)
		if err != nil {
			t.Fatal(err)
		}
		status := domain.StatusActive
		switch {
		case i%5 == 0:
			if _, err := s.RevokeAgent(ctx, created.ID); err != nil {
				t.Fatal(err)
			}
			status = domain.StatusRevoked
		case i%3 == 0:
			status = domain.StatusExpired
		}
		rows = append(rows, row{created.ID, a.OwnerID, status})
	}
	c.Add(2 * time.Minute)

	for _, f := range []AgentFilter{
		{},
		{OwnerID: "u1"},
		{Status: domain.StatusActive},
		{Status: domain.StatusRevoked},
		{Status: domain.StatusExpired},
		{OwnerID: "u2", Status: domain.StatusActive},
		{OwnerID: "u1", Status: domain.StatusExpired},
		{OwnerID: "nobody"},
	} {
		want := []string{}
		for _, r := range rows {
			if (f.OwnerID == "" || r.owner == f.OwnerID) && (f.Status == "" || r.status == f.Status) {
				want = append(want, r.id)
			}
		}
		for _, limit := range []int{1, 2, 7, len(want), len(want) + 1, 100} {
			if limit < 1 {
				continue
			}
			t.Run(fmt.Sprintf("%+v/limit=%d", f, limit), func(t *testing.T) {
				list := func(p Page) ([]domain.Agent, string, error) {
					got, next, err := s.ListAgents(ctx, f, p)
					for _, a := range got {
						if f.Status != "" && a.Status != f.Status || f.OwnerID != "" && a.OwnerID != f.OwnerID {
							t.Errorf("ListAgents(%+v) returned %s (owner %s, %s)", f, a.ID, a.OwnerID, a.Status)
						}
					}
					return got, next, err
				}
				got, pages := walk(t, limit, list, agentID, nil)
				if !slices.Equal(got, want) {
					t.Errorf("ListAgents(%+v) page by page = %v; want %v (each once, oldest first)", f, got, want)
				}
				if pages != wantPages(len(want), limit) {
					t.Errorf("ListAgents(%+v) took %d pages of %d; want %d", f, pages, limit, wantPages(len(want), limit))
				}
			})
		}
	}
}

// The page is cut before the join with permissions: a page of 2 agents
// holds 2 agents, each with all of its permissions.
func testPagedAgentsKeepPermissions(t *testing.T, s *Store, _ *clock) {
	ctx := t.Context()
	var want []string
	for i := range 5 {
		var perms []domain.Permission
		for j := range 3 {
			perms = append(perms, domain.Permission{Resource: fmt.Sprintf("r:%d:%d", i, j), Actions: []string{"read"}})
		}
		a, err := s.CreateAgent(ctx, newAgent("owner", fmt.Sprintf("perm-%d", i), perms...), 0)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, a.ID)
	}
	list := func(p Page) ([]domain.Agent, string, error) {
		got, next, err := s.ListAgents(ctx, AgentFilter{}, p)
		for _, a := range got {
			var res []string
			for _, p := range a.Permissions {
				res = append(res, p.Resource)
			}
			i := slices.Index(want, a.ID)
			if wantRes := []string{fmt.Sprintf("r:%d:0", i), fmt.Sprintf("r:%d:1", i), fmt.Sprintf("r:%d:2", i)}; !slices.Equal(res, wantRes) {
				t.Errorf("ListAgents: %s permissions = %v; want %v", a.ID, res, wantRes)
			}
		}
		return got, next, err
	}
	if got, pages := walk(t, 2, list, agentID, nil); !slices.Equal(got, want) || pages != 3 {
		t.Errorf("ListAgents in pages of 2 = %v in %d pages; want %v in 3", got, pages, want)
	}
}

func testPagedApprovals(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	ag := contractAgents(t, s, "u1", 1)
	ag = append(ag, contractAgents(t, s, "u2", 1)...)
	type row struct{ id, owner, agent, status string }
	var rows []row
	for i := range 17 {
		a := ag[i%2]
		ap := request(t, s, a, "execute", fmt.Sprintf("mcp:deploy:%d", i), c.Now().Add(time.Hour))
		status := domain.ApprovalPending
		switch i % 4 {
		case 1:
			status = domain.ApprovalApproved
		case 2:
			status = domain.ApprovalDenied
		}
		if status != domain.ApprovalPending {
			settle(t, s, ap.ID, status)
		}
		rows = append(rows, row{ap.ID, a.OwnerID, a.ID, status})
	}
	slices.Reverse(rows) // newest first

	for _, f := range []ApprovalFilter{
		{},
		{Status: domain.ApprovalPending},
		{OwnerID: "u1"},
		{AgentID: ag[1].ID},
		{Status: domain.ApprovalDenied, OwnerID: "u2"},
		{Status: domain.ApprovalApproved, AgentID: ag[0].ID},
		{OwnerID: "nobody"},
	} {
		want := []string{}
		for _, r := range rows {
			if (f.Status == "" || r.status == f.Status) && (f.OwnerID == "" || r.owner == f.OwnerID) && (f.AgentID == "" || r.agent == f.AgentID) {
				want = append(want, r.id)
			}
		}
		for _, limit := range []int{1, 4, len(want), 100} {
			if limit < 1 {
				continue
			}
			t.Run(fmt.Sprintf("%+v/limit=%d", f, limit), func(t *testing.T) {
				list := func(p Page) ([]domain.Approval, string, error) { return s.ListApprovals(ctx, f, p) }
				got, pages := walk(t, limit, list, approvalID, nil)
				if !slices.Equal(got, want) {
					t.Errorf("ListApprovals(%+v) page by page = %v; want %v (each once, newest first)", f, got, want)
				}
				if pages != wantPages(len(want), limit) {
					t.Errorf("ListApprovals(%+v) took %d pages of %d; want %d", f, pages, limit, wantPages(len(want), limit))
				}
			})
		}
	}
}

func testPagedDelegations(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	ag := contractAgents(t, s, "owner", 4)
	a, b, cc, d := ag[0].ID, ag[1].ID, ag[2].ID, ag[3].ID
	// From and to interleaved, so a page merges both sides; one from an
	// agent to itself, which both sides find and the list holds once.
	pairs := [][2]string{{a, b}, {cc, a}, {b, cc}, {a, cc}, {b, a}, {a, a}, {cc, b}, {a, b}, {d, cc}, {b, a}, {a, d}, {cc, a}, {b, d}}
	var all []domain.Delegation
	for _, p := range pairs {
		all = append(all, delegate(t, s, p[0], p[1], c.Now().Add(time.Hour)))
	}
	for _, agent := range []string{a, b, cc, d, "agt_missing"} {
		want := []string{}
		for _, dl := range all {
			if dl.FromAgent == agent || dl.ToAgent == agent {
				want = append(want, dl.ID)
			}
		}
		for _, limit := range []int{1, 2, 3, 5, len(want), 100} {
			if limit < 1 {
				continue
			}
			t.Run(fmt.Sprintf("%s/limit=%d", agent, limit), func(t *testing.T) {
				list := func(p Page) ([]domain.Delegation, string, error) { return s.ListDelegations(ctx, agent, p) }
				got, pages := walk(t, limit, list, delegationID, nil)
				if !slices.Equal(got, want) {
					t.Errorf("ListDelegations(%s) page by page = %v; want %v (each once, oldest first)", agent, got, want)
				}
				if pages != wantPages(len(want), limit) {
					t.Errorf("ListDelegations(%s) took %d pages of %d; want %d", agent, pages, limit, wantPages(len(want), limit))
				}
			})
		}
	}
}

func testPagedKeys(t *testing.T, s *Store, _ *clock) {
	ctx := t.Context()
	var want []string
	for i := range 9 {
		k, err := s.CreateKey(ctx, domain.APIKey{Name: fmt.Sprintf("k%d", i), Roles: []string{"decider"}, Hash: fmt.Sprintf("paged-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, k.ID)
	}
	for _, limit := range []int{1, 4, 9, 10} {
		list := func(p Page) ([]domain.APIKey, string, error) { return s.ListKeys(ctx, p) }
		got, pages := walk(t, limit, list, keyID, nil)
		if !slices.Equal(got, want) || pages != wantPages(len(want), limit) {
			t.Errorf("ListKeys in pages of %d = %v in %d pages; want %v in %d", limit, got, pages, want, wantPages(len(want), limit))
		}
	}
}

// Rows created, revoked or resolved between pages: each row that was there
// before the walk comes exactly once, in order; none comes twice.
func testWritesWhilePaging(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	before := contractAgents(t, s, "owner", 10)
	var beforeIDs []string
	for _, a := range before {
		beforeIDs = append(beforeIDs, a.ID)
	}
	n := 0
	between := func() {
		n++
		contractAgents(t, s, fmt.Sprintf("late-%d", n), 2)
		// One not reached yet changes; the list has no status filter,
		// so it must still come.
		if _, err := s.RevokeAgent(ctx, before[len(before)-n].ID); err != nil {
			t.Fatal(err)
		}
	}
	list := func(p Page) ([]domain.Agent, string, error) { return s.ListAgents(ctx, AgentFilter{}, p) }
	got, _ := walk(t, 3, list, agentID, between)
	checkOnceInOrder(t, "agents", got, beforeIDs)

	// Newest first: approvals opened meanwhile sort before the cursor, and
	// those resolved meanwhile stay in place.
	var aprs []string
	for i := range 10 {
		aprs = append(aprs, request(t, s, before[0], "execute", fmt.Sprintf("r:%d", i), c.Now().Add(time.Hour)).ID)
	}
	slices.Reverse(aprs)
	n = 0
	between = func() {
		n++
		request(t, s, before[1], "execute", fmt.Sprintf("late:%d", n), c.Now().Add(time.Hour))
		settle(t, s, aprs[len(aprs)-n], domain.ApprovalDenied)
	}
	listApprovals := func(p Page) ([]domain.Approval, string, error) { return s.ListApprovals(ctx, ApprovalFilter{}, p) }
	got, _ = walk(t, 3, listApprovals, approvalID, between)
	checkOnceInOrder(t, "approvals", got, aprs)
}

// checkOnceInOrder fails unless got holds no ID twice and holds every ID
// of want, in want's order.
func checkOnceInOrder(t *testing.T, list string, got, want []string) {
	t.Helper()
	if len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("%s page by page = %v; an ID came twice", list, got)
	}
	var seen []string
	for _, id := range got {
		if slices.Contains(want, id) {
			seen = append(seen, id)
		}
	}
	if !slices.Equal(seen, want) {
		t.Errorf("%s page by page held %v of the rows there before; want %v, each once, in order", list, seen, want)
	}
}

func testPageLimitMustBePositive(t *testing.T, s *Store, _ *clock) {
	ctx := t.Context()
	for _, limit := range []int{0, -1} {
		p := Page{Limit: limit}
		if _, _, err := s.ListAgents(ctx, AgentFilter{}, p); err == nil {
			t.Errorf("ListAgents(limit %d) = nil error; want one", limit)
		}
		if _, _, err := s.ListApprovals(ctx, ApprovalFilter{}, p); err == nil {
			t.Errorf("ListApprovals(limit %d) = nil error; want one", limit)
		}
		if _, _, err := s.ListDelegations(ctx, "agt_x", p); err == nil {
			t.Errorf("ListDelegations(limit %d) = nil error; want one", limit)
		}
		if _, _, err := s.ListKeys(ctx, p); err == nil {
			t.Errorf("ListKeys(limit %d) = nil error; want one", limit)
		}
	}
}
