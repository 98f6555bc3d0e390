package domain

import (
	"encoding/json"
	"time"
)

// Approval statuses. "expired" is derived: a pending or approved request
// past its expiry.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalUsed     = "used"
	ApprovalExpired  = "expired"
)

// Approval is a request for a human to allow one call.
type Approval struct {
	ID          string          `json:"id"`
	AgentID     string          `json:"agentId"`
	OwnerID     string          `json:"ownerId"`
	Action      string          `json:"action"`
	Resource    string          `json:"resource"`
	Arguments   json.RawMessage `json:"arguments,omitempty"`
	Status      string          `json:"status"`
	ExpiresAt   time.Time       `json:"expiresAt"`
	CreatedAt   time.Time       `json:"createdAt"`
	RespondedAt *time.Time      `json:"respondedAt,omitempty"`
	// RespondedBy is the ID of the credential that resolved the request
	// (key_…), RespondedByName its name, OnBehalfOf the user the app
	// vouched for.
	RespondedBy     string     `json:"respondedBy,omitempty"`
	RespondedByName string     `json:"respondedByName,omitempty"`
	OnBehalfOf      string     `json:"onBehalfOf,omitempty"`
	Note            string     `json:"note,omitempty"`
	UsedAt          *time.Time `json:"usedAt,omitempty"`
	// StoredStatus is the status without expiry applied, as the policy sees it.
	StoredStatus string `json:"-"`
}
