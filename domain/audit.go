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
	// Chain places the row in its hash chain (package auditchain).
	Chain ChainLink `json:"chain"`
}

// ChainLink is a row's place in the tamper-evident audit trail: the chain
// of the writer that committed it, its position (1, 2, … within the
// chain), the hash of the row before it and its own hash, which covers
// its content and PrevHash.
type ChainLink struct {
	ID       string `json:"id"`
	Seq      int64  `json:"seq"`
	PrevHash string `json:"prevHash"`
	Hash     string `json:"hash"`
}
