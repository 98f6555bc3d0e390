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
}
