package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
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
	entry := store.AuditEntry{
		AgentID: d.AgentID, OwnerID: d.OwnerID, Action: req.Action, Resource: req.Resource,
		Arguments: compactJSON(req.Arguments), Result: store.ResultDenied, Code: d.Code, Reason: d.Reason,
		DurationUS: time.Since(start).Microseconds(),
	}
	if d.Allowed {
		entry.Result = store.ResultAllowed
	}
	if req.Context != nil {
		entry.IP, entry.UserAgent = req.Context.IP, req.Context.UserAgent
	}
	// No audit row, no answer: a decision the compliance trail cannot show
	// is not given.
	entry, err = s.store.InsertAudit(ctx, entry)
	if err != nil {
		return api.AuthorizeResponse{}, &Error{Kind: KindInternal, Code: "audit_unavailable",
			Message: "the decision could not be audited, so it is not given", Err: err}
	}
	return api.AuthorizeResponse{Allowed: d.Allowed, Code: d.Code, Reason: d.Reason, AuditID: entry.ID}, nil
}

func (s *Service) decisionInput(req api.AuthorizeRequest, bearer string) (engine.Input, error) {
	in := engine.Input{Action: req.Action, Resource: req.Resource, Now: s.now()}
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
	if c := req.Context; c != nil {
		if c.IP != "" {
			if _, err := netip.ParseAddr(c.IP); err != nil {
				return in, invalid("invalid_field", "context.ip %q is not an IP address", c.IP)
			}
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
