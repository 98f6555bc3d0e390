package domain

import (
	"time"
)

// Link is one step of a delegation chain: a permission of a delegation.
type Link struct {
	DelegationID string `json:"delegationId"`
	Index        int    `json:"index"`
}

// Grant is a permission given by a delegation. Inherited holds the
// constraints of the delegated permissions that covered it up the chain (a
// snapshot; the root delegator's own permission applies live). Chain lists
// the links it hangs from, root first. CoveredBy is the key of the
// permission it was cut from.
type Grant struct {
	Resource    string      `json:"resource"`
	Actions     []string    `json:"actions"`
	Constraints Constraints `json:"constraints,omitzero"`
	Inherited   []Inherited `json:"inherited,omitempty"`
	Chain       []Link      `json:"chain"`
	CoveredBy   string      `json:"coveredBy"`
}

// Inherited is a constraint set a delegated permission carries from the
// chain, with the key its rate limit counts under.
type Inherited struct {
	Key         string      `json:"key"`
	Constraints Constraints `json:"constraints"`
}

// Delegation passes permissions from one agent to another.
type Delegation struct {
	ID          string     `json:"id"`
	FromAgent   string     `json:"fromAgent"`
	ToAgent     string     `json:"toAgent"`
	Permissions []Grant    `json:"permissions"`
	Depth       int        `json:"depth"`
	MaxDepth    int        `json:"maxDepth"`
	Status      string     `json:"status"`
	ExpiresAt   time.Time  `json:"expiresAt"`
	CreatedAt   time.Time  `json:"createdAt"`
	RevokedAt   *time.Time `json:"revokedAt,omitempty"`
}
