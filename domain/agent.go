package domain

import (
	"time"
)

// Agent statuses. "expired" is never stored: it is an active agent whose
// expiry has passed, derived when read.
const (
	StatusActive  = "active"
	StatusRevoked = "revoked"
	StatusExpired = "expired"
)

// Permission grants actions on a resource pattern, optionally constrained.
type Permission struct {
	Resource    string      `json:"resource"`
	Actions     []string    `json:"actions"`
	Constraints Constraints `json:"constraints,omitzero"`
}

// Agent is an AI agent identity. TokenHash is the SHA-256 (hex) of its bearer
// token; the token itself is never stored.
type Agent struct {
	ID          string         `json:"id"`
	OwnerID     string         `json:"ownerId"`
	Name        string         `json:"name"`
	Type        string         `json:"type"`
	Status      string         `json:"status"`
	Permissions []Permission   `json:"permissions"`
	Metadata    map[string]any `json:"metadata"`
	ExpiresAt   *time.Time     `json:"expiresAt"`
	CreatedAt   time.Time      `json:"createdAt"`
	UpdatedAt   time.Time      `json:"updatedAt"`
	RevokedAt   *time.Time     `json:"revokedAt,omitempty"`
	TokenHash   string         `json:"-"`
	// Trust is the agent's trust level and score as the policy sees them
	// (data.kavach.agents[id].trust). Zero until the trust scorer has
	// computed one; the engine then uses the initial score's level.
	Trust Trust `json:"-"`
	// Incoming lists the delegations to this agent (single-agent reads only;
	// bulk loads derive it from the delegations).
	Incoming []string `json:"-"`
}
