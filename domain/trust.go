package domain

import (
	"fmt"
	"slices"
	"time"
)

// StatusSuspended is an agent held back by containment (anomaly.suspendOn)
// until an admin resumes it: denied with agent_suspended, reversible, unlike
// a revocation.
const StatusSuspended = "suspended"

// Trust levels, lowest first (KavachOS's graduated autonomy).
const (
	TrustUntrusted = "untrusted"
	TrustLimited   = "limited"
	TrustStandard  = "standard"
	TrustTrusted   = "trusted"
	TrustElevated  = "elevated"
)

// TrustLevels lists the levels from lowest to highest: a level's rank is its
// index.
var TrustLevels = []string{TrustUntrusted, TrustLimited, TrustStandard, TrustTrusted, TrustElevated}

// TrustRank is the rank of a level (0 untrusted … 4 elevated), or -1 for a
// name that is no level.
func TrustRank(level string) int { return slices.Index(TrustLevels, level) }

// TrustThresholds are the lowest scores of each level above untrusted
// (config trust.thresholds; KavachOS's defaults in DefaultTrustThresholds).
type TrustThresholds struct {
	Limited  int `json:"limited" yaml:"limited"`
	Standard int `json:"standard" yaml:"standard"`
	Trusted  int `json:"trusted" yaml:"trusted"`
	Elevated int `json:"elevated" yaml:"elevated"`
}

// DefaultTrustThresholds are KavachOS's: ≥ 95 elevated, ≥ 80 trusted, ≥ 60
// standard, ≥ 40 limited, else untrusted.
var DefaultTrustThresholds = TrustThresholds{Limited: 40, Standard: 60, Trusted: 80, Elevated: 95}

// InitialTrustScore is the score of an agent with no history (KavachOS: 50).
const InitialTrustScore = 50

// Level is the level a score reaches.
func (t TrustThresholds) Level(score int) string {
	switch {
	case score >= t.Elevated:
		return TrustElevated
	case score >= t.Trusted:
		return TrustTrusted
	case score >= t.Standard:
		return TrustStandard
	case score >= t.Limited:
		return TrustLimited
	}
	return TrustUntrusted
}

// Validate checks that the thresholds rise strictly within 1–100.
func (t TrustThresholds) Validate() error {
	if t.Limited < 1 || t.Standard <= t.Limited || t.Trusted <= t.Standard || t.Elevated <= t.Trusted || t.Elevated > 100 {
		return fmt.Errorf("trust thresholds must rise strictly within 1–100 (limited < standard < trusted < elevated), not %d, %d, %d, %d",
			t.Limited, t.Standard, t.Trusted, t.Elevated)
	}
	return nil
}

// Trust is an agent's trust as the policy sees it: the level that decides
// (minTrustLevel, requireApproval: <level>) and the score behind it, as of
// ComputedAt. The policy data changes only when the level changes, so Score
// is the score at that change, not every movement since.
type Trust struct {
	Score      int       `json:"score"`
	Level      string    `json:"level"`
	ComputedAt time.Time `json:"computedAt"`
}
