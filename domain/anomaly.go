package domain

import (
	"encoding/json"
	"time"
)

// Anomaly types: what detection over the audit stream flags.
const (
	// AnomalyHighFrequency: more calls in an hour than the threshold.
	AnomalyHighFrequency = "high_frequency"
	// AnomalyHighDenialRate: too large a share of an hour's calls denied.
	AnomalyHighDenialRate = "high_denial_rate"
	// AnomalyOffHours: a call outside the expected hours.
	AnomalyOffHours = "off_hours"
	// AnomalyProbing: many distinct resources denied no_permission in an
	// hour, the agent asking for what it never held.
	AnomalyProbing = "probing"
)

// AnomalyTypes lists the types detected.
var AnomalyTypes = []string{AnomalyHighFrequency, AnomalyHighDenialRate, AnomalyOffHours, AnomalyProbing}

// Anomaly severities.
const (
	SeverityLow    = "low"
	SeverityMedium = "medium"
	SeverityHigh   = "high"
)

// Anomaly is one flagged behaviour of an agent, stored once per agent,
// type and window (the hour, or the day for off_hours, starting at
// Window). Evidence is a JSON object: the counts and the audit IDs behind
// them.
type Anomaly struct {
	ID          string
	AgentID     string
	Type        string
	Severity    string
	Window      time.Time
	DetectedAt  time.Time
	Description string
	Evidence    json.RawMessage
}

// TrustFactors are what a trust score is made of (KavachOS's formula):
// Base + AllowedBonus - DenialPenalty - AnomalyPenalty + AgeBonus,
// clamped to 0-100.
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

// TrustRecord is an agent's latest computed trust: its score and level,
// the factors behind them, and when they were computed.
type TrustRecord struct {
	AgentID    string
	Score      int
	Level      string
	Factors    TrustFactors
	ComputedAt time.Time
}
