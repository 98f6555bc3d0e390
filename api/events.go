package api

import "encoding/json"

// Event is one recorded event, as GET /v1/events streams it and as a
// webhook's body carries it (there without seq and id, which travel in
// the SSE id field and the webhook-id header).
type Event struct {
	// Seq orders events in commit order: the SSE id, and Last-Event-ID.
	Seq int64 `json:"seq,omitempty"`
	// ID is the webhook-id every endpoint receives the event under.
	ID        string          `json:"id,omitempty"`
	Type      string          `json:"type"`
	Timestamp Time            `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// WebhookDelivery is one event's delivery to one endpoint.
type WebhookDelivery struct {
	ID string `json:"id"`
	// EventID is the webhook-id the endpoint receives (the same on every
	// attempt); Type the event's type.
	EventID string `json:"eventId"`
	Type    string `json:"type"`
	// Endpoint names the endpoint (wh_ and a hash of its URL); URL is
	// its scheme and host only, since a path or query may hold a token.
	Endpoint string `json:"endpoint"`
	URL      string `json:"url,omitempty"`
	// State is pending (due at NextAttemptAt), delivered or failed
	// (given up after a day of retries, or refused for good).
	State         string `json:"state"`
	Attempts      int    `json:"attempts"`
	CreatedAt     Time   `json:"createdAt"`
	NextAttemptAt *Time  `json:"nextAttemptAt,omitempty"`
	LastAttemptAt *Time  `json:"lastAttemptAt,omitempty"`
	// LastStatus is the receiver's HTTP status on the last attempt (0:
	// no answer), LastError what went wrong.
	LastStatus  int    `json:"lastStatus,omitempty"`
	LastError   string `json:"lastError,omitempty"`
	DeliveredAt *Time  `json:"deliveredAt,omitempty"`
}

// WebhookDeliveryList is a page of GET /v1/webhooks/deliveries, newest
// first.
type WebhookDeliveryList struct {
	Deliveries []WebhookDelivery `json:"deliveries"`
	NextCursor string            `json:"nextCursor,omitempty"`
}
