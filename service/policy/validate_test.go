package policy

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/store"
)

type recorded struct {
	event store.Event
	actor domain.Actor
}

// events records audit events, with the actor each was recorded for.
type events struct {
	mu   sync.Mutex
	list []recorded
}

func (r *events) RecordEvent(ctx context.Context, e store.Event) (domain.AuditEntry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, recorded{e, store.ActorFrom(ctx)})
	return domain.AuditEntry{}, nil
}

const validationExt = `package kavach.ext

deny_agent contains sprintf("%s: resource %q is a wildcard", [input.actor.name, p.resource]) if {
	some p in input.agent.permissions
	"*" in split(p.resource, ":")
}

deny_agent contains "a service agent" if input.agent.type == "service"

deny_agent contains "boom" if _f(input.agent.name) == 1

deny_delegation contains sprintf("to %s of %s", [input.to.type, input.to.ownerId]) if input.to.type == "service"

_f(x) := 1 if x == "boom"

_f(x) := 2 if x == "boom"
`

var testNow = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func newValidator(t *testing.T, ext map[string]string) (*Validator, *events) {
	t.Helper()
	eng, err := engine.New(t.Context(), ext)
	if err != nil {
		t.Fatal(err)
	}
	rec := &events{}
	return NewValidator(eng, rec, func() time.Time { return testNow }, slog.New(slog.DiscardHandler)), rec
}

func TestValidatorRefusesAndAudits(t *testing.T) {
	v, rec := newValidator(t, map[string]string{"v.rego": validationExt})
	actor := domain.Actor{Type: domain.ActorKey, ID: "key_1", Name: "ci"}
	ctx := store.WithActor(t.Context(), actor)
	fine := domain.Agent{OwnerID: "u1", Name: "reader", Type: "autonomous", CreatedAt: testNow,
		Permissions: []domain.Permission{{Resource: "mcp:github:repos", Actions: []string{"read"}}}}
	if err := v.NewAgent(ctx, fine); err != nil {
		t.Fatalf("NewAgent(fine) = %v", err)
	}

	bad := fine
	bad.Type = "service"
	bad.Permissions = []domain.Permission{{Resource: "mcp:*", Actions: []string{"read"}}}
	err := v.NewAgent(ctx, bad)
	e, ok := apperr.As(err)
	if !ok || e.Kind != apperr.Unprocessable || e.Code != CodeViolation ||
		!strings.HasSuffix(e.Message, `: a service agent; ci: resource "mcp:*" is a wildcard`) {
		t.Fatalf("NewAgent(bad) = %v; want 422 policy_violation with both messages, sorted", err)
	}
	if len(rec.list) != 0 {
		t.Fatalf("audited before Audit: %+v", rec.list)
	}
	if got := v.Audit(ctx, err); got != err { //nolint:errorlint // the very error, passed through
		t.Errorf("Audit returned %v; want its argument", got)
	}
	if len(rec.list) != 1 {
		t.Fatalf("audit events = %+v; want one", rec.list)
	}
	r := rec.list[0]
	if r.actor != actor || r.event.Action != "agent.create" || r.event.Result != domain.ResultDenied || r.event.Code != CodeViolation ||
		r.event.Target != "reader" || r.event.OwnerID != "u1" || r.event.Reason != e.Message {
		t.Errorf("audit event = %+v; want agent.create denied policy_violation by %v", r, actor)
	}

	// Another error passes Audit untouched and unrecorded.
	other := apperr.New(apperr.Conflict, "agent_revoked", "x")
	if got := v.Audit(ctx, other); got != other || len(rec.list) != 1 { //nolint:errorlint // the very error
		t.Errorf("Audit(other) = %v, %d events", got, len(rec.list))
	}

	// An evaluation error fails closed.
	boom := fine
	boom.ID, boom.Name = "agt_1", "boom"
	err = v.Agent(ctx, engine.OperationUpdate, boom)
	if e, ok := apperr.As(err); !ok || e.Kind != apperr.Internal || e.Code != CodeError || !strings.Contains(e.Message, "deny_agent") {
		t.Fatalf("Agent(boom) = %v; want a policy_error", err)
	}
	_ = v.Audit(ctx, err)
	if r := rec.list[len(rec.list)-1]; r.event.Action != "agent.update" || r.event.Target != "agt_1" || r.event.AgentID != "agt_1" || r.event.Code != CodeError {
		t.Errorf("audit event of a failed check = %+v", r)
	}

	from := domain.Agent{ID: "agt_a", OwnerID: "u1", Name: "a", Type: "autonomous", Status: domain.StatusActive}
	to := domain.Agent{ID: "agt_b", OwnerID: "u2", Name: "b", Type: "service", Status: domain.StatusActive}
	d := engine.ProposedDelegation{FromAgent: from.ID, ToAgent: to.ID, MaxDepth: 1, Depth: 1}
	err = v.Delegation(ctx, d, from, to)
	if e, ok := apperr.As(err); !ok || e.Code != CodeViolation || !strings.HasSuffix(e.Message, ": to service of u2") {
		t.Fatalf("Delegation = %v; want policy_violation", err)
	}
	_ = v.Audit(ctx, err)
	if r := rec.list[len(rec.list)-1]; r.event.Action != "delegation.create" || r.event.AgentID != "agt_b" || r.event.OwnerID != "u2" {
		t.Errorf("audit event of a refused delegation = %+v", r)
	}
	to.Type = "delegated"
	if err := v.Delegation(ctx, d, from, to); err != nil {
		t.Errorf("Delegation(fine) = %v", err)
	}
}

func TestValidatorOnUpdate(t *testing.T) {
	v, _ := newValidator(t, map[string]string{"v.rego": validationExt})
	var u store.AgentUpdate
	v.OnUpdate(t.Context(), &u)
	if u.Check == nil {
		t.Fatal("OnUpdate set no check")
	}
	if err := u.Check(domain.Agent{ID: "agt_1", Type: "service"}); err == nil {
		t.Error("the update's check let a service agent through")
	}
	if err := u.Check(domain.Agent{ID: "agt_1", Type: "autonomous"}); err != nil {
		t.Errorf("the update's check = %v", err)
	}
}

func TestValidatorWithoutRules(t *testing.T) {
	v, _ := newValidator(t, nil)
	ctx := t.Context()
	a := domain.Agent{Type: "service", Permissions: []domain.Permission{{Resource: "*", Actions: []string{"*"}}}}
	if err := v.NewAgent(ctx, a); err != nil {
		t.Errorf("NewAgent without rules = %v", err)
	}
	if err := v.Delegation(ctx, engine.ProposedDelegation{}, a, a); err != nil {
		t.Errorf("Delegation without rules = %v", err)
	}
	var none *Validator
	var u store.AgentUpdate
	none.OnUpdate(ctx, &u)
	if err := none.NewAgent(ctx, a); err != nil || u.Check != nil || none.Audit(ctx, nil) != nil {
		t.Errorf("a nil Validator checks: %v, %v", err, u.Check != nil)
	}
}
