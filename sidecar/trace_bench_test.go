package sidecar_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kavach-dev/kavach/sidecar"
)

// discard is an exporter that drops what it is given: the SDK's cost
// without the network's.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// What tracing weighs on the whole guarded POST /v1/authorize, in process:
// off (no tracer: the handler is the server itself, and the spans below it
// are never started) against on, every request sampled, spans batched to
// an exporter that drops them. Off must add no allocation: compare its
// allocs/op with BenchmarkGuard/authorize-with-key. The CPU per decision
// under concurrent callers, spans sent over OTLP/HTTP, is
// BenchmarkTracingCPU; the HTTP comparison with an OTLP receiver is
// kavach bench --compare (docs/telemetry.md).
//
//	go test ./sidecar -run X -bench Tracing -benchmem
func BenchmarkTracing(b *testing.B) {
	svc, k, body := benchDecider(b)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, tc := range []struct {
		name string
		opts sidecar.Options
	}{{"off", sidecar.Options{}}, {"on", sidecar.Options{Tracer: tp}}} {
		h := newServer(b, svc, tc.opts).Traced()
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if rec := tracedAuthorize(h, k.Key, body); rec.Code != 200 {
					b.Fatalf("authorize = %d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// tracedAuthorize serves one POST /v1/authorize with key and body, as a
// traced caller sends it (a sampled traceparent).
func tracedAuthorize(h http.Handler, key, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/authorize", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
