package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// What tracing weighs when it is off, on every call that would start a
// span: one context lookup, no allocation.
//
//	go test ./telemetry -run X -bench StartOff -benchmem
func BenchmarkStartOff(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, span := Start(ctx, "kavach.decision")
		if span.IsRecording() {
			span.SetAttributes(attribute.String("kavach.agent.id", "agt_x"))
		}
		span.End()
		_ = c
	}
}

// What recording a request's spans costs, with the SDK's TracerProvider
// and with the recorder, in one run: a server span with its four
// attributes and a decision span under it with seven, ended and queued
// (exported to nowhere).
//
//	go test ./telemetry -run X -bench Record -benchmem
func BenchmarkRecord(b *testing.B) {
	res := resource.NewSchemaless(attribute.String("service.name", "bench"))
	sampler := linkSampler{Sampler: sdktrace.ParentBased(sdktrace.AlwaysSample())}
	for _, tt := range []struct {
		name string
		tp   func(*batcher) trace.TracerProvider
	}{
		{"sdk", func(bt *batcher) trace.TracerProvider {
			return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sdkProcessor{bt}), sdktrace.WithResource(res), sdktrace.WithSampler(sampler))
		}},
		{"recorder", func(bt *batcher) trace.TracerProvider { return newProvider(sampler, res, bt, limitsOf(env())) }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			bt := newBatcher(discard{}, env())
			defer func() { _ = bt.Shutdown(context.Background()) }()
			tr := tt.tp(bt).Tracer(Scope)
			server := []attribute.KeyValue{attribute.String("http.request.method", "POST"), attribute.String("http.route", "/v1/authorize"),
				attribute.String("kavach.route", "authorize"), attribute.Int("http.response.status_code", 200)}
			b.ReportAllocs()
			for b.Loop() {
				ctx, s := tr.Start(context.Background(), "POST /v1/authorize", trace.WithSpanKind(trace.SpanKindServer))
				_, d := Start(ctx, "kavach.decision")
				d.SetAttributes(attribute.String("kavach.agent.id", "agt_0123456789"), attribute.String("kavach.action", "read"),
					attribute.String("kavach.resource", "docs:a"), attribute.String("kavach.decision.result", "allowed"),
					attribute.String("kavach.decision.code", ""), attribute.String("kavach.audit.id", "aud_0123456789"),
					attribute.String("kavach.trust.level", "standard"))
				d.End()
				s.SetAttributes(server...)
				s.End()
			}
		})
	}
}

// discard is an exporter that sends nothing.
type discard struct{}

func (discard) ExportSpans(context.Context, []spanData) error { return nil }
func (discard) Shutdown(context.Context) error                { return nil }

// sdkProcessor queues the SDK's spans on a batcher, for the benchmark.
type sdkProcessor struct{ b *batcher }

func (p sdkProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (p sdkProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() {
		p.b.add(s)
	}
}
func (p sdkProcessor) Shutdown(ctx context.Context) error   { return p.b.Shutdown(ctx) }
func (p sdkProcessor) ForceFlush(ctx context.Context) error { return p.b.ForceFlush(ctx) }
