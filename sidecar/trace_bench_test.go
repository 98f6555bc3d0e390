package sidecar_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/telemetry"
)

// discard is an exporter that drops what it is given: the SDK's cost
// without the network's.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// What tracing weighs on the whole guarded POST /v1/authorize, in process:
// off (no tracer: the handler is the server itself, and the spans below it
// are never started), the SDK's TracerProvider batching to an exporter that
// drops the spans (what Kavach used before its recorder), and tracing as
// kavach serve builds it (telemetry.New: the recorder, spans sent over
// OTLP/HTTP to a receiver in this process that drops them), every request
// sampled. Off must add no allocation: compare its allocs/op with
// BenchmarkGuard/authorize-with-key. The CPU per decision under
// concurrent callers is BenchmarkTracingCost; the HTTP comparison with an
// OTLP receiver is kavach bench --compare (docs/telemetry.md).
//
//	go test ./sidecar -run X -bench 'Tracing$' -benchmem
func BenchmarkTracing(b *testing.B) {
	svc, k, body := benchDecider(b)
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	receiver := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(receiver.Close)
	one := 1.0
	tr, err := telemetry.New(b.Context(), telemetry.Options{Endpoint: receiver.URL, SampleRatio: &one, Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	for _, tc := range []struct {
		name string
		opts sidecar.Options
	}{{"off", sidecar.Options{}}, {"sdk", sidecar.Options{Tracer: sdk}}, {"on", sidecar.Options{Tracer: tr.Provider()}}} {
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
