package store

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

func policyDataTests() []storeTest {
	return []storeTest{{name: "PolicyAgentIsGetAgent", fn: testPolicyAgent}}
}

// What the bounded policy data store reads on a miss is what GetAgent
// reads: the same agent, permissions in order, trust and incoming
// delegations, on every backend; absent agents and tokens are
// ErrNotFound; a rotated token resolves to nothing.
func testPolicyAgent(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	ag := contractAgents(t, s, "policy", 3)
	perms := []domain.Permission{
		{Resource: "mcp:github:*", Actions: []string{"read"}},
		{Resource: "db:prod", Actions: []string{"drop"}, Constraints: domain.Constraints{MaxCallsPerHour: 3, IPAllowlist: []string{"10.0.0.0/8"}}},
		{Resource: "a:b", Actions: []string{"*"}},
	}
	if _, err := s.UpdateAgent(ctx, ag[0].ID, AgentUpdate{Permissions: &perms}); err != nil {
		t.Fatal(err)
	}
	d1 := delegate(t, s, ag[1].ID, ag[0].ID, c.Now().Add(time.Hour))
	d2 := delegate(t, s, ag[2].ID, ag[0].ID, c.Now().Add(time.Hour))
	for _, a := range ag {
		want, err := s.GetAgent(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second time through the prepared statements
			got, err := s.PolicyAgent(ctx, a.ID)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("PolicyAgent(%s) =\n%s, %v\nwant (GetAgent)\n%s", a.ID, js(t, got), err, js(t, want))
			}
		}
	}
	if got, _ := s.PolicyAgent(ctx, ag[0].ID); !slices.Equal(got.Incoming, sorted(d1.ID, d2.ID)) || len(got.Permissions) != 3 {
		t.Errorf("PolicyAgent: incoming %v, %d permissions; want %v, 3", got.Incoming, len(got.Permissions), sorted(d1.ID, d2.ID))
	}
	if _, err := s.PolicyAgent(ctx, "agt_missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("PolicyAgent(missing) = %v; want ErrNotFound", err)
	}
	if id, err := s.AgentIDByTokenHash(ctx, ag[1].TokenHash); err != nil || id != ag[1].ID {
		t.Errorf("AgentIDByTokenHash = %q, %v; want %s", id, err, ag[1].ID)
	}
	if _, err := s.RotateToken(ctx, ag[1].ID, "rotated-hash"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AgentIDByTokenHash(ctx, ag[1].TokenHash); !errors.Is(err, ErrNotFound) {
		t.Errorf("AgentIDByTokenHash(rotated away) = %v; want ErrNotFound", err)
	}
	if id, err := s.AgentIDByTokenHash(ctx, "rotated-hash"); err != nil || id != ag[1].ID {
		t.Errorf("AgentIDByTokenHash(new) = %q, %v; want %s", id, err, ag[1].ID)
	}
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}
