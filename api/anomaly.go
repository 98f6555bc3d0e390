package api

import "encoding/json"

// Anomaly is a behaviour of an agent that detection flagged, stored once
// per agent, type (high_frequency, high_denial_rate, off_hours, probing)
// and window. Evidence is a JSON object: the counts behind it and, under
// auditIds, the audit rows (newest first, at most 20).
type Anomaly struct {
	ID          string          `json:"id"`
	AgentID     string          `json:"agentId"`
	Type        string          `json:"type"`
	Severity    string          `json:"severity"`
	DetectedAt  Time            `json:"detectedAt"`
	Description string          `json:"description"`
	Evidence    json.RawMessage `json:"evidence"`
}

// AnomalyList is the body of GET /v1/anomalies: one page, newest first.
// NextCursor is empty on the last page.
type AnomalyList struct {
	Anomalies  []Anomaly `json:"anomalies"`
	NextCursor string    `json:"nextCursor"`
}

// Trust is the body of GET /v1/agents/{id}/trust: the agent's latest
// trust score (0-100), its level (untrusted, limited, standard, trusted,
// elevated), what the score is made of, and when it was computed.
type Trust struct {
	AgentID    string       `json:"agentId"`
	Score      int          `json:"score"`
	Level      string       `json:"level"`
	Factors    TrustFactors `json:"factors"`
	ComputedAt Time         `json:"computedAt"`
}

// TrustFactors are the terms of a trust score: base + allowedBonus -
// denialPenalty - anomalyPenalty + ageBonus, clamped to 0-100. Denials
// and anomalies are those within trust.window; allowedCalls the agent's
// total; ageDays its age.
type TrustFactors struct {
	Base           int     `json:"base"`
	AllowedCalls   int64   `json:"allowedCalls"`
	AllowedBonus   int     `json:"allowedBonus"`
	Denials        int64   `json:"denials"`
	DenialPenalty  int     `json:"denialPenalty"`
	Anomalies      int64   `json:"anomalies"`
	AnomalyPenalty int     `json:"anomalyPenalty"`
	AgeDays        float64 `json:"ageDays"`
	AgeBonus       int     `json:"ageBonus"`
}
