package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of audit events: each change of state commits its event,
// with the caller as actor, in its own transaction (a change that fails
// writes none); events recorded on their own (RecordEvent) read back as
// written; no event carries a secret.
func eventTests() []storeTest {
	return []storeTest{
		{name: "RecordEvent", fn: testRecordEvent},
		{name: "ChangesAreAudited", fn: testChangesAreAudited},
	}
}

func testRecordEvent(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	bot := domain.Actor{Type: domain.ActorAgent, ID: "agt_1", Name: "bot"}
	reload, err := s.RecordEvent(WithActor(ctx, bot), Event{Action: "extension.reload", Target: "ext:github", OwnerID: "u1",
		Reason: "extension reloaded", Changes: map[string]any{"files": 2}})
	if err != nil {
		t.Fatalf("RecordEvent(reload) = %v", err)
	}
	if !strings.HasPrefix(reload.ID, "aud_") || reload.Kind != domain.KindEvent || reload.Action != "extension.reload" ||
		reload.Resource != "ext:github" || reload.OwnerID != "u1" || reload.Result != domain.ResultAllowed || reload.Code != "ok" ||
		reload.Actor != bot || !reload.Timestamp.Equal(c.Now()) || string(reload.Changes) != `{"files":2}` {
		t.Errorf("RecordEvent(reload) = %s; want an allowed event (code ok) by the actor, now, with its changes", js(t, reload))
	}
	c.Add(time.Second)
	// A refused call: its result and code are kept; no actor is the system.
	refused, err := s.RecordEvent(ctx, Event{Action: "api.refused", Target: "/v1/agents", Result: domain.ResultDenied, Code: "forbidden", Reason: "no grant"})
	if err != nil {
		t.Fatalf("RecordEvent(refused) = %v", err)
	}
	if refused.Result != domain.ResultDenied || refused.Code != "forbidden" || refused.Actor != (domain.Actor{Type: domain.ActorSystem}) || refused.Changes != nil {
		t.Errorf("RecordEvent(refused) = %s; want denied, forbidden, by the system, no changes", js(t, refused))
	}
	// Changes that cannot be encoded fail the event, and nothing is written.
	if _, err := s.RecordEvent(ctx, Event{Action: "x", Changes: map[string]any{"ch": make(chan int)}}); err == nil {
		t.Error("RecordEvent(unencodable changes) = nil; want an error")
	}

	for _, tt := range []struct {
		f    AuditFilter
		want []domain.AuditEntry
	}{
		{AuditFilter{Kind: domain.KindEvent}, []domain.AuditEntry{refused, reload}},
		{AuditFilter{Kind: domain.KindEvent, Result: domain.ResultDenied}, []domain.AuditEntry{refused}},
		{AuditFilter{Action: "extension.reload"}, []domain.AuditEntry{reload}},
		{AuditFilter{Kind: domain.KindDecision}, []domain.AuditEntry{}},
	} {
		tt.f.Limit = 10
		got, _, err := s.QueryAudit(ctx, tt.f)
		if err != nil || js(t, got) != js(t, tt.want) {
			t.Errorf("QueryAudit(%+v) = %s, %v; want %s", tt.f, js(t, got), err, js(t, tt.want))
		}
	}
}

func testChangesAreAudited(t *testing.T, s *Store, c *clock) {
	admin := domain.Actor{Type: domain.ActorKey, ID: "key_admin", Name: "admin", OnBehalfOf: "user-9"}
	ctx := WithActor(t.Context(), admin)
	perm := domain.Permission{Resource: "mcp:github:*", Actions: []string{"read"}}
	named := func(name, hash string, perms ...domain.Permission) domain.Agent {
		a := newAgent("u", hash, perms...)
		a.Name = name
		return a
	}
	a, err := s.CreateAgent(ctx, named("alpha", "secret-hash-1", perm), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAgent(ctx, named("gamma", "secret-hash-1"), 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("CreateAgent(duplicate token) = %v; want ErrConflict", err)
	}
	b, err := s.CreateAgent(ctx, named("beta", "secret-hash-2"), 0)
	if err != nil {
		t.Fatal(err)
	}
	name := "renamed"
	if _, err := s.UpdateAgent(ctx, a.ID, AgentUpdate{Name: &name}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateToken(ctx, a.ID, "secret-hash-3"); err != nil {
		t.Fatal(err)
	}
	d := delegate(t, s, a.ID, b.ID, c.Now().Add(time.Hour))
	for range 2 { // the second changes nothing
		if _, err := s.RevokeDelegation(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	ap := request(t, s, a, "execute", "mcp:deploy:production", c.Now().Add(time.Hour))
	if _, err := s.ResolveApproval(ctx, ap.ID, domain.ApprovalApproved, "fine"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second changes nothing
		if _, err := s.RevokeAgent(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
	}
	// A decision is audited, but not as an event.
	if _, err := s.InsertAudit(ctx, domain.AuditEntry{AgentID: a.ID, Action: "read", Resource: "r", Result: domain.ResultAllowed, Code: "allowed", Reason: "r"}, Consumption{}); err != nil {
		t.Fatal(err)
	}

	// The delegation was made without a caller (the helper): the system's.
	system := domain.Actor{Type: domain.ActorSystem}
	want := []struct {
		action, target, agent string
		actor                 domain.Actor
	}{
		{"agent.create", a.ID, a.ID, admin},
		{"agent.create", b.ID, b.ID, admin},
		{"agent.update", a.ID, a.ID, admin},
		{"agent.rotate", a.ID, a.ID, admin},
		{"delegation.create", d.ID, b.ID, system},
		{"delegation.revoke", d.ID, b.ID, admin},
		{"approval.approve", ap.ID, a.ID, admin},
		{"agent.revoke", b.ID, b.ID, admin},
	}
	got := events(t, s)
	if len(got) != len(want) {
		var actions []string
		for _, e := range got {
			actions = append(actions, e.Action)
		}
		t.Fatalf("events = %v; want %d: %v", actions, len(want), want)
	}
	for i, e := range got {
		w := want[i]
		if e.Action != w.action || e.Resource != w.target || e.AgentID != w.agent {
			t.Errorf("event %d = %s on %s (agent %s); want %s on %s (agent %s)", i, e.Action, e.Resource, e.AgentID, w.action, w.target, w.agent)
		}
		if e.Actor != w.actor {
			t.Errorf("event %d (%s) actor = %+v; want %+v", i, e.Action, e.Actor, w.actor)
		}
		if e.Kind != domain.KindEvent || e.Result != domain.ResultAllowed || e.Code != "ok" || !e.Timestamp.Equal(c.Now()) {
			t.Errorf("event %d (%s) = kind %s, %s/%s at %s; want an allowed event (ok) at %s", i, e.Action, e.Kind, e.Result, e.Code, e.Timestamp, c.Now())
		}
		if strings.Contains(string(e.Changes), "secret-hash") {
			t.Errorf("event %d (%s) changes = %s; want no token hash", i, e.Action, e.Changes)
		}
	}
	// An update shows what changed, and only that.
	if upd := got[2]; string(upd.Changes) != `{"after":{"name":"renamed"},"before":{"name":"alpha"}}` {
		t.Errorf("agent.update changes = %s; want the name before and after", upd.Changes)
	}
	if appr := got[6]; appr.OwnerID != "u" || !strings.Contains(string(appr.Changes), `"note":"fine"`) {
		t.Errorf("approval.approve = owner %q, changes %s; want owner u, the note", appr.OwnerID, appr.Changes)
	}
}
