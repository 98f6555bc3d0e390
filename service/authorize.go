package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sync"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/store"
)

const (
	maxResourceLen  = 1024
	maxUserAgentLen = 512
)

// Authorize decides one request and commits its audit row before returning.
// bearer is the agent's token (its own Authorization header, or the one the
// app forwards beside its key), "" if none; the caller, recorded in the
// row, is the actor ctx carries. Only
// malformed requests fail without a decision; every decision, allowed or
// denied, known agent or not, is audited.
func (s *Service) Authorize(ctx context.Context, req api.AuthorizeRequest, bearer string, explain bool) (api.AuthorizeResponse, error) {
	start := time.Now()
	if err := s.checkReady(); err != nil {
		return api.AuthorizeResponse{}, err
	}
	var scopeKeys []string
	if bearer != "" && req.AgentID == "" && isAccessToken(bearer) {
		// An MCP client's OAuth access token: decide as its grant's agent,
		// limited to the token's scopes.
		id, keys, err := s.agentOfAccessToken(ctx, bearer)
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
	if store.ActorFrom(ctx).Type == store.ActorAgent && badCredential[d.Code] {
		// The token is the caller's only credential, and it is no good: a
		// refusal (401), audited within the refusals' budget, not a decision
		// row per request, which anyone could pile up. An app asking with its
		// own key for a token it received gets the decision, as KavachOS's
		// authorizeByToken does.
		return api.AuthorizeResponse{}, unauthorized(d.Code, "%s", d.Reason)
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
				if err := s.refreshApproval(ctx, use.ApprovalID); err != nil {
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
				s.keys.put(k)
			}
			return api.AuthorizeResponse{}, unauthorized("key_revoked", "the API key %s was revoked", entry.Actor.ID)
		}
		if err != nil {
			return api.AuthorizeResponse{}, &Error{Kind: KindInternal, Code: "audit_unavailable",
				Message: "the decision could not be audited, so it is not given", Err: err}
		}
		if use.ApprovalID != "" {
			if err := s.refreshApproval(ctx, use.ApprovalID); err != nil {
				return api.AuthorizeResponse{}, err
			}
		}
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
func (s *Service) decideWithCounts(ctx context.Context, in *engine.Input, agentID string) (engine.Decision, error) {
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
func (s *Service) decide(ctx context.Context, in engine.Input) (engine.Decision, error) {
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
func (s *Service) auditEntry(ctx context.Context, d engine.Decision, req api.AuthorizeRequest) (store.AuditEntry, store.Consumption, error) {
	entry := store.AuditEntry{
		AgentID: d.AgentID, OwnerID: d.OwnerID, Action: req.Action, Resource: req.Resource,
		Arguments: compactJSON(req.Arguments), Result: store.ResultDenied, Code: d.Code, Reason: d.Reason,
		ApprovalID: req.ApprovalID, Actor: store.ActorFrom(ctx),
	}
	if entry.Actor.Type == store.ActorAgent {
		// The agent asked for itself: its ID is known once decided.
		entry.Actor.ID = d.AgentID
	}
	if req.Context != nil {
		entry.IP, entry.UserAgent = req.Context.IP, req.Context.UserAgent
	}
	var use store.Consumption
	switch {
	case d.Allowed:
		entry.Result = store.ResultAllowed
		if p := d.Permission; p != nil {
			for _, l := range p.RateLimits {
				use.Rates = append(use.Rates, store.RateEvent{AgentID: d.AgentID, PermKey: l.Key, Resource: req.Resource, Limit: l.Max})
			}
			use.ApprovalID = p.ApprovalID
		}
	case d.ApprovalRequired:
		a, err := s.requestApproval(ctx, d, req)
		if err != nil {
			return entry, use, err
		}
		entry.ApprovalID = a.ID
		entry.Reason = fmt.Sprintf("%s (approval %s, expires %s)", d.Reason, a.ID, a.ExpiresAt.Format(time.RFC3339))
	}
	return entry, use, nil
}

func (s *Service) agentLock(agentID string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(agentID))
	return &s.agentLocks[h.Sum32()%uint32(len(s.agentLocks))]
}

func (s *Service) decisionInput(req api.AuthorizeRequest, bearer string) (engine.Input, error) {
	in := engine.Input{Action: req.Action, Resource: req.Resource, Now: s.now(), Arguments: req.Arguments, ApprovalID: req.ApprovalID}
	switch {
	case req.AgentID != "" && bearer != "":
		return in, invalid("ambiguous_identity", "give either agentId or an Authorization bearer token, not both")
	case req.AgentID != "":
		if err := checkID("agentId", req.AgentID); err != nil {
			return in, err
		}
		in.AgentID = req.AgentID
	case bearer != "":
		if !wellFormedToken(bearer) {
			return in, &Error{Kind: KindUnauthorized, Code: "malformed_token",
				Message: "the bearer token is not a Kavach agent token (kv_ followed by 43 base64url characters)"}
		}
		in.TokenHash = hashToken(bearer)
	default:
		return in, invalid("missing_field", "agentId is required unless an Authorization: Bearer kv_… header is sent")
	}
	if req.Action == "" {
		return in, invalid("missing_field", "action is required")
	}
	if err := validateAction(req.Action); err != nil {
		return in, invalid("invalid_field", "%v", err)
	}
	if req.Resource == "" {
		return in, invalid("missing_field", "resource is required")
	}
	if len(req.Resource) > maxResourceLen {
		return in, invalid("invalid_field", "resource is longer than %d bytes", maxResourceLen)
	}
	if hasControl(req.Resource) {
		return in, invalid("invalid_field", "resource contains a control character")
	}
	if len(req.Arguments) > 0 {
		trimmed := bytes.TrimSpace(req.Arguments)
		if !bytes.HasPrefix(trimmed, []byte("{")) && !bytes.Equal(trimmed, []byte("null")) {
			return in, invalid("invalid_field", "arguments must be a JSON object")
		}
	}
	if req.ApprovalID != "" {
		if err := checkID("approvalId", req.ApprovalID); err != nil {
			return in, err
		}
	}
	if c := req.Context; c != nil {
		if c.IP != "" {
			ip, err := netip.ParseAddr(c.IP)
			if err != nil {
				return in, invalid("invalid_field", "context.ip %q is not an IP address", c.IP)
			}
			// One spelling per address: allowlists compare canonical forms,
			// and an IPv4-mapped IPv6 address is its IPv4 address.
			in.IP = ip.Unmap().WithZone("").String()
		}
		if len(c.UserAgent) > maxUserAgentLen {
			return in, invalid("invalid_field", "context.userAgent is longer than %d bytes", maxUserAgentLen)
		}
		if hasControl(c.UserAgent) {
			return in, invalid("invalid_field", "context.userAgent contains a control character")
		}
	}
	return in, nil
}

// compactJSON is used for arguments so the audit row holds canonical bytes.
func compactJSON(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if len(raw) == 0 || json.Compact(&b, raw) != nil || b.String() == "null" {
		return nil
	}
	return b.Bytes()
}
