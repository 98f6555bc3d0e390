package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// Off unless an endpoint is given; OTEL_SDK_DISABLED and
// OTEL_TRACES_EXPORTER=none turn it off whatever else is set.
func TestNewOffAndOn(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		o        Options
		env      func(string) string
		on       bool
		endpoint string
	}{
		{"nothing", Options{}, env(), false, ""},
		{"config", Options{Endpoint: "http://collector:4318/"}, env(), true, "http://collector:4318/v1/traces"},
		{"config base path", Options{Endpoint: "https://collector/otlp"}, env(), true, "https://collector/otlp/v1/traces"},
		{"env base", Options{}, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"), true, "http://env:4318/v1/traces"},
		{"env traces", Options{}, env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/x"), true, "http://t:4318/x"},
		{"config over env", Options{Endpoint: "http://cfg:4318"}, env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/x"), true, "http://cfg:4318/v1/traces"},
		{"disabled", Options{Endpoint: "http://cfg:4318"}, env("OTEL_SDK_DISABLED", "true"), false, ""},
		{"exporter none", Options{Endpoint: "http://cfg:4318"}, env("OTEL_TRACES_EXPORTER", "none"), false, ""},
	} {
		tt.o.Getenv = tt.env
		tr, err := New(t.Context(), tt.o)
		if err != nil {
			t.Errorf("%s: New = %v", tt.name, err)
			continue
		}
		if tr.Enabled() != tt.on || tr.Endpoint() != tt.endpoint || (tr.Provider() == nil) == tt.on {
			t.Errorf("%s: New = enabled %v, endpoint %q; want %v, %q", tt.name, tr.Enabled(), tr.Endpoint(), tt.on, tt.endpoint)
		}
		if err := tr.Shutdown(t.Context()); err != nil {
			t.Errorf("%s: Shutdown = %v", tt.name, err)
		}
	}
}

// telemetry.sampleRatio wins over OTEL_TRACES_SAMPLER, which wins over
// the default (parentbased_always_on).
func TestSamplerPrecedence(t *testing.T) {
	t.Parallel()
	half, zero := 0.5, 0.0
	for _, tt := range []struct {
		ratio *float64
		env   func(string) string
		want  string
	}{
		{nil, env(), "ParentBased{root:AlwaysOnSampler"},
		{&half, env("OTEL_TRACES_SAMPLER", "always_off"), "ParentBased{root:TraceIDRatioBased{0.5}"},
		{&zero, env(), "ParentBased{root:TraceIDRatioBased{0}"},
		{nil, env("OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "0.1"), "TraceIDRatioBased{0.1}"},
		{nil, env("OTEL_TRACES_SAMPLER", "parentbased_always_off"), "ParentBased{root:AlwaysOffSampler"},
	} {
		s, err := samplerOf(tt.ratio, tt.env)
		if err != nil || !strings.HasPrefix(s.Sampler.Description(), tt.want) {
			t.Errorf("samplerOf(%v) = %v, %v; want %s…", tt.ratio, s, err, tt.want)
		}
	}
	bad := 1.5
	if _, err := samplerOf(&bad, env()); err == nil || !strings.Contains(err.Error(), "telemetry.sampleRatio") {
		t.Errorf("samplerOf(1.5) = %v; want an error naming telemetry.sampleRatio", err)
	}
}

// service.name: the configured name, else OTEL_SERVICE_NAME, else kavach.
func TestServiceName(t *testing.T) {
	for _, tt := range []struct{ config, env, want string }{
		{"", "", DefaultServiceName},
		{"", "from-env", "from-env"},
		{"from-config", "from-env", "from-config"},
	} {
		t.Setenv("OTEL_SERVICE_NAME", tt.env)
		res, err := resourceOf(t.Context(), Options{ServiceName: tt.config, Version: "v9"})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := res.Set().Value("service.name")
		if got.AsString() != tt.want {
			t.Errorf("service.name with config %q, OTEL_SERVICE_NAME %q = %q; want %q", tt.config, tt.env, got.AsString(), tt.want)
		}
	}
}

// A traced context gives children from its own provider; an untraced one
// gives nothing, and allocates nothing (not parallel: AllocsPerRun).
func TestStart(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	ctx, root := tp.Tracer("test").Start(t.Context(), "root")
	_, child := Start(ctx, "child")
	child.End()
	root.End()
	spans := exp.GetSpans()
	if len(spans) != 2 || spans[0].Name != "child" || spans[0].Parent.SpanID() != root.SpanContext().SpanID() {
		t.Errorf("spans = %v; want child under root", spans)
	}
	bg := context.Background()
	unsampled := trace.ContextWithSpanContext(bg, trace.NewSpanContext(trace.SpanContextConfig{TraceID: [16]byte{1}, SpanID: [8]byte{1}}))
	for name, c := range map[string]context.Context{"no span": bg, "unsampled caller": unsampled} {
		if n := testing.AllocsPerRun(100, func() {
			c2, span := Start(c, "x")
			if span.IsRecording() {
				span.SetAttributes(attribute.String("k", "v"))
			}
			span.End()
			_ = c2
		}); n != 0 {
			t.Errorf("Start with %s: %v allocations; want 0", name, n)
		}
		if c2, span := Start(c, "x"); c2 != c || span.IsRecording() {
			t.Errorf("Start with %s started a span", name)
		}
	}
}

// A batch is a root linked to the requests it serves, sampled when one
// of them is, whatever the root sampler says.
func TestStartLinked(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(linkSampler{Sampler: sdktrace.ParentBased(sdktrace.NeverSample())}))
	if s := StartLinked("batch", []trace.Span{trace.SpanFromContext(t.Context()), nil}); s != nil {
		t.Errorf("StartLinked(untraced) = %v; want nil", s)
	}
	remote := trace.ContextWithRemoteSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: [16]byte{7}, SpanID: [8]byte{7}, TraceFlags: trace.FlagsSampled}))
	_, req := tp.Tracer("test").Start(remote, "request")
	b := StartLinked("batch", []trace.Span{req})
	if b == nil || !b.IsRecording() || b.SpanContext().TraceID() == req.SpanContext().TraceID() {
		t.Fatalf("StartLinked = %v; want a recording root of its own", b)
	}
	b.End()
	req.End()
	spans := exp.GetSpans()
	if len(spans) != 2 || len(spans[0].Links) != 1 || spans[0].Links[0].SpanContext.SpanID() != req.SpanContext().SpanID() {
		t.Errorf("batch span = %+v; want one link to the request", spans[0])
	}
}

func TestLogHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: [16]byte{0xab}, SpanID: [8]byte{0xcd}})
	log.InfoContext(trace.ContextWithSpanContext(t.Context(), sc), "traced")
	log.InfoContext(t.Context(), "untraced")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var traced, untraced map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &traced)
	_ = json.Unmarshal([]byte(lines[1]), &untraced)
	if traced["trace_id"] != sc.TraceID().String() || traced["span_id"] != sc.SpanID().String() || traced["component"] != "test" {
		t.Errorf("traced line = %s; want trace_id %s and span_id %s", lines[0], sc.TraceID(), sc.SpanID())
	}
	if _, ok := untraced["trace_id"]; ok {
		t.Errorf("untraced line = %s; want no trace_id", lines[1])
	}
}

func TestCheckEndpoint(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"http://collector:4318", "https://collector.example.com/otlp/", "http://[::1]:4318"} {
		if err := CheckEndpoint(ok); err != nil {
			t.Errorf("CheckEndpoint(%q) = %v; want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "collector:4318", "grpc://collector:4317", "http://", "http://u:p@c:4318", "http://c:4318?x=1", "http://c:4318#f", "http://c:4318?"} {
		if err := CheckEndpoint(bad); err == nil {
			t.Errorf("CheckEndpoint(%q) = nil; want an error", bad)
		} else if strings.Contains(err.Error(), "u:p") {
			t.Errorf("CheckEndpoint(%q) = %v: repeats the credential", bad, err)
		}
	}
}
