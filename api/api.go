// Package api defines the JSON shapes of the sidecar's HTTP API, shared by
// the server, the Go client and the CLI so the three cannot drift apart.
package api

import (
	"encoding/json"
	"time"

	"github.com/kavach-dev/kavach/store"
)

// Agent is an agent as the API returns it; the token never appears.
type Agent = store.Agent

// Permission grants actions on a resource pattern.
type Permission = store.Permission

// AuditEntry is one audit row.
type AuditEntry = store.AuditEntry

// Delegation is a delegation as the API returns it.
type Delegation = store.Delegation

// Approval is an approval request.
type Approval = store.Approval

// AgentWithToken is returned by create and rotate: the only time the token
// is shown.
type AgentWithToken struct {
	Agent
	Token string `json:"token"`
}

// CreateAgentRequest is the body of POST /v1/agents.
type CreateAgentRequest struct {
	OwnerID     string         `json:"ownerId"`
	Name        string         `json:"name"`
	Type        string         `json:"type,omitempty"`
	Permissions []Permission   `json:"permissions"` // null or absent: agents.defaultPermissions
	ExpiresAt   *time.Time     `json:"expiresAt,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
}

// UpdateAgentRequest is the body of PATCH /v1/agents/{id}. Absent fields are
// unchanged; "expiresAt": null removes the expiry.
type UpdateAgentRequest struct {
	Name        *string         `json:"name,omitempty"`
	Permissions *[]Permission   `json:"permissions,omitempty"`
	ExpiresAt   json.RawMessage `json:"expiresAt,omitempty"`
	Metadata    *map[string]any `json:"metadata,omitempty"`
}

// AuthorizeRequest is the body of POST /v1/authorize. AgentID is omitted
// when the agent is identified by its bearer token.
type AuthorizeRequest struct {
	AgentID   string          `json:"agentId,omitempty"`
	Action    string          `json:"action"`
	Resource  string          `json:"resource"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Context   *RequestContext `json:"context,omitempty"`
	// ApprovalID names an approved request, for a permission that requires one.
	ApprovalID string `json:"approvalId,omitempty"`
}

// RequestContext carries facts about the agent's own caller.
type RequestContext struct {
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"userAgent,omitempty"`
}

// AuthorizeResponse is the decision. It is always HTTP 200.
type AuthorizeResponse struct {
	Allowed bool   `json:"allowed"`
	Code    string `json:"code"`
	Reason  string `json:"reason"`
	AuditID string `json:"auditId"`
	// ApprovalID is the request opened when code is approval_required.
	ApprovalID string `json:"approvalId,omitempty"`
	// Explanation, with ?explain=true: every permission considered, its
	// delegation path and the outcome of checking it.
	Explanation json.RawMessage `json:"explanation,omitempty"`
}

// DelegateRequest is the body of POST /v1/delegations. MaxDepth defaults to 1.
type DelegateRequest struct {
	FromAgent   string       `json:"fromAgent"`
	ToAgent     string       `json:"toAgent"`
	Permissions []Permission `json:"permissions"`
	ExpiresAt   *time.Time   `json:"expiresAt"`
	MaxDepth    *int         `json:"maxDepth,omitempty"`
}

// DelegationList is the body of GET /v1/agents/{id}/delegations.
type DelegationList struct {
	Delegations []Delegation `json:"delegations"`
}

// EffectivePermission is one entry of GET /v1/agents/{id}/effective-permissions.
// Source is "own" or "delegation"; delegated entries name their delegation
// and list the constraint sets that apply (their own and inherited ones).
type EffectivePermission struct {
	Resource     string     `json:"resource"`
	Actions      []string   `json:"actions"`
	Constraints  any        `json:"constraints,omitempty"`
	Source       string     `json:"source"`
	DelegationID string     `json:"delegationId,omitempty"`
	FromAgent    string     `json:"fromAgent,omitempty"`
	Depth        int        `json:"depth,omitempty"`
	ExpiresAt    *time.Time `json:"expiresAt,omitempty"`
}

// EffectivePermissions is the body of GET /v1/agents/{id}/effective-permissions.
type EffectivePermissions struct {
	AgentID     string                `json:"agentId"`
	Permissions []EffectivePermission `json:"permissions"`
}

// ResolveApprovalRequest is the body of POST /v1/approvals/{id}/approve and
// /deny. Who resolved it is the authenticated credential; OnBehalfOf is the
// user the app vouches for, recorded beside it. RespondedBy is the older
// spelling of OnBehalfOf (KavachOS's approve(id, respondedBy)).
type ResolveApprovalRequest struct {
	OnBehalfOf  string `json:"onBehalfOf,omitempty"`
	RespondedBy string `json:"respondedBy,omitempty"`
	Note        string `json:"note,omitempty"`
}

// APIKey is an API key as the API returns it: never its secret.
type APIKey = store.APIKey //nolint:revive // exported: api.APIKey is a published name (clients, docs); renaming it would break them

// Actor is the credential behind an audit row.
type Actor = store.Actor

// CreateKeyRequest is the body of POST /v1/keys.
type CreateKeyRequest struct {
	Name      string     `json:"name"`
	Roles     []string   `json:"roles"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// KeyWithSecret is returned by POST /v1/keys: the only time the key is
// shown.
type KeyWithSecret struct {
	APIKey
	Key string `json:"key"`
}

// KeyList is the body of GET /v1/keys.
type KeyList struct {
	Keys []APIKey `json:"keys"`
}

// AgentTokenHeader carries an agent's token beside the app's own key
// (Authorization: Bearer kvk_…) when the app asks for that agent's
// decision: KavachOS's authorizeByToken.
const AgentTokenHeader = "Kavach-Agent-Token" //nolint:gosec // G101: a header name, not a credential

// ApprovalList is the body of GET /v1/approvals.
type ApprovalList struct {
	Approvals []Approval `json:"approvals"`
}

// AgentList is the body of GET /v1/agents.
type AgentList struct {
	Agents []Agent `json:"agents"`
}

// AuditPage is the body of GET /v1/audit. NextCursor is empty on the last page.
type AuditPage struct {
	Entries    []AuditEntry `json:"entries"`
	NextCursor string       `json:"nextCursor"`
}

// ErrorBody is every error response.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Error has a stable machine code and a message for humans.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Health is the body of GET /health.
type Health struct {
	Status        string `json:"status"`
	Database      string `json:"database"`
	SchemaVersion int    `json:"schemaVersion"`
	Version       string `json:"version"`
	// Sync is this replica's position in the change feed.
	Sync *SyncStatus `json:"sync,omitempty"`
}

// SyncStatus is a replica's position in the shared database's change feed.
type SyncStatus struct {
	// AppliedSeq is the last change applied to this replica's OPA store.
	AppliedSeq int64 `json:"appliedSeq"`
	// LatestSeq is the newest change in the database.
	LatestSeq int64 `json:"latestSeq"`
	// Lag is how many changes this replica is behind.
	Lag int64 `json:"lag"`
	// LastSyncAgeMs is how long ago the feed was last read.
	LastSyncAgeMs int64 `json:"lastSyncAgeMs"`
	// Listening is true while a PostgreSQL LISTEN connection is up.
	Listening bool `json:"listening"`
}
