package sidecar

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/kavach-dev/kavach/telemetry"
)

// untraced are the routes no span is started for: probes and scrapes,
// which would drown the traces of the calls that matter.
var untraced = map[string]bool{"health": true, "ready": true, "metrics": true}

// knownMethods are the methods a span names; any other is _OTHER (the
// semantic conventions' rule: a method is the client's free text).
var knownMethods = map[string]string{
	http.MethodGet: http.MethodGet, http.MethodHead: http.MethodHead, http.MethodPost: http.MethodPost,
	http.MethodPut: http.MethodPut, http.MethodPatch: http.MethodPatch, http.MethodDelete: http.MethodDelete,
	http.MethodOptions: http.MethodOptions, http.MethodConnect: http.MethodConnect, http.MethodTrace: http.MethodTrace,
}

// traced starts a server span per request when tracing is on (Options.Tracer),
// continuing the caller's trace (W3C traceparent and tracestate), and
// names it by the route's template, never the path: paths hold IDs and,
// on the consent API, a secret handle. Nothing of the headers, the query
// or the body is recorded. Off, h is returned as is.
func (s *Server) traced(h http.Handler) http.Handler {
	if s.opts.Tracer == nil {
		return h
	}
	tracer := s.opts.Tracer.Tracer(telemetry.Scope, trace.WithInstrumentationVersion(s.opts.Version))
	prop := propagation.TraceContext{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := s.mux.Handler(r)
		route := s.byPattern[pattern]
		if untraced[route] {
			h.ServeHTTP(w, r)
			return
		}
		method, ok := knownMethods[r.Method]
		if !ok {
			method = "_OTHER"
		}
		name, attrs := "HTTP", make([]attribute.KeyValue, 1, 3)
		if ok {
			name = method
		}
		attrs[0] = attribute.String("http.request.method", method)
		if _, path, found := strings.Cut(pattern, " "); found {
			name += " " + path
			attrs = append(attrs, attribute.String("http.route", path), attribute.String("kavach.route", route))
		}
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}
