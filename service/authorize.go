package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"
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

// rateWindow is the sliding window of maxCallsPerHour.
const rateWindow = time.Hour

// Authorize decides one request and commits its audit row before returning.
// bearer is the token from the Authorization header, "" if none. Only
// malformed requests fail without a decision; every decision, allowed or
// denied, known agent or not, is audited.
func (s *Service) Authorize(ctx context.Context, req api.AuthorizeRequest, bearer string) (api.AuthorizeResponse, error) {
	start := time.Now()
	in, err := s.decisionInput(req, bearer)
	if err != nil {
		return api.AuthorizeResponse{}, err
	}
	d, err := s.engine.Decide(ctx, in)
	if err != nil {
		return api.AuthorizeResponse{}, fmt.Errorf("decide: %w", err)
	}
	if consumes(d) {
		// Decide again under the agent's lock with the real call counts, and
		// record what the allow uses before anyone else decides for it.
		mu := s.agentLock(d.AgentID)
		mu.Lock()
		defer mu.Unlock()
		if in.Calls, err = s.store.CountCalls(ctx, d.AgentID, in.Resource, in.Now.Add(-rateWindow)); err != nil {
			return api.AuthorizeResponse{}, fmt.Errorf("count calls: %w", err)
		}
		if d, err = s.engine.Decide(ctx, in); err != nil {
			return api.AuthorizeResponse{}, fmt.Errorf("decide: %w", err)
		}
	}
	entry := store.AuditEntry{
		AgentID: d.AgentID, OwnerID: d.OwnerID, Action: req.Action, Resource: req.Resource,
		Arguments: compactJSON(req.Arguments), Result: store.ResultDenied, Code: d.Code, Reason: d.Reason,
		ApprovalID: req.ApprovalID,
	}
	if req.Context != nil {
		entry.IP, entry.UserAgent = req.Context.IP, req.Context.UserAgent
	}
	var use store.Consumption
	var usedApproval *store.Approval
	switch {
	case d.Allowed:
		entry.Result = store.ResultAllowed
		if p := d.Permission; p != nil {
			if p.MaxCallsPerHour > 0 {
				use.Rate = &store.RateEvent{AgentID: d.AgentID, PermKey: p.Key, Resource: req.Resource}
			}
			if p.ApprovalID != "" {
				use.ApprovalID = p.ApprovalID
				usedApproval = &store.Approval{ID: p.ApprovalID}
			}
		}
	case d.ApprovalRequired:
		a, err := s.requestApproval(ctx, d, req)
		if err != nil {
			return api.AuthorizeResponse{}, err
		}
		entry.ApprovalID = a.ID
		entry.Reason = fmt.Sprintf("%s (approval %s, expires %s)", d.Reason, a.ID, a.ExpiresAt.Format(time.RFC3339))
	}
	entry.DurationUS = time.Since(start).Microseconds()
	// No audit row, no answer: a decision the compliance trail cannot show
	// is not given.
	entry, err = s.store.InsertAudit(ctx, entry, use)
	if err != nil {
		return api.AuthorizeResponse{}, &Error{Kind: KindInternal, Code: "audit_unavailable",
			Message: "the decision could not be audited, so it is not given", Err: err}
	}
	if usedApproval != nil {
		if err := s.refreshApproval(ctx, usedApproval.ID); err != nil {
			return api.AuthorizeResponse{}, err
		}
	}
	res := api.AuthorizeResponse{Allowed: d.Allowed, Code: d.Code, Reason: entry.Reason, AuditID: entry.ID}
	if d.ApprovalRequired {
		res.ApprovalID = entry.ApprovalID
	}
	return res, nil
}

// consumes reports whether a decision made without call counts may change
// once they are known, or uses something up: then it is redone under a lock.
func consumes(d engine.Decision) bool {
	if d.Allowed {
		return d.Permission != nil && (d.Permission.MaxCallsPerHour > 0 || d.Permission.ApprovalID != "")
	}
	return strings.HasPrefix(d.Code, "approval_")
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
