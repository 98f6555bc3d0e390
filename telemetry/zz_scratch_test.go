//go:build unix

package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func cpuNow() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

type hdr map[string]string

func (h hdr) Get(k string) string { return h[k] }
func (h hdr) Set(k, v string)     { h[k] = v }
func (h hdr) Keys() []string      { return nil }

func BenchmarkScratchSpans(b *testing.B) {
	receiver := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	defer receiver.Close()
	one := 1.0
	tr, err := New(context.Background(), Options{Endpoint: receiver.URL, SampleRatio: &one, Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	tracer := tr.Provider().Tracer(Scope)
	pctx := propagation.TraceContext{}.Extract(context.Background(), hdr{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	sattrs := []attribute.KeyValue{attribute.String("http.request.method", "POST"), attribute.String("http.route", "/v1/authorize"), attribute.String("kavach.route", "authorize")}
	b.ReportAllocs()
	b.SetParallelism(8)
	start := cpuNow()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctx, span := tracer.Start(pctx, "POST /v1/authorize", trace.WithSpanKind(trace.SpanKindServer))
			_, d := Start(ctx, "kavach.decision")
			d.SetAttributes(attribute.String("kavach.agent.id", "agt_0123456789"), attribute.String("kavach.action", "read"),
				attribute.String("kavach.resource", "mcp:github:issues"), attribute.String("kavach.decision.result", "allow"),
				attribute.String("kavach.decision.code", "allowed"), attribute.String("kavach.audit.id", "aud_0123456789"),
				attribute.String("kavach.trust.level", "standard"))
			d.End()
			span.SetAttributes(append(sattrs, attribute.Int("http.response.status_code", 200))...)
			span.End()
		}
	})
	b.ReportMetric(float64(cpuNow()-start)/float64(b.N), "cpu-ns/op")
	_ = sdktrace.AlwaysSample
}
