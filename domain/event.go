package domain

import (
	"encoding/json"
	"time"
)

// Event types: what webhooks subscribe to and GET /v1/events streams.
const (
	EventAgentCreated      = "agent.created"
	EventAgentUpdated      = "agent.updated"
	EventAgentRotated      = "agent.rotated"
	EventAgentRevoked      = "agent.revoked"
	EventAgentSuspended    = "agent.suspended"
	EventAgentResumed      = "agent.resumed"
	EventAgentTrustChanged = "agent.trust_changed"
	EventDelegationCreated = "delegation.created"
	EventDelegationRevoked = "delegation.revoked"
	EventAuthorizeDenied   = "authorize.denied"
	EventAuthorizeAllowed  = "authorize.allowed"
	EventApprovalRequested = "approval.requested"
	EventApprovalResolved  = "approval.resolved"
	EventAnomalyDetected   = "anomaly.detected"
	EventKeyCreated        = "key.created"
	EventKeyRevoked        = "key.revoked"
)

// EventTypes are every event type, in the order the documentation lists
// them.
var EventTypes = []string{
	EventAgentCreated, EventAgentUpdated, EventAgentRotated, EventAgentRevoked, EventAgentSuspended,
	EventAgentResumed, EventAgentTrustChanged, EventDelegationCreated, EventDelegationRevoked,
	EventAuthorizeDenied, EventAuthorizeAllowed, EventApprovalRequested, EventApprovalResolved,
	EventAnomalyDetected, EventKeyCreated, EventKeyRevoked,
}

// IsDecisionEvent reports whether typ is one event per decision
// (authorize.*): recorded only when something subscribes to it, since
// there may be thousands a second.
func IsDecisionEvent(typ string) bool {
	return typ == EventAuthorizeDenied || typ == EventAuthorizeAllowed
}

// Event is one recorded event. Seq orders events in commit order; ID is
// the webhook-id it is delivered under, the same on every attempt and for
// every endpoint; Data never holds a secret.
type Event struct {
	Seq     int64
	ID      string
	Type    string
	AgentID string
	Time    time.Time
	Data    json.RawMessage
}

// Webhook delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// WebhookDelivery is one event's delivery to one endpoint.
type WebhookDelivery struct {
	ID            string
	Event         Event
	Endpoint      string
	State         string
	Attempts      int
	CreatedAt     time.Time
	NextAttemptAt time.Time
	LastAttemptAt *time.Time
	LastStatus    int
	LastError     string
	DeliveredAt   *time.Time
}
