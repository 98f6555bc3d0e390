package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// exportedBy posts spans with exp to a receiver and returns the request it
// decoded.
func exportedBy[S any](t *testing.T, newExp func(url string) interface {
	ExportSpans(context.Context, []S) error
	Shutdown(context.Context) error
}, spans []S) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	exp := newExp(srv.URL + TracesPath)
	if err := exp.ExportSpans(t.Context(), spans); err != nil {
		t.Fatalf("ExportSpans = %v", err)
	}
	if err := exp.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		t.Fatalf("decoding the request: %v", err)
	}
	// The SDK's exporter orders resources by map iteration: sort by name.
	slices.SortFunc(req.ResourceSpans, func(a, b *tracepb.ResourceSpans) int {
		return strings.Compare(serviceName(a), serviceName(b))
	})
	return &req
}

// The exporter puts on the wire what the SDK's own OTLP exporter would:
// every field of spans, events, links, statuses, scopes and resources, and
// every type of attribute value.
func TestExporterEncodesAsTheSDK(t *testing.T) {
	ctx := t.Context()
	res1 := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0", attribute.String("service.name", "a"), attribute.Int("n", 1))
	res2 := resource.NewSchemaless(attribute.String("service.name", "b"))
	scope := instrumentation.Scope{Name: Scope, Version: "v1.2.3", SchemaURL: "https://example.com/s",
		Attributes: attribute.NewSet(attribute.Bool("x", true))}
	tid := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	ts, _ := trace.ParseTraceState("vendor=value,other=x")
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{9, 9}, TraceFlags: trace.FlagsSampled, Remote: true})
	sc := func(id byte) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{id, 1}, TraceFlags: trace.FlagsSampled, TraceState: ts})
	}
	start := time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)
	long := string(make([]byte, 300)) // lengths of more than one varint byte
	all := []attribute.KeyValue{
		attribute.String("s", "v"), attribute.String("empty", ""), attribute.String("long", long),
		attribute.Bool("t", true), attribute.Bool("f", false), attribute.Int64("i", -42), attribute.Int64("zero", 0),
		attribute.Float64("d", 1.5), attribute.Float64("dz", 0),
		attribute.BoolSlice("bs", []bool{true, false}), attribute.Int64Slice("is", []int64{1, -1}),
		attribute.Float64Slice("fs", []float64{0.5}), attribute.StringSlice("ss", []string{"a", ""}),
		attribute.StringSlice("none", nil), {Key: "invalid"}, attribute.ByteSlice("b", []byte{0, 1}), attribute.ByteSlice("b0", nil),
		attribute.Slice("sl", attribute.StringValue("x"), attribute.Int64SliceValue([]int64{2})),
		attribute.Map("m", attribute.String("k", "v"), attribute.Map("inner")),
	}
	stubs := tracetest.SpanStubs{
		{Name: "POST /v1/authorize", SpanContext: sc(1), Parent: parent, SpanKind: trace.SpanKindServer,
			StartTime: start, EndTime: start.Add(time.Millisecond), Attributes: all,
			Status:   sdktrace.Status{Code: codes.Error, Description: "Internal Server Error"},
			Resource: res1, InstrumentationScope: scope},
		{Name: "kavach.decision", SpanContext: sc(2), Parent: sc(1), SpanKind: trace.SpanKindInternal,
			StartTime: start, EndTime: start.Add(time.Microsecond),
			Events: []sdktrace.Event{{Name: "e", Time: start, Attributes: all[:2], DroppedAttributeCount: 1}, {Name: "bare"}},
			Links: []sdktrace.Link{{SpanContext: sc(3), Attributes: []attribute.KeyValue{attribute.String("l", "v")}, DroppedAttributeCount: 2},
				{SpanContext: parent}},
			DroppedAttributes: 3, DroppedEvents: 4, DroppedLinks: 5, ChildSpanCount: 1,
			Status:   sdktrace.Status{Code: codes.Ok},
			Resource: res1, InstrumentationScope: instrumentation.Scope{Name: Scope}},
		{Name: "SELECT", SpanContext: sc(4), SpanKind: trace.SpanKindClient, Resource: res2},
		{Name: "other", SpanContext: sc(5), Resource: res1, InstrumentationScope: scope, Attributes: all[:1]},
	}
	spans := stubs.Snapshots()
	sdk := exportedBy(t, func(url string) interface {
		ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error
		Shutdown(context.Context) error
	} {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(url))
		if err != nil {
			t.Fatal(err)
		}
		return exp
	}, spans)
	ours := exportedBy(t, func(url string) interface {
		ExportSpans(context.Context, []spanData) error
		Shutdown(context.Context) error
	} {
		exp, err := newExporter(ctx, otlptracehttp.WithEndpointURL(url))
		if err != nil {
			t.Fatal(err)
		}
		return exp
	}, asSpanData(spans))
	if !proto.Equal(sdk, ours) {
		t.Errorf("exported\n%v\nwant (the SDK's exporter)\n%v", ours, sdk)
	}
	if len(ours.ResourceSpans) != 2 {
		t.Errorf("%d ResourceSpans; want 2", len(ours.ResourceSpans))
	}
}

func serviceName(rs *tracepb.ResourceSpans) string {
	for _, kv := range rs.GetResource().GetAttributes() {
		if kv.GetKey() == "service.name" {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

func asSpanData(spans []sdktrace.ReadOnlySpan) []spanData {
	out := make([]spanData, len(spans))
	for i, s := range spans {
		out[i] = s
	}
	return out
}
