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

// serverSpanKind is the option every server span starts with, built once.
var serverSpanKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// spanKey is a request's method and the mux pattern it matched ("" for
// none).
type spanKey struct{ method, pattern string }

// serverSpan is a server span's name and attributes (but the status code),
// built once per route and method, not per request.
type serverSpan struct {
	name  string
	attrs []attribute.KeyValue
	skip  bool
}

// newServerSpan names the span of a request by method and pattern: the
// route's template, never the path.
func newServerSpan(method, pattern, route string) serverSpan {
	m, ok := knownMethods[method]
	if !ok {
		m = "_OTHER"
	}
	sp := serverSpan{name: "HTTP", attrs: []attribute.KeyValue{attribute.String("http.request.method", m)}, skip: untraced[route]}
	if ok {
		sp.name = m
	}
	if _, path, found := strings.Cut(pattern, " "); found {
		sp.name += " " + path
		sp.attrs = append(sp.attrs, attribute.String("http.route", path), attribute.String("kavach.route", route))
	}
	return sp
}

// serverSpans builds the span of every route for its own method, and of
// an unmatched request for each known method.
func (s *Server) serverSpans() map[spanKey]serverSpan {
	spans := make(map[spanKey]serverSpan, len(s.table)+len(knownMethods))
	for _, rt := range s.table {
		method, _, _ := strings.Cut(rt.Pattern, " ")
		spans[spanKey{method, rt.Pattern}] = newServerSpan(method, rt.Pattern, rt.Name)
	}
	for m := range knownMethods {
		spans[spanKey{m, ""}] = newServerSpan(m, "", "")
	}
	return spans
}

// traced starts a server span per request when tracing is on (Options.Tracer),
// continuing the caller's trace (W3C traceparent and tracestate), and
// names it by the route's template, never the path: paths hold IDs and,
// on the consent API, a secret handle. Nothing of the headers, the query
// or the body is recorded. Off, h is returned as is.
//
// The names and attributes are built once (serverSpans), and set when the
// request is done, with its status, in one call: each SetAttributes grows
// the span's slice anew.
func (s *Server) traced(h http.Handler) http.Handler {
	if s.opts.Tracer == nil {
		return h
	}
	tracer := s.opts.Tracer.Tracer(telemetry.Scope, trace.WithInstrumentationVersion(s.opts.Version))
	prop := propagation.TraceContext{}
	spans := s.serverSpans()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := s.mux.Handler(r)
		sp, ok := spans[spanKey{r.Method, pattern}]
		if !ok {
			// A GET route asked with HEAD, or a method of the client's own.
			sp = newServerSpan(r.Method, pattern, s.byPattern[pattern])
		}
		if sp.skip {
			h.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		if _, ok := r.Header["Traceparent"]; ok {
			ctx = prop.Extract(ctx, traceHeaders(r.Header))
		}
		ctx, span := tracer.Start(ctx, sp.name, serverSpanKind...)
		defer span.End()
		tw := &tracedWriter{statusWriter: statusWriter{ResponseWriter: w, status: http.StatusOK}}
		h.ServeHTTP(&tw.statusWriter, r.WithContext(ctx))
		// The SDK copies the attributes: tw's array, allocated with the
		// writer, is all this call costs.
		attrs := append(tw.attrs[:0], sp.attrs...)
		span.SetAttributes(append(attrs, attribute.Int("http.response.status_code", tw.status))...)
		if tw.status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(tw.status))
		}
	})
}

// tracedWriter is a traced request's status writer and the room for its
// span's attributes, in one allocation.
type tracedWriter struct {
	statusWriter
	attrs [4]attribute.KeyValue
}

// traceHeaders reads the W3C trace context from request headers, as
// propagation.HeaderCarrier does, but without canonicalizing (and so
// allocating) the lower-case keys the propagator asks for.
type traceHeaders http.Header

func (h traceHeaders) Get(key string) string {
	var vs []string
	switch key {
	case "traceparent":
		vs = h["Traceparent"]
	case "tracestate":
		vs = h["Tracestate"]
	default:
		return http.Header(h).Get(key)
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func (h traceHeaders) Set(key, value string) { http.Header(h).Set(key, value) }

func (h traceHeaders) Keys() []string { return propagation.HeaderCarrier(h).Keys() }
