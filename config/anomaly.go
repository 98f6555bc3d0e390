package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// Anomaly configures anomaly detection over the audit stream (the seeds'
// anomaly section, and what Kavach adds). Zero values mean defaults.
type Anomaly struct {
	// Enabled turns detection and trust scoring on (the default); false
	// turns both off: no counters, no anomalies, every agent keeps the
	// initial trust.
	Enabled *bool `yaml:"enabled"`
	// HighFrequencyThreshold is the calls per agent per hour above which
	// the agent is flagged high_frequency (default 500).
	HighFrequencyThreshold int `yaml:"highFrequencyThreshold"`
	// HighDenialRateThreshold is the percentage of denied calls in an
	// hour at or above which the agent is flagged high_denial_rate
	// (default 50), once it has made MinCalls calls in that hour.
	HighDenialRateThreshold int `yaml:"highDenialRateThreshold"`
	// MinCalls is how many calls an agent makes in an hour before its
	// denial rate is judged (default 10).
	MinCalls int `yaml:"minCalls"`
	// ExpectedHours are the hours agents work; a call outside them is
	// off_hours. Absent: no off_hours detection.
	ExpectedHours *ExpectedHours `yaml:"expectedHours"`
	// Timezone is the IANA zone of ExpectedHours (default UTC).
	Timezone string `yaml:"timezone"`
	// ProbingThreshold is how many distinct resources an agent is denied
	// no_permission in an hour before it is flagged probing (default 5).
	ProbingThreshold int `yaml:"probingThreshold"`
	// SuspendOn are the anomaly types that suspend the agent when
	// detected (default none).
	SuspendOn []string `yaml:"suspendOn"`
}

// ExpectedHours is a daily window of whole hours: from Start (0-23) up to,
// not including, End (0-23). Start after End crosses midnight (22 to 6 is
// 22:00-05:59).
type ExpectedHours struct {
	Start *int `yaml:"start"`
	End   *int `yaml:"end"`
}

// Trust configures trust scoring (the seeds' trust section).
type Trust struct {
	// Thresholds are the lowest scores of the levels above untrusted;
	// one left out keeps its default (KavachOS's 40, 60, 80, 95).
	Thresholds domain.TrustThresholds `yaml:"thresholds"`
	// Window is how long a denial or an anomaly counts against an
	// agent's score (default 7d), a whole number of hours.
	Window Duration `yaml:"window"`
}

// Defaults of the anomaly and trust sections.
const (
	DefaultHighFrequencyThreshold  = 500
	DefaultHighDenialRateThreshold = 50
	DefaultMinCalls                = 10
	DefaultProbingThreshold        = 5
	DefaultTrustWindow             = 7 * Day
)

var trustWindowRule = Rule{Name: "trust.window", Min: time.Hour, Max: 366 * Day, Step: time.Hour,
	Examples: "24h, 7d, 4w", Unset: "the default, 7d"}

func (c *Config) validateAnomaly() error {
	a := &c.Anomaly
	for _, k := range []struct {
		name      string
		v, lo, hi int
		def       int
	}{
		{"anomaly.highFrequencyThreshold", a.HighFrequencyThreshold, 1, 1_000_000_000, DefaultHighFrequencyThreshold},
		{"anomaly.highDenialRateThreshold", a.HighDenialRateThreshold, 1, 100, DefaultHighDenialRateThreshold},
		{"anomaly.minCalls", a.MinCalls, 1, 1_000_000_000, DefaultMinCalls},
		{"anomaly.probingThreshold", a.ProbingThreshold, 1, 1_000_000, DefaultProbingThreshold},
	} {
		if k.v != 0 && (k.v < k.lo || k.v > k.hi) {
			return fmt.Errorf("%s must be from %d to %d (leave it out for the default, %d), not %d", k.name, k.lo, k.hi, k.def, k.v)
		}
	}
	if h := a.ExpectedHours; h != nil {
		if h.Start == nil || h.End == nil {
			return fmt.Errorf("anomaly.expectedHours needs both start and end (hours 0-23, such as {start: 9, end: 18})")
		}
		for name, v := range map[string]int{"start": *h.Start, "end": *h.End} {
			if v < 0 || v > 23 {
				return fmt.Errorf("anomaly.expectedHours.%s must be an hour from 0 to 23, not %d", name, v)
			}
		}
		if *h.Start == *h.End {
			return fmt.Errorf("anomaly.expectedHours: start and end are both %d: an empty window; leave expectedHours out to expect calls at any hour", *h.Start)
		}
	}
	if tz := a.Timezone; tz != "" {
		if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
			return fmt.Errorf("anomaly.timezone %q is not an IANA time zone (such as Europe/Berlin or UTC)", tz)
		}
		if a.ExpectedHours == nil {
			return fmt.Errorf("anomaly.timezone is set but anomaly.expectedHours is not: the zone is that of the expected hours")
		}
	}
	for i, t := range a.SuspendOn {
		if !slices.Contains(domain.AnomalyTypes, t) {
			return fmt.Errorf("anomaly.suspendOn[%d]: %q is not an anomaly type (%s)", i, t, strings.Join(domain.AnomalyTypes, ", "))
		}
	}
	if _, err := trustWindowRule.Parse(string(c.Trust.Window)); err != nil {
		return err
	}
	if err := c.TrustThresholds().Validate(); err != nil {
		return fmt.Errorf("trust.thresholds: %w", err)
	}
	return nil
}

// AnomalyEnabled is anomaly.enabled (true unless set false).
func (c Config) AnomalyEnabled() bool { return c.Anomaly.Enabled == nil || *c.Anomaly.Enabled }

// AnomalyRules are the anomaly section with its defaults filled in; call
// after Validate.
func (c Config) AnomalyRules() AnomalyRules {
	a := c.Anomaly
	r := AnomalyRules{
		HighFrequency: or(a.HighFrequencyThreshold, DefaultHighFrequencyThreshold),
		DenialRate:    or(a.HighDenialRateThreshold, DefaultHighDenialRateThreshold),
		MinCalls:      or(a.MinCalls, DefaultMinCalls),
		Probing:       or(a.ProbingThreshold, DefaultProbingThreshold),
		SuspendOn:     slices.Clone(a.SuspendOn),
		Location:      time.UTC,
	}
	if h := a.ExpectedHours; h != nil && h.Start != nil && h.End != nil {
		r.ExpectedHours = &[2]int{*h.Start, *h.End}
	}
	if a.Timezone != "" {
		if loc, err := time.LoadLocation(a.Timezone); err == nil {
			r.Location = loc
		}
	}
	return r
}

// AnomalyRules are the effective anomaly settings.
type AnomalyRules struct {
	HighFrequency, DenialRate, MinCalls, Probing int
	// ExpectedHours is [start, end), nil for none.
	ExpectedHours *[2]int
	Location      *time.Location
	SuspendOn     []string
}

func or(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// TrustThresholds are trust.thresholds, each left out taking its default.
func (c Config) TrustThresholds() domain.TrustThresholds {
	t, d := c.Trust.Thresholds, domain.DefaultTrustThresholds
	return domain.TrustThresholds{Limited: or(t.Limited, d.Limited), Standard: or(t.Standard, d.Standard),
		Trusted: or(t.Trusted, d.Trusted), Elevated: or(t.Elevated, d.Elevated)}
}

// TrustWindow is trust.window (default 7d); call after Validate.
func (c Config) TrustWindow() time.Duration {
	d, err := trustWindowRule.Parse(string(c.Trust.Window))
	if err != nil || d == 0 {
		return DefaultTrustWindow
	}
	return d
}
