package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of delegations: what a read returns (times in milliseconds,
// the status derived when read), which delegations a list holds and in
// which order.
func delegationTests() []storeTest {
	return []storeTest{
		{name: "GetDelegation", fn: testGetDelegation},
		{name: "ListDelegations", fn: testListDelegations},
		{name: "EachDelegation", fn: testEachDelegation},
	}
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

func delegationIDs(ds []domain.Delegation) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids
}

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
			got, _, err := s.ListDelegations(ctx, tt.agent, Page{Limit: 100})
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
