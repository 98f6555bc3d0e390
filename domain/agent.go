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
	// (data.kavach.agents[id].trust). The store always fills it: the stored
	// trust, else the initial score's level under the configured thresholds
	// (store.Options). An Agent built by hand with no Level gets
	// DefaultTrustThresholds.Level(InitialTrustScore) from the engine.
	Trust Trust `json:"-"`
	// Incoming lists the delegations to this agent (single-agent reads only;
	// bulk loads derive it from the delegations).
	Incoming []string `json:"-"`
}
