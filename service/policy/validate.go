package policy

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/store"
)

// The codes of writes the validation rules refuse.
const (
	// CodeViolation: an extension's deny_agent or deny_delegation refuses
	// the write (422).
	CodeViolation = "policy_violation"
	// CodeError: the rule could not be evaluated, so the write is refused
	// (500), as a decision then is (the same code).
	CodeError = "policy_error"
)

// EventRecorder records the audit event of a refused write.
type EventRecorder interface {
	RecordEvent(ctx context.Context, e store.Event) (domain.AuditEntry, error)
}

// Validator puts writes of agents and delegations to the extensions'
// validation rules (engine.AgentRule, engine.DelegationRule) before they
// are made, and audits the writes they refuse. A nil Validator checks
// nothing. It is safe for concurrent use.
type Validator struct {
	engine *engine.Engine
	store  EventRecorder
	now    func() time.Time
	log    *slog.Logger
}

// NewValidator returns the validation of writes by eng's extensions,
// auditing refusals in st.
func NewValidator(eng *engine.Engine, st EventRecorder, now func() time.Time, log *slog.Logger) *Validator {
	return &Validator{engine: eng, store: st, now: now, log: log}
}

// refused is a write the validation rules refused: the error the client
// sees and the audit event that records the refusal (Validator.Audit).
type refused struct {
	err   *apperr.Error
	event store.Event
}

func (r *refused) Error() string { return r.err.Error() }
func (r *refused) Unwrap() error { return r.err }

// NewAgent checks a new agent before the store writes it (as Agent does),
// with what the store adds: active, no nil lists or maps, times in
// milliseconds, and no ID yet.
func (v *Validator) NewAgent(ctx context.Context, a domain.Agent) error {
	a.Status = domain.StatusActive
	a.CreatedAt = a.CreatedAt.UTC().Truncate(time.Millisecond)
	a.UpdatedAt = a.CreatedAt
	if a.ExpiresAt != nil {
		t := a.ExpiresAt.UTC().Truncate(time.Millisecond)
		a.ExpiresAt = &t
	}
	if a.Metadata == nil {
		a.Metadata = map[string]any{}
	}
	if a.Permissions == nil {
		a.Permissions = []domain.Permission{}
	}
	return v.Agent(ctx, engine.OperationCreate, a)
}

// OnUpdate has the store put the agent u leaves to deny_agent inside the
// update's transaction, so that what is checked is what is written; the
// caller passes the update's error through Audit.
func (v *Validator) OnUpdate(ctx context.Context, u *store.AgentUpdate) {
	if v == nil {
		return
	}
	u.Check = func(a domain.Agent) error { return v.Agent(ctx, engine.OperationUpdate, a) }
}

// Agent checks the agent a create or an update (engine.OperationCreate,
// engine.OperationUpdate) would leave, as the API shows it, for the caller
// ctx carries (store.ActorFrom). It returns nil when no rule refuses it,
// without evaluating anything when no extension defines deny_agent.
// Otherwise the error is 422 policy_violation with the rules' messages,
// or 500 policy_error if they could not be evaluated; pass it through
// Audit once the write is abandoned.
func (v *Validator) Agent(ctx context.Context, op string, agent domain.Agent) error {
	if v == nil {
		return nil
	}
	if agents, _ := v.engine.Validates(); !agents {
		return nil
	}
	a := core.APIAgent(agent)
	if a.Permissions == nil {
		a.Permissions = []api.Permission{}
	}
	msgs, err := v.engine.DenyAgent(ctx, engine.AgentCheck{Operation: op, Agent: a, Actor: store.ActorFrom(ctx), Now: v.now().UnixNano()})
	// A create names the agent by name: it has no ID yet.
	target := a.ID
	if target == "" {
		target = a.Name
	}
	e := store.Event{Action: "agent." + op, Target: target, AgentID: a.ID, OwnerID: a.OwnerID}
	return v.refusal(ctx, e, "agent", engine.AgentRule, msgs, err, map[string]any{"operation": op, "agent": a})
}

// Delegation checks a delegation the core policy accepted, as it would be
// created, as Agent does an agent.
func (v *Validator) Delegation(ctx context.Context, d engine.ProposedDelegation, from, to domain.Agent) error {
	if v == nil {
		return nil
	}
	if _, delegations := v.engine.Validates(); !delegations {
		return nil
	}
	in := engine.DelegationCheck{Delegation: d, From: engine.Summarize(from), To: engine.Summarize(to),
		Actor: store.ActorFrom(ctx), Now: v.now().UnixNano()}
	msgs, err := v.engine.DenyDelegation(ctx, in)
	e := store.Event{Action: "delegation.create", Target: d.ToAgent, AgentID: d.ToAgent, OwnerID: to.OwnerID}
	return v.refusal(ctx, e, "delegation", engine.DelegationRule, msgs, err, map[string]any{"delegation": d})
}

// refusal is the error refusing a write, nil if msgs and err are empty.
func (v *Validator) refusal(ctx context.Context, e store.Event, what, rule string, msgs []string, err error, proposed map[string]any) error {
	e.Result, e.Changes = domain.ResultDenied, proposed
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		v.log.ErrorContext(ctx, "validation rule failed; refusing the write", "rule", rule, "error", err)
		e.Code = CodeError
		e.Reason = "the policy extensions could not check the " + what + " (" + rule + "), so the write is refused: " + err.Error()
		return &refused{err: apperr.Wrap(err, apperr.Internal, CodeError, "%s", e.Reason), event: e}
	case len(msgs) > 0:
		e.Code = CodeViolation
		e.Reason = "the policy extensions refuse the " + what + " (" + rule + "): " + strings.Join(msgs, "; ")
		proposed["messages"] = msgs
		return &refused{err: apperr.New(apperr.Unprocessable, CodeViolation, "%s", e.Reason), event: e}
	}
	return nil
}

// Audit records the refusal err holds, if it holds one, and returns err:
// callers pass every error of an abandoned write through it, after the
// write's transaction has ended.
func (v *Validator) Audit(ctx context.Context, err error) error {
	var r *refused
	if v == nil || !errors.As(err, &r) {
		return err
	}
	// The refusal stands even if the caller has gone: record it anyway.
	if _, aerr := v.store.RecordEvent(context.WithoutCancel(ctx), r.event); aerr != nil {
		v.log.ErrorContext(ctx, "refused write not audited", "action", r.event.Action, "target", r.event.Target, "error", aerr)
	}
	return err
}
