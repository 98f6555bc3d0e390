package config

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/kavach-dev/kavach/telemetry"
)

// Telemetry configures OpenTelemetry tracing, exported over OTLP/HTTP. It
// is off unless otlpEndpoint (or OTEL_EXPORTER_OTLP_ENDPOINT) is set; the
// keys set here win over the standard OTEL_* environment variables, which
// fill in what the file leaves out (docs/telemetry.md).
type Telemetry struct {
	// OTLPEndpoint is the collector's OTLP/HTTP base URL, as
	// OTEL_EXPORTER_OTLP_ENDPOINT: /v1/traces is appended
	// (http://otel-collector:4318).
	OTLPEndpoint string `yaml:"otlpEndpoint"`
	// ServiceName is the resource's service.name (default kavach, or
	// OTEL_SERVICE_NAME).
	ServiceName string `yaml:"serviceName"`
	// SampleRatio is the share of traces started here that are sampled,
	// from 0 to 1; a caller's traceparent decides for its own trace.
	// Unset: OTEL_TRACES_SAMPLER, else every trace.
	SampleRatio *float64 `yaml:"sampleRatio"`
	// IncludeArguments records a decision's arguments on its span: off by
	// default, since arguments may hold what the app would not export.
	IncludeArguments bool `yaml:"includeArguments"`
}

// maxServiceName bounds telemetry.serviceName.
const maxServiceName = 255

func (c *Config) validateTelemetry() error {
	t := c.Telemetry
	if t.OTLPEndpoint != "" {
		if err := telemetry.CheckEndpoint(t.OTLPEndpoint); err != nil {
			return fmt.Errorf("telemetry.otlpEndpoint: %w", err)
		}
	}
	if n := t.ServiceName; n != "" {
		if strings.TrimSpace(n) == "" || len(n) > maxServiceName || strings.IndexFunc(n, unicode.IsControl) >= 0 {
			return fmt.Errorf("telemetry.serviceName %q must be up to %d characters, not blank, without control characters", n, maxServiceName)
		}
	}
	if r := t.SampleRatio; r != nil && !(*r >= 0 && *r <= 1) {
		return fmt.Errorf("telemetry.sampleRatio must be from 0 to 1 (a share of traces: 0.1 is 10%%), not %v", *r)
	}
	return nil
}

// TelemetryOptions are the telemetry section as the telemetry package
// takes it; call after Validate.
func (c Config) TelemetryOptions(version string) telemetry.Options {
	t := c.Telemetry
	return telemetry.Options{Endpoint: t.OTLPEndpoint, ServiceName: t.ServiceName, SampleRatio: t.SampleRatio, Version: version}
}
