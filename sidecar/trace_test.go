package sidecar_test

import (
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
)

// Each request's server span is named by its method and route template,
// never its path; probes start none; a caller's traceparent is continued.
func TestServerSpans(t *testing.T) {
	svc, _, _ := newService(t, service.Options{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := newServer(t, svc, sidecar.Options{Tracer: tp}).Traced()
	tests := []struct {
		method, path string
		name         string // "" for no span
		attrs        map[string]string
	}{
		{"POST", "/v1/authorize", "POST /v1/authorize",
			map[string]string{"http.request.method": "POST", "http.route": "/v1/authorize", "kavach.route": "authorize", "http.response.status_code": "401"}},
		{"GET", "/v1/agents/agt_secret", "GET /v1/agents/{id}",
			map[string]string{"http.request.method": "GET", "http.route": "/v1/agents/{id}", "kavach.route": "agents.get", "http.response.status_code": "401"}},
		{"HEAD", "/v1/agents", "HEAD /v1/agents",
			map[string]string{"http.request.method": "HEAD", "http.route": "/v1/agents", "kavach.route": "agents.list", "http.response.status_code": "401"}},
		{"GET", "/nope/agt_secret", "GET", map[string]string{"http.request.method": "GET", "http.response.status_code": "401"}},
		{"BREW", "/v1/agents", "HTTP", map[string]string{"http.request.method": "_OTHER", "http.response.status_code": "401"}},
		{"GET", "/health", "", nil},
		{"HEAD", "/ready", "", nil},
	}
	for _, tc := range tests {
		before := len(rec.Ended())
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		h.ServeHTTP(httptest.NewRecorder(), req)
		spans := rec.Ended()[before:]
		if tc.name == "" {
			if len(spans) != 0 {
				t.Errorf("%s %s: %d spans; want none", tc.method, tc.path, len(spans))
			}
			continue
		}
		if len(spans) != 1 {
			t.Errorf("%s %s: %d spans; want 1", tc.method, tc.path, len(spans))
			continue
		}
		sp := spans[0]
		got := map[string]string{}
		for _, a := range sp.Attributes() {
			got[string(a.Key)] = a.Value.String()
		}
		if sp.Name() != tc.name || !equalAttrs(got, tc.attrs) {
			t.Errorf("%s %s: span %q %v; want %q %v", tc.method, tc.path, sp.Name(), got, tc.name, tc.attrs)
		}
		if sp.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !sp.Parent().IsRemote() {
			t.Errorf("%s %s: span in trace %s under %v; want the caller's", tc.method, tc.path, sp.SpanContext().TraceID(), sp.Parent())
		}
	}
}

func equalAttrs(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
