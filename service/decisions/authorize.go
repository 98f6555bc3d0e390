// Package decisions answers POST /v1/authorize: it validates the request,
// asks the engine, redoes under the agent's lock a decision that consumes
// quota or an approval, and commits the audit row before answering.
package decisions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service/approvals"
	"github.com/kavach-dev/kavach/service/credentials"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/store"
	"github.com/kavach-dev/kavach/telemetry"
)

// Store is what decisions read and write.
type Store interface {
	InsertAudit(ctx context.Context, e domain.AuditEntry, use store.Consumption) (domain.AuditEntry, error)
	CountCalls(ctx context.Context, agentID, resource string, since time.Time) (map[string]int, error)
	GetKey(ctx context.Context, id string) (domain.APIKey, error)
}

// Decisions is safe for concurrent use.
type Decisions struct {
	store     Store
	engine    *engine.Engine
	rep       *replica.Replica
	approvals *approvals.Approvals
	creds     *credentials.Credentials
	now       func() time.Time
	log       *slog.Logger
	// traceArguments puts arguments on decision spans (TraceArguments).
	traceArguments bool
	// spanAttrs are attribute slices reused from one decision span to the
	// next (traceDecision).
	spanAttrs sync.Pool

	// agentLocks serialise, per agent, the decisions that consume something
	// (rate-limit quota, an approval): count, decide and record happen as one
	// step, so N concurrent calls under a limit of N get exactly N allows.
	agentLocks [64]sync.Mutex
}

// New returns decisions by eng over st: approvals opens the requests a
// decision needs, creds resolves MCP access tokens and learns of keys
// revoked elsewhere.
func New(st Store, eng *engine.Engine, rep *replica.Replica, ap *approvals.Approvals, creds *credentials.Credentials,
	now func() time.Time, log *slog.Logger) *Decisions {
	return &Decisions{store: st, engine: eng, rep: rep, approvals: ap, creds: creds, now: now, log: log}
}

const maxUserAgentLen = 512

// Authorize decides one request and commits its audit row before returning.
// bearer is the agent's token (its own Authorization header, or the one the
// app forwards beside its key), "" if none; the caller, recorded in the
// row, is the actor ctx carries. Only
// malformed requests fail without a decision; every decision, allowed or
// denied, known agent or not, is audited. While the database is
// unavailable (locked, read-only, unreachable, slower than the store's
// timeout) it fails with 503 audit_unavailable: no answer, never an allow.
func (s *Decisions) Authorize(ctx context.Context, req api.AuthorizeRequest, bearer string, explain bool) (api.AuthorizeResponse, error) {
	ctx, span := telemetry.Start(ctx, spanDecision)
	defer span.End()
	res, err := s.authorize(ctx, req, bearer, explain)
	if err != nil {
		err = auditUnavailable(err)
		traceFailure(span, err)
		return api.AuthorizeResponse{}, err
	}
	return res, nil
}

// auditUnavailable turns a failure of the database on the decision path
// (reading call counts, opening an approval request, committing the audit
// row) into 503 audit_unavailable; other errors pass.
func auditUnavailable(err error) error {
	if _, ok := apperr.As(err); ok {
		return err
	}
	reason := store.UnavailableReason(err)
	if reason == "" {
		return err
	}
	return &apperr.Error{Kind: apperr.Unavailable, Code: "audit_unavailable",
		Message: "the database is unavailable (" + reason + "), so the decision could not be audited and is not given; retry shortly", Err: err}
}

func (s *Decisions) authorize(ctx context.Context, req api.AuthorizeRequest, bearer string, explain bool) (api.AuthorizeResponse, error) {
	start := time.Now()
	if err := s.rep.CheckReady(); err != nil {
		return api.AuthorizeResponse{}, err
	}
	var scopeKeys []string
	if bearer != "" && req.AgentID == "" && core.IsAccessToken(bearer) {
		// An MCP client's OAuth access token: decide as its grant's agent,
		// limited to the token's scopes.
		id, keys, err := s.creds.AgentOfAccessToken(ctx, bearer)
		if err != nil {
			return api.AuthorizeResponse{}, err
		}
		req.AgentID, bearer, scopeKeys = id, "", keys
	}
	in, err := s.decisionInput(req, bearer)
	if err != nil {
		return api.AuthorizeResponse{}, err
	}
	in.ScopeKeys = scopeKeys
	d, err := s.decide(ctx, in)
	if err != nil {
		return api.AuthorizeResponse{}, err
	}
	if store.ActorFrom(ctx).Type == domain.ActorAgent && badCredential[d.Code] {
		// The token is the caller's only credential, and it is no good: a
		// refusal (401), audited within the refusals' budget, not a decision
		// row per request, which anyone could pile up. An app asking with its
		// own key for a token it received gets the decision, as KavachOS's
		// authorizeByToken does.
		return api.AuthorizeResponse{}, core.Unauthorized(d.Code, "%s", d.Reason)
	}
	if d.Consumes {
		// The policy says the decision depends on the call counts or uses
		// something up: decide again under the agent's lock, at the time the
		// lock was granted and with the real call counts, and record what the
		// allow uses before anyone else decides for this agent.
		mu := s.agentLock(d.AgentID)
		mu.Lock()
		defer mu.Unlock()
		if d, err = s.decideWithCounts(ctx, &in, d.AgentID); err != nil {
			return api.AuthorizeResponse{}, err
		}
	}
	for attempt := 0; ; attempt++ {
		entry, use, err := s.auditEntry(ctx, d, req)
		if err != nil {
			return api.AuthorizeResponse{}, err
		}
		entry.DurationUS = time.Since(start).Microseconds()
		// No audit row, no answer: a decision the compliance trail cannot
		// show is not given.
		entry, err = s.store.InsertAudit(ctx, entry, use)
		lostApproval := errors.Is(err, store.ErrConflict) && use.ApprovalID != ""
		if (lostApproval || errors.Is(err, store.ErrRateLimited)) && attempt < 3 {
			// Between the decision and the commit, the approval stopped being
			// usable (it expired, or another sidecar used it) or other
			// sidecars used up the quota: decide again on the current state,
			// so what gets audited is the decision that holds.
			if lostApproval {
				if err := s.approvals.Refresh(ctx, use.ApprovalID); err != nil {
					return api.AuthorizeResponse{}, err
				}
			}
			if d, err = s.decideWithCounts(ctx, &in, d.AgentID); err != nil {
				return api.AuthorizeResponse{}, err
			}
			continue
		}
		if errors.Is(err, store.ErrKeyRevoked) {
			// Revoked on another replica since this one cached the key: the
			// database, read in the audit row's transaction, has the last word.
			if k, gerr := s.store.GetKey(ctx, entry.Actor.ID); gerr == nil {
				s.creds.Put(k)
			}
			return api.AuthorizeResponse{}, core.Unauthorized("key_revoked", "the API key %s was revoked", entry.Actor.ID)
		}
		if err != nil {
			if store.IsUnavailable(err) {
				return api.AuthorizeResponse{}, auditUnavailable(err)
			}
			return api.AuthorizeResponse{}, &apperr.Error{Kind: apperr.Internal, Code: "audit_unavailable",
				Message: "the decision could not be audited, so it is not given", Err: err}
		}
		if use.ApprovalID != "" {
			if err := s.approvals.Refresh(ctx, use.ApprovalID); err != nil {
				return api.AuthorizeResponse{}, err
			}
		}
		s.traceDecision(ctx, entry)
		res := api.AuthorizeResponse{Allowed: d.Allowed, Code: d.Code, Reason: entry.Reason, AuditID: entry.ID}
		if d.ApprovalRequired {
			res.ApprovalID = entry.ApprovalID
		}
		if explain {
			// The same facts as the decision: the explanation describes it.
			if res.Explanation, err = s.engine.Explain(ctx, in); err != nil {
				return api.AuthorizeResponse{}, err
			}
		}
		return res, nil
	}
}

// badCredential are the decisions that say an agent's token is no good.
var badCredential = map[string]bool{"invalid_token": true, "agent_revoked": true, "agent_expired": true}

// decideWithCounts decides with the current time and the agent's calls in
// the last hour; the caller holds the agent's lock.
func (s *Decisions) decideWithCounts(ctx context.Context, in *engine.Input, agentID string) (engine.Decision, error) {
	in.Now = s.now()
	calls, err := s.store.CountCalls(ctx, agentID, in.Resource, in.Now.Add(-store.RateWindow))
	if err != nil {
		return engine.Decision{}, fmt.Errorf("count calls: %w", err)
	}
	in.Calls = calls
	return s.decide(ctx, *in)
}

// decide evaluates the policy. An evaluation error (say, a runtime error in
// a user extension) is a denial, audited like any other: fail closed, and
// keep the one-row-per-decision promise.
func (s *Decisions) decide(ctx context.Context, in engine.Input) (engine.Decision, error) {
	d, err := s.engine.Decide(ctx, in)
	if err == nil {
		return d, nil
	}
	if ctx.Err() != nil {
		return d, ctx.Err()
	}
	s.log.Error("policy evaluation failed; denying", "error", err)
	return engine.Decision{Allowed: false, Code: "policy_error", AgentID: in.AgentID,
		Reason: "the policy could not be evaluated, so the call is denied: " + err.Error()}, nil
}

// auditEntry builds the audit row of a decision and what the call consumes;
// for a call that needs approval it opens (or reuses) the request.
func (s *Decisions) auditEntry(ctx context.Context, d engine.Decision, req api.AuthorizeRequest) (domain.AuditEntry, store.Consumption, error) {
	entry := domain.AuditEntry{
		AgentID: d.AgentID, OwnerID: d.OwnerID, Action: req.Action, Resource: req.Resource,
		Arguments: core.CompactJSON(req.Arguments), Result: domain.ResultDenied, Code: d.Code, Reason: d.Reason,
		Actor: store.ActorFrom(ctx),
	}
	if entry.Actor.Type == domain.ActorAgent {
		// The agent asked for itself: its ID is known once decided.
		entry.Actor.ID = d.AgentID
	}
	if req.Context != nil {
		entry.IP, entry.UserAgent = req.Context.IP, req.Context.UserAgent
	}
	var use store.Consumption
	switch {
	case d.Allowed:
		entry.Result = domain.ResultAllowed
		if p := d.Permission; p != nil {
			for _, l := range p.RateLimits {
				use.Rates = append(use.Rates, store.RateEvent{AgentID: d.AgentID, PermKey: l.Key, Resource: req.Resource, Limit: l.Max})
			}
			// The row names an approval only when this call used it: an
			// approvalId sent with a call that needed none is not "used".
			use.ApprovalID = p.ApprovalID
			entry.ApprovalID = p.ApprovalID
		}
	case d.ApprovalRequired:
		a, err := s.approvals.Request(ctx, d, req)
		if err != nil {
			return entry, use, err
		}
		entry.ApprovalID = a.ID
		entry.Reason = fmt.Sprintf("%s (approval %s, expires %s)", d.Reason, a.ID, api.FormatTime(a.ExpiresAt))
	}
	return entry, use, nil
}

func (s *Decisions) agentLock(agentID string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(agentID))
	return &s.agentLocks[h.Sum32()%uint32(len(s.agentLocks))]
}

func (s *Decisions) decisionInput(req api.AuthorizeRequest, bearer string) (engine.Input, error) {
	in := engine.Input{Action: req.Action, Resource: req.Resource, Now: s.now(), Arguments: req.Arguments, ApprovalID: req.ApprovalID}
	switch {
	case req.AgentID != "" && bearer != "":
		return in, core.Invalid("ambiguous_identity", "give either agentId or an Authorization bearer token, not both")
	case req.AgentID != "":
		if err := core.CheckID("agentId", req.AgentID); err != nil {
			return in, err
		}
		in.AgentID = req.AgentID
	case bearer != "":
		if !core.WellFormedToken(bearer) {
			return in, &apperr.Error{Kind: apperr.Unauthorized, Code: "malformed_token",
				Message: "the bearer token is not a Kavach agent token (kv_ followed by 43 base64url characters)"}
		}
		in.TokenHash = core.HashToken(bearer)
	default:
		return in, core.Invalid("missing_field", "agentId is required unless an Authorization: Bearer kv_… header is sent")
	}
	// One concrete action and resource, of the characters the policy's
	// grammar allows: a wildcard, a bidi control or an invisible character
	// is a bad request, never a decision.
	if err := core.ValidateRequestAction(req.Action); err != nil {
		return in, err
	}
	if err := core.ValidateResource(req.Resource); err != nil {
		return in, err
	}
	if len(req.Arguments) > 0 {
		trimmed := bytes.TrimSpace(req.Arguments)
		if !bytes.HasPrefix(trimmed, []byte("{")) && !bytes.Equal(trimmed, []byte("null")) {
			return in, core.Invalid("invalid_field", "arguments must be a JSON object")
		}
	}
	if req.ApprovalID != "" {
		if err := core.CheckID("approvalId", req.ApprovalID); err != nil {
			return in, err
		}
	}
	if c := req.Context; c != nil {
		if c.IP != "" {
			ip, err := netip.ParseAddr(c.IP)
			if err != nil {
				return in, core.Invalid("invalid_field", "context.ip %q is not an IP address", c.IP)
			}
			// One spelling per address: allowlists compare canonical forms,
			// and an IPv4-mapped IPv6 address is its IPv4 address.
			in.IP = ip.Unmap().WithZone("").String()
		}
		if len(c.UserAgent) > maxUserAgentLen {
			return in, core.Invalid("invalid_field", "context.userAgent is longer than %d bytes", maxUserAgentLen)
		}
		if core.HasControl(c.UserAgent) {
			return in, core.Invalid("invalid_field", "context.userAgent contains a control character")
		}
	}
	return in, nil
}
