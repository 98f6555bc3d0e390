package domain

import (
	"encoding/json"
	"time"
)

// Audit results.
const (
	ResultAllowed = "allowed"
	ResultDenied  = "denied"
)

// AuditEntry is one audit row: a decision (Kind "decision") or an event
// (Kind "event": a change of state, or a refused API call). Arguments is
// the request's arguments as JSON (nil when none were given); Changes an
// event's before and after; Actor the credential behind the row.
type AuditEntry struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	AgentID    string          `json:"agentId"`
	OwnerID    string          `json:"ownerId"`
	Action     string          `json:"action"`
	Resource   string          `json:"resource"`
	Arguments  json.RawMessage `json:"arguments,omitempty"`
	Result     string          `json:"result"`
	Code       string          `json:"code"`
	Reason     string          `json:"reason"`
	IP         string          `json:"ip,omitempty"`
	UserAgent  string          `json:"userAgent,omitempty"`
	DurationUS int64           `json:"durationUs"`
	ApprovalID string          `json:"approvalId,omitempty"`
	Timestamp  time.Time       `json:"timestamp"`
	Actor      Actor           `json:"actor"`
	Changes    json.RawMessage `json:"changes,omitempty"`
}
