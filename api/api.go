// Package api defines the JSON shapes of the sidecar's HTTP API, shared by
// the server, the Go client and the CLI so the three cannot drift apart.
package api

import (
	"encoding/json"
)

// Agent is an agent as the API returns it; the token never appears.
type Agent struct {
	ID          string         `json:"id"`
	OwnerID     string         `json:"ownerId"`
	Name        string         `json:"name"`
	Type        string         `json:"type"`
	Status      string         `json:"status"`
	Permissions []Permission   `json:"permissions"`
	Metadata    map[string]any `json:"metadata"`
	ExpiresAt   *Time          `json:"expiresAt"`
	CreatedAt   Time           `json:"createdAt"`
	UpdatedAt   Time           `json:"updatedAt"`
	RevokedAt   *Time          `json:"revokedAt,omitempty"`
}

// Permission grants actions on a resource pattern. Constraints is the JSON
// object of the constraints that apply (requireApproval, maxCallsPerHour,
// timeWindow, ipAllowlist, allowedArgPatterns); the server checks it.
type Permission struct {
	Resource    string         `json:"resource"`
	Actions     []string       `json:"actions"`
	Constraints map[string]any `json:"constraints,omitempty"`
}

// AuditEntry is one audit row: a decision (kind "decision") or an event
// (kind "event": a change of state, or a refused API call).
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
	Timestamp  Time            `json:"timestamp"`
	Actor      Actor           `json:"actor"`
	Changes    json.RawMessage `json:"changes,omitempty"`
	// The row's place in the tamper-evident trail: its chain, position
	// in it, the previous row's hash and its own (kavach audit verify).
	ChainID  string `json:"chainId,omitempty"`
	ChainSeq int64  `json:"chainSeq,omitempty"`
	PrevHash string `json:"prevHash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// Actor is the credential behind an audit row: type key, admin_env, agent,
// anonymous or system; OnBehalfOf the user it vouched for.
type Actor struct {
	Type       string `json:"type"`
	ID         string `json:"id,omitempty"`
	Name       string `json:"name,omitempty"`
	OnBehalfOf string `json:"onBehalfOf,omitempty"`
}

// Delegation is a delegation as the API returns it.
type Delegation struct {
	ID          string  `json:"id"`
	FromAgent   string  `json:"fromAgent"`
	ToAgent     string  `json:"toAgent"`
	Permissions []Grant `json:"permissions"`
	Depth       int     `json:"depth"`
	MaxDepth    int     `json:"maxDepth"`
	Status      string  `json:"status"`
	ExpiresAt   Time    `json:"expiresAt"`
	CreatedAt   Time    `json:"createdAt"`
	RevokedAt   *Time   `json:"revokedAt,omitempty"`
}

// Grant is a permission a delegation gives: Inherited lists the constraint
// sets it carries from up the chain, Chain the links it hangs from (root
// first), CoveredBy the key of the permission it was cut from.
type Grant struct {
	Resource    string         `json:"resource"`
	Actions     []string       `json:"actions"`
	Constraints map[string]any `json:"constraints,omitempty"`
	Inherited   []Inherited    `json:"inherited,omitempty"`
	Chain       []Link         `json:"chain"`
	CoveredBy   string         `json:"coveredBy"`
}

// Inherited is a constraint set a delegated permission carries from the
// chain, with the key its rate limit counts under.
type Inherited struct {
	Key         string         `json:"key"`
	Constraints map[string]any `json:"constraints"`
}

// Link is one step of a delegation chain: a permission of a delegation.
type Link struct {
	DelegationID string `json:"delegationId"`
	Index        int    `json:"index"`
}

// Approval is a request for a human to allow one call. RespondedBy is the
// ID of the credential that resolved it, RespondedByName its name,
// OnBehalfOf the user the app vouched for.
type Approval struct {
	ID              string          `json:"id"`
	AgentID         string          `json:"agentId"`
	OwnerID         string          `json:"ownerId"`
	Action          string          `json:"action"`
	Resource        string          `json:"resource"`
	Arguments       json.RawMessage `json:"arguments,omitempty"`
	Status          string          `json:"status"`
	ExpiresAt       Time            `json:"expiresAt"`
	CreatedAt       Time            `json:"createdAt"`
	RespondedAt     *Time           `json:"respondedAt,omitempty"`
	RespondedBy     string          `json:"respondedBy,omitempty"`
	RespondedByName string          `json:"respondedByName,omitempty"`
	OnBehalfOf      string          `json:"onBehalfOf,omitempty"`
	Note            string          `json:"note,omitempty"`
	UsedAt          *Time           `json:"usedAt,omitempty"`
	// URL is the approval's signed link for its owner (server.publicUrl),
	// while it is pending; only a caller who may decide it sees it.
	URL string `json:"url,omitempty"`
}

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
	ExpiresAt   *Time          `json:"expiresAt,omitempty"`
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
	ExpiresAt   *Time        `json:"expiresAt"`
	MaxDepth    *int         `json:"maxDepth,omitempty"`
}

// DelegationList is the body of GET /v1/agents/{id}/delegations: one
// page, oldest first. NextCursor is empty on the last page.
type DelegationList struct {
	Delegations []Delegation `json:"delegations"`
	NextCursor  string       `json:"nextCursor"`
}

// EffectivePermission is one entry of GET /v1/agents/{id}/effective-permissions.
// Source is "own" or "delegation"; delegated entries name their delegation.
// Constraints is the entry's own constraint set, the object a Permission
// holds (for a delegated entry, what its delegation gave). A delegated
// entry is also bound by the sets it inherits up the chain, listed in
// InheritedConstraints: every set must hold, each rate limit counting on
// its own, so they are not merged into one object.
type EffectivePermission struct {
	Resource             string          `json:"resource"`
	Actions              []string        `json:"actions"`
	Constraints          map[string]any  `json:"constraints,omitempty"`
	InheritedConstraints []ConstraintSet `json:"inheritedConstraints,omitempty"`
	Source               string          `json:"source"`
	DelegationID         string          `json:"delegationId,omitempty"`
	FromAgent            string          `json:"fromAgent,omitempty"`
	Depth                int             `json:"depth,omitempty"`
	ExpiresAt            *Time           `json:"expiresAt,omitempty"`
}

// ConstraintSet is a constraint set a delegated permission inherits, and
// where it comes from: From is the root delegator's agent ID for the
// constraints of its own permission the chain hangs from (as they are now),
// or the ID of a delegation up the chain for those its permission carried.
type ConstraintSet struct {
	From        string         `json:"from"`
	Constraints map[string]any `json:"constraints"`
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
type APIKey struct { //nolint:revive // exported: api.APIKey is a published name (clients, docs); renaming it would break them
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Roles     []string `json:"roles"`
	Status    string   `json:"status"`
	CreatedBy string   `json:"createdBy,omitempty"`
	ExpiresAt *Time    `json:"expiresAt"`
	CreatedAt Time     `json:"createdAt"`
	RevokedAt *Time    `json:"revokedAt,omitempty"`
}

// CreateKeyRequest is the body of POST /v1/keys.
type CreateKeyRequest struct {
	Name      string   `json:"name"`
	Roles     []string `json:"roles"`
	ExpiresAt *Time    `json:"expiresAt,omitempty"`
}

// KeyWithSecret is returned by POST /v1/keys: the only time the key is
// shown.
type KeyWithSecret struct {
	APIKey
	Key string `json:"key"`
}

// KeyList is the body of GET /v1/keys: one page, oldest first.
// NextCursor is empty on the last page.
type KeyList struct {
	Keys       []APIKey `json:"keys"`
	NextCursor string   `json:"nextCursor"`
}

// AgentTokenHeader carries an agent's token beside the app's own key
// (Authorization: Bearer kvk_…) when the app asks for that agent's
// decision: KavachOS's authorizeByToken.
const AgentTokenHeader = "Kavach-Agent-Token" //nolint:gosec // G101: a header name, not a credential

// ApprovalList is the body of GET /v1/approvals: one page, newest first.
// NextCursor is empty on the last page.
type ApprovalList struct {
	Approvals  []Approval `json:"approvals"`
	NextCursor string     `json:"nextCursor"`
}

// AgentList is the body of GET /v1/agents: one page, oldest first.
// NextCursor is empty on the last page.
type AgentList struct {
	Agents     []Agent `json:"agents"`
	NextCursor string  `json:"nextCursor"`
}

// Every list is paged: ?limit= (1 to MaxPageLimit, DefaultPageLimit when
// absent) items per page, and ?cursor= the nextCursor of the page before
// (absent for the first page). A cursor is opaque: pass it back as it came.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

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

// Health is the body of GET /health: liveness, from memory (the
// sidecar never asks the database to answer it).
type Health struct {
	// Status is "ok" while the process serves.
	Status string `json:"status"`
	// Database is "ok", or why the last writes failed ("locked",
	// "read-only", "unreachable", "timeout", "disk full", "I/O error").
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
	// LatestSeq is the newest change this replica has read from the feed
	// (LastSyncAgeMs ago).
	LatestSeq int64 `json:"latestSeq"`
	// Lag is how many of those it has not applied yet.
	Lag int64 `json:"lag"`
	// LastSyncAgeMs is how long ago the feed was last read.
	LastSyncAgeMs int64 `json:"lastSyncAgeMs"`
	// Listening is true while a PostgreSQL LISTEN connection is up.
	Listening bool `json:"listening"`
}

// PolicyList is the body of GET /v1/policies: the decision policies in use
// and the policy of the API itself.
type PolicyList struct {
	// Revision is a hash of every module's name and text.
	Revision        string         `json:"revision"`
	LoadedAt        Time           `json:"loadedAt"`
	Modules         []PolicyModule `json:"modules"`
	ExtensionsPath  string         `json:"extensionsPath,omitempty"`
	LastReloadAt    *Time          `json:"lastReloadAt,omitempty"`
	LastReloadError string         `json:"lastReloadError,omitempty"`
	API             AccessPolicy   `json:"api"`
}

// PolicyModule is one loaded policy file. Source is "core" (built into
// Kavach) or "extension".
type PolicyModule struct {
	File    string `json:"file"`
	Package string `json:"package"`
	Source  string `json:"source"`
	SHA256  string `json:"sha256"`
}

// AccessPolicy is the policy that decides who may call which route.
type AccessPolicy struct {
	Modules []AccessPolicyModule `json:"modules"`
	Roles   []string             `json:"roles"`
}

// AccessPolicyModule is one file of the API policy.
type AccessPolicyModule struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// VerifyRequest is the body of POST /v1/oauth/verify: whether a request to
// an MCP server may proceed, given the bearer token it carried (empty if
// none), the server's resource URI and the scopes the call needs.
type VerifyRequest struct {
	Token    string   `json:"token"`
	Resource string   `json:"resource"`
	Scopes   []string `json:"scopes"`
}

// VerifyResponse describes a valid token (Active), or an anonymous request
// admitted because mcp.enforceAuth is off.
type VerifyResponse struct {
	Active    bool     `json:"active"`
	AgentID   string   `json:"agentId,omitempty"`
	Subject   string   `json:"sub,omitempty"`
	ClientID  string   `json:"clientId,omitempty"`
	Scopes    []string `json:"scopes,omitempty"`
	Audience  []string `json:"aud,omitempty"`
	ExpiresAt *Time    `json:"expiresAt,omitempty"`
}

// KeySet is a JSON Web Key Set (RFC 7517), as POST /v1/oauth/keys/rotate
// returns it: the keys that verify MCP access tokens.
type KeySet struct {
	Keys []map[string]any `json:"keys"`
}
