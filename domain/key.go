package domain

import (
	"time"
)

// APIKey is a credential for the app or an operator. Hash is the SHA-256
// (hex) of the secret, which is never stored. Status is derived when read:
// active, revoked or expired.
type APIKey struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Roles     []string   `json:"roles"`
	Status    string     `json:"status"`
	CreatedBy string     `json:"createdBy,omitempty"`
	ExpiresAt *time.Time `json:"expiresAt"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	Hash      string     `json:"-"`
}
