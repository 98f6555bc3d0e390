// Package telemetry is Kavach's OpenTelemetry tracing: the tracer provider
// built from the telemetry section and the standard OTEL_* environment
// variables (spans recorded by recorder.go, with the SDK's samplers and
// resource, and exported over OTLP/HTTP in batches: batch.go, export.go,
// through the SDK's OTLP/HTTP client), the spans
// the layers below start from the span their context carries, and the log
// handler that stamps trace_id and span_id on log lines. Tracing is off
// unless an OTLP endpoint is given; off, nothing here allocates.
//
// No token, key, secret or header value is ever an attribute: spans carry
// route templates, IDs, actions, resources and decision codes only.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// DefaultServiceName is service.name when neither the configuration nor
// OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) names the service.
const DefaultServiceName = "kavach"

// TracesPath is appended to an OTLP base endpoint, as the OTLP exporter
// specification does for OTEL_EXPORTER_OTLP_ENDPOINT.
const TracesPath = "/v1/traces"

// Options are the telemetry section. Zero values defer to the OTEL_*
// environment variables, then to the defaults.
type Options struct {
	// Endpoint is an OTLP/HTTP base URL (TracesPath is appended); it wins
	// over OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.
	Endpoint string
	// ServiceName wins over OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
	ServiceName string
	// SampleRatio, when set, samples that share of the traces that start
	// here and follows the caller's sampled flag otherwise
	// (parentbased_traceidratio); it wins over OTEL_TRACES_SAMPLER.
	SampleRatio *float64
	// Version is service.version.
	Version string
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// Tracing is the process's tracer provider, or nothing when tracing is off.
type Tracing struct {
	provider *provider
	endpoint string
}

// New builds the tracer provider the options and the environment ask for;
// off (a Tracing whose Provider is nil) when no endpoint is given or
// OTEL_SDK_DISABLED is true. A bad setting is an error naming it.
func New(ctx context.Context, o Options) (*Tracing, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if on, err := envBool(getenv, "OTEL_SDK_DISABLED"); err != nil || on {
		return &Tracing{}, err
	}
	switch v := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); v {
	case "", "otlp":
	case "none":
		return &Tracing{}, nil
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER %q: Kavach exports traces with otlp only (or none)", v)
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if v := strings.TrimSpace(getenv(k)); v != "" && v != "http/protobuf" {
			return nil, fmt.Errorf("%s %q: Kavach exports OTLP over HTTP only (http/protobuf)", k, v)
		}
	}
	var endpoint string
	var opts []otlptracehttp.Option
	switch {
	case o.Endpoint != "":
		if err := CheckEndpoint(o.Endpoint); err != nil {
			return nil, fmt.Errorf("telemetry.otlpEndpoint: %w", err)
		}
		endpoint = TracesURL(o.Endpoint)
		opts = append(opts, otlptracehttp.WithEndpointURL(endpoint))
	case getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "":
		// A full URL, used as given; the exporter reads it.
		endpoint = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
		if err := CheckEndpoint(endpoint); err != nil {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: %w", err)
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(endpoint))
	case getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "":
		base := getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
		if err := CheckEndpoint(base); err != nil {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
		}
		endpoint = TracesURL(base)
		opts = append(opts, otlptracehttp.WithEndpointURL(endpoint))
	default:
		return &Tracing{}, nil
	}
	sampler, err := samplerOf(o.SampleRatio, getenv)
	if err != nil {
		return nil, err
	}
	res, err := resourceOf(ctx, o)
	if err != nil {
		return nil, err
	}
	// Headers (OTEL_EXPORTER_OTLP_HEADERS), compression, timeout and
	// certificates come from the environment, read by the SDK's client
	// (export.go).
	exp, err := newExporter(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	tp := newProvider(sampler, res, newBatcher(exp, getenv), limitsOf(getenv))
	return &Tracing{provider: tp, endpoint: endpoint}, nil
}

// ForceFlush exports every span ended so far; a no-op when tracing is off.
func (t *Tracing) ForceFlush(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.provider.ForceFlush(ctx)
}

// Provider is the tracer provider; nil when tracing is off.
func (t *Tracing) Provider() trace.TracerProvider {
	if t == nil || t.provider == nil {
		return nil
	}
	return t.provider
}

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool { return t != nil && t.provider != nil }

// Endpoint is the URL spans are sent to ("" when off).
func (t *Tracing) Endpoint() string {
	if t == nil {
		return ""
	}
	return t.endpoint
}

// Shutdown exports the spans still queued and stops the exporter; a no-op
// when tracing is off.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// CheckEndpoint accepts an http(s) URL with a host and no user
// information, query or fragment: credentials go in
// OTEL_EXPORTER_OTLP_HEADERS, never in a URL that may be logged.
func CheckEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL (the value is not repeated here: it may hold a credential)")
	}
	switch {
	case u.User != nil:
		return errors.New("the URL carries user information: put credentials in OTEL_EXPORTER_OTLP_HEADERS instead")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return errors.New("the URL has a query or a fragment: give a base URL, such as http://otel-collector:4318")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q is not an http(s) URL, such as http://otel-collector:4318", u.Redacted())
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host", u.Redacted())
	}
	return nil
}

// TracesURL is the traces URL of an OTLP base endpoint: base + /v1/traces.
func TracesURL(base string) string {
	return strings.TrimRight(base, "/") + TracesPath
}

func envBool(getenv func(string) string, k string) (bool, error) {
	v := strings.TrimSpace(getenv(k))
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s %q is not true or false", k, v)
	}
	return b, nil
}

// samplerOf is telemetry.sampleRatio, else OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG, else parentbased_always_on (the SDK's default):
// the SDK's sampler, and its rule for the recorder.
func samplerOf(ratio *float64, getenv func(string) string) (linkSampler, error) {
	if ratio != nil {
		if !(*ratio >= 0 && *ratio <= 1) {
			return linkSampler{}, fmt.Errorf("telemetry.sampleRatio must be from 0 to 1, not %v", *ratio)
		}
		return linkSampler{sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*ratio)), ratioRule(true, *ratio)}, nil
	}
	name := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
	r := 1.0
	if arg != "" && strings.HasSuffix(name, "traceidratio") {
		var err error
		if r, err = strconv.ParseFloat(arg, 64); err != nil || !(r >= 0 && r <= 1) {
			return linkSampler{}, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q must be a ratio from 0 to 1", arg)
		}
	}
	switch name {
	case "", "parentbased_always_on":
		return linkSampler{sdktrace.ParentBased(sdktrace.AlwaysSample()), ratioRule(true, 1)}, nil
	case "always_on":
		return linkSampler{sdktrace.AlwaysSample(), ratioRule(false, 1)}, nil
	case "always_off":
		return linkSampler{sdktrace.NeverSample(), ratioRule(false, 0)}, nil
	case "parentbased_always_off":
		return linkSampler{sdktrace.ParentBased(sdktrace.NeverSample()), ratioRule(true, 0)}, nil
	case "traceidratio":
		return linkSampler{sdktrace.TraceIDRatioBased(r), ratioRule(false, r)}, nil
	case "parentbased_traceidratio":
		return linkSampler{sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), ratioRule(true, r)}, nil
	}
	return linkSampler{}, fmt.Errorf("OTEL_TRACES_SAMPLER %q is not one of always_on, always_off, traceidratio, "+
		"parentbased_always_on, parentbased_always_off, parentbased_traceidratio", name)
}

// resourceOf is service.name DefaultServiceName, then what
// OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME say, then the configured
// service name: each later one wins.
func resourceOf(ctx context.Context, o Options) (*resource.Resource, error) {
	base := resource.NewSchemaless(attribute.String("service.name", DefaultServiceName),
		attribute.String("service.version", o.Version),
		attribute.String("telemetry.sdk.language", "go"), attribute.String("telemetry.sdk.name", "opentelemetry"))
	env, err := resource.New(ctx, resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES or OTEL_SERVICE_NAME: %w", err)
	}
	res, err := resource.Merge(base, env)
	if err != nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	if o.ServiceName != "" {
		if res, err = resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", o.ServiceName))); err != nil {
			return nil, fmt.Errorf("resource: %w", err)
		}
	}
	return res, nil
}

// ShutdownTimeout bounds the last export at a graceful stop.
const ShutdownTimeout = 5 * time.Second
