package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of agents: their lifecycle, conflicts and quotas, reads by
// ID, by token and in bulk, and updates on two replicas at once.
func agentTests() []storeTest {
	return []storeTest{
		{name: "Lifecycle", fn: testAgentLifecycle},
		{name: "DuplicateTokenHashIsAConflictAndWritesNothing", fn: testDuplicateTokenHashIsAConflictAndWritesNothing},
		{name: "MaxActiveCountsActiveAgentsOnly", fn: testMaxActiveCountsActiveAgentsOnly},
		{name: "EachAgentStreamsAllWithPermissions", fn: testEachAgentStreamsAllWithPermissions},
		{name: "AgentByTokenHash", fn: testAgentByTokenHash},
		{name: "ConcurrentUpdatesDoNotLoseWrites", opens: testConcurrentUpdatesDoNotLoseWrites, replicas: true},
	}
}

func testAgentLifecycle(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	perms := []domain.Permission{
		{Resource: "mcp:github:*", Actions: []string{"read"}},
		{Resource: "mcp:deploy:production", Actions: []string{"execute"}, Constraints: domain.Constraints{RequireApproval: &yes}},
	}
	a := newAgent("user-1", "h1", perms...)
	a.Metadata = map[string]any{"team": "infra"}
	created, err := s.CreateAgent(ctx, a, 10)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAgent(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != domain.StatusActive || got.TokenHash != "h1" || got.Metadata["team"] != "infra" ||
		len(got.Permissions) != 2 || got.Permissions[1].Constraints.Map()["requireApproval"] != true ||
		!slices.Equal(got.Permissions[0].Actions, []string{"read"}) {
		t.Fatalf("GetAgent = %+v; want the created agent", got)
	}

	name := "renamed"
	newPerms := []domain.Permission{{Resource: "*", Actions: []string{"read"}}}
	exp := c.Now().Add(time.Hour)
	upd, err := s.UpdateAgent(ctx, created.ID, AgentUpdate{Name: &name, Permissions: &newPerms, ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	if upd.Name != name || len(upd.Permissions) != 1 || upd.ExpiresAt == nil || !upd.ExpiresAt.Equal(exp) {
		t.Fatalf("UpdateAgent = %+v", upd)
	}
	upd, err = s.UpdateAgent(ctx, created.ID, AgentUpdate{ClearExpiry: true})
	if err != nil || upd.ExpiresAt != nil {
		t.Fatalf("UpdateAgent(ClearExpiry) = %+v, %v", upd, err)
	}

	rot, err := s.RotateToken(ctx, created.ID, "h2")
	if err != nil || rot.TokenHash != "h2" {
		t.Fatalf("RotateToken = %+v, %v", rot, err)
	}
	rev, err := s.RevokeAgent(ctx, created.ID)
	if err != nil || rev.Status != domain.StatusRevoked || rev.RevokedAt == nil {
		t.Fatalf("RevokeAgent = %+v, %v", rev, err)
	}
	again, err := s.RevokeAgent(ctx, created.ID)
	if err != nil || !again.RevokedAt.Equal(*rev.RevokedAt) {
		t.Fatalf("second RevokeAgent = %+v, %v; want unchanged", again, err)
	}
	if _, err := s.RotateToken(ctx, created.ID, "h3"); !errors.Is(err, ErrRevoked) {
		t.Errorf("RotateToken(revoked) = %v; want ErrRevoked", err)
	}
	if _, err := s.UpdateAgent(ctx, created.ID, AgentUpdate{Name: &name}); !errors.Is(err, ErrRevoked) {
		t.Errorf("UpdateAgent(revoked) = %v; want ErrRevoked", err)
	}
	for _, op := range []func() error{
		func() error { _, err := s.GetAgent(ctx, "agt_missing"); return err },
		func() error { _, err := s.RevokeAgent(ctx, "agt_missing"); return err },
		func() error { _, err := s.RotateToken(ctx, "agt_missing", "x"); return err },
		func() error { _, err := s.UpdateAgent(ctx, "agt_missing", AgentUpdate{Name: &name}); return err },
	} {
		if err := op(); !errors.Is(err, ErrNotFound) {
			t.Errorf("operation on a missing agent = %v; want ErrNotFound", err)
		}
	}
}

func testDuplicateTokenHashIsAConflictAndWritesNothing(t *testing.T, s *Store, _ *clock) {
	ctx := t.Context()
	if _, err := s.CreateAgent(ctx, newAgent("u", "same", domain.Permission{Resource: "a", Actions: []string{"r"}}), 0); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateAgent(ctx, newAgent("u", "same", domain.Permission{Resource: "b", Actions: []string{"r"}}), 0)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("CreateAgent(duplicate hash) = %v; want ErrConflict", err)
	}
	var perms int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM permissions`).Scan(&perms); err != nil || perms != 1 {
		t.Errorf("permissions rows = %d, %v; want 1 (no half-written agent)", perms, err)
	}
}

func testMaxActiveCountsActiveAgentsOnly(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	var ids []string
	for i := range 3 {
		a := newAgent("owner", fmt.Sprint("h", i))
		if i == 2 {
			exp := c.Now().Add(time.Minute)
			a.ExpiresAt = &exp
		}
		got, err := s.CreateAgent(ctx, a, 3)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got.ID)
	}
	if _, err := s.CreateAgent(ctx, newAgent("owner", "h3"), 3); !errors.Is(err, ErrLimitReached) {
		t.Fatalf("4th CreateAgent = %v; want ErrLimitReached", err)
	}
	if _, err := s.CreateAgent(ctx, newAgent("someone-else", "h4"), 3); err != nil {
		t.Fatalf("another owner's CreateAgent = %v", err)
	}
	if _, err := s.RevokeAgent(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAgent(ctx, newAgent("owner", "h5"), 3); err != nil {
		t.Fatalf("CreateAgent after a revoke = %v; want a free slot", err)
	}
	c.Add(2 * time.Minute) // ids[2] expires
	if _, err := s.CreateAgent(ctx, newAgent("owner", "h6"), 3); err != nil {
		t.Fatalf("CreateAgent after an expiry = %v; want a free slot", err)
	}
	for status, want := range map[string]int{domain.StatusActive: 3, domain.StatusRevoked: 1, domain.StatusExpired: 1, "": 5} {
		got, _, err := s.ListAgents(ctx, AgentFilter{OwnerID: "owner", Status: status}, Page{Limit: 100})
		if err != nil || len(got) != want {
			t.Errorf("ListAgents(owner, %q) = %d agents, %v; want %d", status, len(got), err, want)
		}
		for _, a := range got {
			if status != "" && a.Status != status {
				t.Errorf("ListAgents(%q) returned an agent with status %q", status, a.Status)
			}
		}
	}
}

func testEachAgentStreamsAllWithPermissions(t *testing.T, s *Store, _ *clock) {
	ctx := t.Context()
	want := map[string]int{}
	for i := range 50 {
		var perms []domain.Permission
		for j := range i % 4 {
			perms = append(perms, domain.Permission{Resource: fmt.Sprintf("r:%d", j), Actions: []string{"a"}})
		}
		a, err := s.CreateAgent(ctx, newAgent(fmt.Sprint("o", i), fmt.Sprint("h", i), perms...), 0)
		if err != nil {
			t.Fatal(err)
		}
		want[a.ID] = len(perms)
	}
	got := map[string]int{}
	err := s.EachAgent(ctx, func(a domain.Agent) error {
		got[a.ID] = len(a.Permissions)
		for j, p := range a.Permissions {
			if p.Resource != fmt.Sprintf("r:%d", j) {
				t.Errorf("agent %s permission %d = %s; want stored order", a.ID, j, p.Resource)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("EachAgent = %v; want %v", got, want)
	}
}

// Concurrent updates of different fields on two replicas both survive.
func testConcurrentUpdatesDoNotLoseWrites(t *testing.T, be backend) {
	a, b := be.pair(t)
	ctx := t.Context()
	for round := range 20 {
		ag, err := a.CreateAgent(ctx, newAgent("u", fmt.Sprint("h", round)), 0)
		if err != nil {
			t.Fatal(err)
		}
		exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		meta := map[string]any{"round": float64(round)}
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := a.UpdateAgent(context.Background(), ag.ID, AgentUpdate{ExpiresAt: &exp}); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if _, err := b.UpdateAgent(context.Background(), ag.ID, AgentUpdate{Metadata: &meta}); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		got, _ := a.GetAgent(ctx, ag.ID)
		if got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || got.Metadata["round"] != float64(round) {
			t.Fatalf("round %d: expiresAt %v, metadata %v; want both updates", round, got.ExpiresAt, got.Metadata)
		}
	}
}

func testAgentByTokenHash(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	exp := c.Now().Add(time.Hour)
	a := newAgent("user-1", "tok-1", domain.Permission{Resource: "mcp:github:*", Actions: []string{"read"}})
	a.ExpiresAt = &exp
	created, err := s.CreateAgent(ctx, a, 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateAgent(ctx, newAgent("user-2", "tok-2"), 0)
	if err != nil {
		t.Fatal(err)
	}

	got, err := s.AgentByTokenHash(ctx, "tok-1")
	if err != nil || got.ID != created.ID || got.OwnerID != "user-1" || got.TokenHash != "tok-1" || got.Status != domain.StatusActive ||
		got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("AgentByTokenHash(tok-1) = %s, %v; want %s", js(t, got), err, created.ID)
	}
	// Without permissions: the token only says who is calling.
	if len(got.Permissions) != 0 {
		t.Errorf("AgentByTokenHash(tok-1).Permissions = %v; want none", got.Permissions)
	}
	if got, err := s.AgentByTokenHash(ctx, "tok-2"); err != nil || got.ID != other.ID {
		t.Errorf("AgentByTokenHash(tok-2) = %q, %v; want %s", got.ID, err, other.ID)
	}
	for _, h := range []string{"tok-missing", "", "TOK-1", created.ID} {
		if got, err := s.AgentByTokenHash(ctx, h); !errors.Is(err, ErrNotFound) {
			t.Errorf("AgentByTokenHash(%q) = %q, %v; want ErrNotFound", h, got.ID, err)
		}
	}

	// The status is derived when read, as for GetAgent.
	c.Add(time.Hour)
	if got, err := s.AgentByTokenHash(ctx, "tok-1"); err != nil || got.Status != domain.StatusExpired {
		t.Errorf("AgentByTokenHash(tok-1) at expiry = status %q, %v; want expired", got.Status, err)
	}

	// A rotated token stops naming the agent; the new one names it.
	if _, err := s.RotateToken(ctx, created.ID, "tok-3"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AgentByTokenHash(ctx, "tok-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AgentByTokenHash(old token) after RotateToken = %q, %v; want ErrNotFound", got.ID, err)
	}
	if got, err := s.AgentByTokenHash(ctx, "tok-3"); err != nil || got.ID != created.ID {
		t.Errorf("AgentByTokenHash(new token) = %q, %v; want %s", got.ID, err, created.ID)
	}

	// A revoked agent is still found, as revoked: the caller refuses it.
	if _, err := s.RevokeAgent(ctx, created.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AgentByTokenHash(ctx, "tok-3"); err != nil || got.ID != created.ID || got.Status != domain.StatusRevoked {
		t.Errorf("AgentByTokenHash(revoked agent) = %q status %q, %v; want %s revoked", got.ID, got.Status, err, created.ID)
	}
}
