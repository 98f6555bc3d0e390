package telemetry

import (
	"context"
	"encoding/binary"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Scope is the instrumentation scope of Kavach's spans.
const Scope = "github.com/kavach-dev/kavach"

// none is the span Start returns when nothing is traced: it records
// nothing, and ending it does nothing.
var none = trace.SpanFromContext(context.Background())

// Start starts a child of the span ctx carries, with the tracer provider
// that span came from, when that span records; otherwise it returns ctx
// and a span that records nothing, without allocating. So the layers below
// the HTTP server are traced exactly when the request is, and need no
// tracer of their own. Set attributes only when span.IsRecording(), and
// pass opts only when Recording(ctx): building them allocates.
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, none
	}
	if s, ok := parent.(*span); ok && s.t.scope.Name == Scope {
		// Kavach's own span: its tracer, without looking it up.
		return s.t.Start(ctx, name, opts...)
	}
	return parent.TracerProvider().Tracer(Scope).Start(ctx, name, opts...)
}

// Recording reports whether ctx carries a span that records: whether a
// child started from it would be exported. Check it before building a
// span's name or options, which would allocate for nothing otherwise.
func Recording(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }

// StartLinked starts a root span (a trace of its own) linked to each of
// the recording spans of spans: work done once for many requests, such
// as an audit batch, recorded once and reachable from each. It returns
// nil when none of the spans records.
func StartLinked(name string, spans []trace.Span, attrs ...trace.SpanStartOption) trace.Span {
	var tp trace.TracerProvider
	var links []trace.Link
	for _, s := range spans {
		if s == nil || !s.IsRecording() {
			continue
		}
		if tp == nil {
			tp = s.TracerProvider()
			links = make([]trace.Link, 0, len(spans))
		}
		links = append(links, trace.Link{SpanContext: s.SpanContext()})
	}
	if tp == nil {
		return nil
	}
	opts := append([]trace.SpanStartOption{trace.WithNewRoot(), trace.WithLinks(links...)}, attrs...)
	_, span := tp.Tracer(Scope).Start(context.Background(), name, opts...)
	return span
}

// linkSampler samples a new root span linked to a sampled span, so a batch
// is recorded whenever a request it serves is, whatever the ratio; it
// defers to the configured sampler for everything else.
//
// rule, when set, is that sampler's decision in a form the recorder asks
// without a context (recorder.go: the SDK's samplers each look the parent
// up in the context again, two walks up a request's context per span); it
// decides as the SDK's sampler does (TestRuleDecidesAsTheSDK).
type linkSampler struct {
	sdktrace.Sampler
	rule *rule
}

func (s linkSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if !trace.SpanContextFromContext(p.ParentContext).IsValid() && sampledLink(p.Links) {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample}
	}
	return s.Sampler.ShouldSample(p)
}

func (s linkSampler) Description() string { return "LinkSampler{" + s.Sampler.Description() + "}" }

func sampledLink(links []trace.Link) bool {
	for _, l := range links {
		if l.SpanContext.IsSampled() {
			return true
		}
	}
	return false
}

// rule is one of the samplers samplerOf builds: parent-based or not,
// over a root decision by trace ID ratio (always: ratio 1; never: bound 0),
// as the SDK's ParentBased (with its default delegates), TraceIDRatioBased,
// AlwaysSample and NeverSample decide.
type rule struct {
	parentBased bool
	always      bool
	// bound: a trace is sampled when its ID's last 63 bits are below it
	// (TraceIDRatioBased's test).
	bound uint64
}

// ratioRule is the root decision of TraceIDRatioBased(f).
func ratioRule(parentBased bool, f float64) *rule {
	switch {
	case f >= 1:
		return &rule{parentBased: parentBased, always: true}
	case f <= 0:
		return &rule{parentBased: parentBased}
	}
	return &rule{parentBased: parentBased, bound: uint64(f * (1 << 63))}
}

// decide is what the linkSampler over r decides for a span whose parent is
// parent (invalid for a root), in trace tid, linked to links, and the
// tracestate it gives: none when a sampled link decides, else the
// parent's, as the SDK's samplers keep it.
func (r *rule) decide(parent trace.SpanContext, tid trace.TraceID, links []trace.Link) (bool, trace.TraceState) {
	switch {
	case !parent.IsValid() && sampledLink(links):
		return true, trace.TraceState{}
	case r.parentBased && parent.IsValid():
		return parent.IsSampled(), parent.TraceState()
	case r.always:
		return true, parent.TraceState()
	}
	return binary.BigEndian.Uint64(tid[8:16])>>1 < r.bound, parent.TraceState()
}
