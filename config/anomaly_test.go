package config

import (
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

func loadYAML(t *testing.T, body string) (Config, error) {
	t.Helper()
	c, err := Parse([]byte(body))
	if err == nil {
		err = c.Validate()
	}
	return c, err
}

func TestAnomalyDefaults(t *testing.T) {
	t.Parallel()
	c, err := loadYAML(t, "")
	if err != nil {
		t.Fatal(err)
	}
	r := c.AnomalyRules()
	if !c.AnomalyEnabled() || r.HighFrequency != 500 || r.DenialRate != 50 || r.MinCalls != 10 || r.Probing != 5 ||
		r.ExpectedHours != nil || r.Location != time.UTC || len(r.SuspendOn) != 0 {
		t.Errorf("AnomalyRules() = %+v, enabled %v; want 500, 50%%, 10 calls, 5 probes, no expected hours, UTC, no suspension", r, c.AnomalyEnabled())
	}
	if c.TrustThresholds() != domain.DefaultTrustThresholds || c.TrustWindow() != 7*Day {
		t.Errorf("trust = %+v, %v; want KavachOS's thresholds and 7d", c.TrustThresholds(), c.TrustWindow())
	}
}

func TestAnomalySection(t *testing.T) {
	t.Parallel()
	c, err := loadYAML(t, `anomaly:
  enabled: false
  highFrequencyThreshold: 30
  highDenialRateThreshold: 75
  minCalls: 4
  expectedHours: {start: 22, end: 6}
  timezone: Asia/Kolkata
  probingThreshold: 3
  suspendOn: [probing, high_frequency]
trust:
  thresholds: {limited: 30, elevated: 99}
  window: 36h
`)
	if err != nil {
		t.Fatal(err)
	}
	r := c.AnomalyRules()
	if c.AnomalyEnabled() || r.HighFrequency != 30 || r.DenialRate != 75 || r.MinCalls != 4 || r.Probing != 3 ||
		r.ExpectedHours == nil || *r.ExpectedHours != [2]int{22, 6} || r.Location.String() != "Asia/Kolkata" ||
		strings.Join(r.SuspendOn, ",") != "probing,high_frequency" {
		t.Errorf("AnomalyRules() = %+v, enabled %v", r, c.AnomalyEnabled())
	}
	want := domain.TrustThresholds{Limited: 30, Standard: 60, Trusted: 80, Elevated: 99}
	if c.TrustThresholds() != want || c.TrustWindow() != 36*time.Hour {
		t.Errorf("trust = %+v, %v; want %+v (the others' defaults) and 36h", c.TrustThresholds(), c.TrustWindow(), want)
	}
	// Hour 0 is an hour, not "unset".
	if c, err := loadYAML(t, "anomaly:\n  expectedHours: {start: 0, end: 8}\n"); err != nil || *c.AnomalyRules().ExpectedHours != [2]int{0, 8} {
		t.Errorf("expectedHours 0-8: %v", err)
	}
}

// A test per key: each bad value is refused with an error naming the key.
func TestAnomalyKeysRefuseBadValues(t *testing.T) {
	t.Parallel()
	for _, bad := range []struct{ body, want string }{
		{"anomaly:\n  enabled: maybe\n", "anomaly.enabled"},
		{"anomaly:\n  highFrequencyThreshold: -1\n", "anomaly.highFrequencyThreshold must be from 1"},
		{"anomaly:\n  highFrequencyThreshold: lots\n", "anomaly.highFrequencyThreshold"},
		{"anomaly:\n  highDenialRateThreshold: 101\n", "anomaly.highDenialRateThreshold must be from 1 to 100"},
		{"anomaly:\n  highDenialRateThreshold: -5\n", "anomaly.highDenialRateThreshold"},
		{"anomaly:\n  minCalls: -1\n", "anomaly.minCalls must be from 1"},
		{"anomaly:\n  probingThreshold: -2\n", "anomaly.probingThreshold must be from 1"},
		{"anomaly:\n  expectedHours: {start: 9}\n", "anomaly.expectedHours needs both start and end"},
		{"anomaly:\n  expectedHours: {start: 9, end: 24}\n", "anomaly.expectedHours.end must be an hour from 0 to 23"},
		{"anomaly:\n  expectedHours: {start: -1, end: 5}\n", "anomaly.expectedHours.start must be an hour from 0 to 23"},
		{"anomaly:\n  expectedHours: {start: 9, end: 9}\n", "empty window"},
		{"anomaly:\n  expectedHours:\n    start: 9\n    finish: 17\n", "anomaly.expectedHours.finish is not a known key"},
		{"anomaly:\n  expectedHours: 9-17\n", "anomaly.expectedHours"},
		{"anomaly:\n  expectedHours: {start: 9, end: 17}\n  timezone: Mars/Olympus\n", `anomaly.timezone "Mars/Olympus"`},
		{"anomaly:\n  expectedHours: {start: 9, end: 17}\n  timezone: Local\n", `anomaly.timezone "Local"`},
		{"anomaly:\n  timezone: UTC\n", "anomaly.timezone is set but anomaly.expectedHours is not"},
		{"anomaly:\n  suspendOn: [probing, sneezing]\n", `anomaly.suspendOn[1]: "sneezing" is not an anomaly type`},
		{"anomaly:\n  suspendOn: probing\n", "anomaly.suspendOn"},
		{"anomaly:\n  scan: true\n", "anomaly.scan is not a known key"},
		{"trust:\n  window: 30m\n", `trust.window: "30m" is out of range`},
		{"trust:\n  window: 90m\n", "trust.window"},
		{"trust:\n  window: 7\n", "trust.window"},
		{"trust:\n  window: 2y\n", "trust.window"},
		{"trust:\n  thresholds: {limited: 70}\n", "trust.thresholds: trust thresholds must rise strictly"},
		{"trust:\n  thresholds: {elevated: 101}\n", "trust.thresholds"},
		{"trust:\n  thresholds: {untrusted: 20}\n", "trust.thresholds.untrusted is not a known key"},
	} {
		if _, err := loadYAML(t, bad.body); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("config %q: %v; want an error containing %q", bad.body, err, bad.want)
		}
	}
}
