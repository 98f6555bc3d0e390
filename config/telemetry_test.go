package config

import (
	"strings"
	"testing"
)

func TestTelemetryDefaults(t *testing.T) {
	t.Parallel()
	c, err := loadYAML(t, "")
	if err != nil {
		t.Fatal(err)
	}
	o := c.TelemetryOptions("v1")
	if o.Endpoint != "" || o.ServiceName != "" || o.SampleRatio != nil || c.Telemetry.IncludeArguments || o.Version != "v1" {
		t.Errorf("TelemetryOptions() = %+v, includeArguments %v; want no endpoint (off), no name, no ratio, no arguments", o, c.Telemetry.IncludeArguments)
	}
}

func TestTelemetrySection(t *testing.T) {
	t.Parallel()
	c, err := loadYAML(t, `telemetry:
  otlpEndpoint: http://otel-collector:4318
  serviceName: kavach-payments
  sampleRatio: 0.25
  includeArguments: true
`)
	if err != nil {
		t.Fatal(err)
	}
	o := c.TelemetryOptions("")
	if o.Endpoint != "http://otel-collector:4318" || o.ServiceName != "kavach-payments" || o.SampleRatio == nil || *o.SampleRatio != 0.25 ||
		!c.Telemetry.IncludeArguments {
		t.Errorf("TelemetryOptions() = %+v, includeArguments %v", o, c.Telemetry.IncludeArguments)
	}
	// 0 is a ratio (sample none of the traces started here), not unset.
	if c, err = loadYAML(t, "telemetry:\n  sampleRatio: 0\n"); err != nil || c.Telemetry.SampleRatio == nil || *c.Telemetry.SampleRatio != 0 {
		t.Errorf("sampleRatio: 0 = %v, %v; want 0", c.Telemetry.SampleRatio, err)
	}
}

func TestTelemetryRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ body, key, want string }{
		{"otlpEndpoint: otel-collector:4318", "telemetry.otlpEndpoint", "http(s) URL"},
		{"otlpEndpoint: ftp://otel-collector", "telemetry.otlpEndpoint", "http(s) URL"},
		{"otlpEndpoint: http://", "telemetry.otlpEndpoint", "no host"},
		{"otlpEndpoint: http://user:secret@otel-collector:4318", "telemetry.otlpEndpoint", "OTEL_EXPORTER_OTLP_HEADERS"},
		{"otlpEndpoint: http://otel-collector:4318/?token=x", "telemetry.otlpEndpoint", "base URL"},
		{"otlpEndpoint: 'http://otel-collector:4318#x'", "telemetry.otlpEndpoint", "base URL"},
		{"serviceName: ' '", "telemetry.serviceName", "not blank"},
		{"serviceName: \"a\\nb\"", "telemetry.serviceName", "control"},
		{"serviceName: " + strings.Repeat("k", 256), "telemetry.serviceName", "255"},
		{"sampleRatio: -0.1", "telemetry.sampleRatio", "from 0 to 1"},
		{"sampleRatio: 1.5", "telemetry.sampleRatio", "from 0 to 1"},
		{"sampleRatio: .nan", "telemetry.sampleRatio", "from 0 to 1"},
		{"sampleRatio: half", "telemetry.sampleRatio", ""},
		{"includeArguments: sometimes", "telemetry.includeArguments", ""},
		{"headers: {x: y}", "telemetry.headers", "not a known key"},
	} {
		_, err := loadYAML(t, "telemetry:\n  "+tt.body+"\n")
		if err == nil || !strings.Contains(err.Error(), tt.key) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("telemetry %s: Validate = %v; want an error naming %s and %q", tt.body, err, tt.key, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret@") {
			t.Errorf("telemetry %s: the error repeats a credential: %v", tt.body, err)
		}
	}
}
