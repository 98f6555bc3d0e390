package store

import (
	"testing"
	"time"
)

// The contract of the change feed: every change of state appends to it in
// commit order.
func changeFeedTests() []storeTest {
	return []storeTest{
		{name: "EveryWriteFeedsTheChangeFeed", fn: testEveryWriteFeedsTheChangeFeed},
	}
}

func testEveryWriteFeedsTheChangeFeed(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	start, err := s.LatestChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.CreateAgent(ctx, newAgent("u", "h1", Permission{Resource: "*", Actions: []string{"*"}}), 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.CreateAgent(ctx, newAgent("u", "h2"), 0)
	name := "x"
	_, _ = s.UpdateAgent(ctx, a.ID, AgentUpdate{Name: &name})
	_, _ = s.RotateToken(ctx, a.ID, "h3")
	d, err := s.CreateDelegation(ctx, Delegation{FromAgent: a.ID, ToAgent: b.ID, Depth: 1, MaxDepth: 1,
		ExpiresAt: c.Now().Add(time.Hour), Permissions: []Grant{{Resource: "x", Actions: []string{"r"}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.RevokeDelegation(ctx, d.ID)
	_, _ = s.RevokeDelegation(ctx, d.ID) // no change: already revoked
	ap, err := s.CreateApproval(ctx, Approval{AgentID: a.ID, OwnerID: "u", Action: "r", Resource: "x", ExpiresAt: c.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveApproval(ctx, ap.ID, ApprovalApproved, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InsertAudit(ctx, AuditEntry{AgentID: a.ID, Action: "r", Resource: "x", Result: ResultAllowed, Code: "allowed", Reason: "r"},
		Consumption{ApprovalID: ap.ID}); err != nil {
		t.Fatal(err)
	}
	_, _ = s.InsertAudit(ctx, AuditEntry{Action: "r", Resource: "x", Result: ResultDenied, Code: "c", Reason: "r"}, Consumption{}) // no change
	_, _ = s.RevokeAgent(ctx, b.ID)

	changes, err := s.ChangesSince(ctx, start, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, ch := range changes {
		got = append(got, ch.Kind+":"+ch.EntityID)
		if i > 0 && ch.Seq <= changes[i-1].Seq {
			t.Errorf("sequence not increasing: %d after %d", ch.Seq, changes[i-1].Seq)
		}
	}
	want := []string{"agent:" + a.ID, "agent:" + b.ID, "agent:" + a.ID, "agent:" + a.ID, "delegation:" + d.ID, "agent:" + b.ID,
		"delegation:" + d.ID, "approval:" + ap.ID, "approval:" + ap.ID, "approval:" + ap.ID, "agent:" + b.ID}
	if len(got) != len(want) {
		t.Fatalf("changes = %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d = %s; want %s", i, got[i], want[i])
		}
	}
	latest, _ := s.LatestChange(ctx)
	if latest != changes[len(changes)-1].Seq {
		t.Errorf("LatestChange = %d; want %d", latest, changes[len(changes)-1].Seq)
	}
	if more, _ := s.ChangesSince(ctx, latest, 100); len(more) != 0 {
		t.Errorf("ChangesSince(latest) = %v; want none", more)
	}
}
