package telemetry

import (
	"context"

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
type linkSampler struct{ sdktrace.Sampler }

func (s linkSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if !trace.SpanContextFromContext(p.ParentContext).IsValid() {
		for _, l := range p.Links {
			if l.SpanContext.IsSampled() {
				return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample}
			}
		}
	}
	return s.Sampler.ShouldSample(p)
}

func (s linkSampler) Description() string { return "LinkSampler{" + s.Sampler.Description() + "}" }
