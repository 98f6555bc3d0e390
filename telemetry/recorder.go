package telemetry

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// The span recorder: Kavach's own implementation of OpenTelemetry's trace
// API (trace.TracerProvider, Tracer and Span), doing for Kavach's spans
// what the SDK's TracerProvider does, with the SDK's samplers, resource
// and limits, and handing ended spans to the batcher (batch.go).
//
// Why: with every request traced, the SDK's recording span was the larger
// part of what tracing cost a decision. Measured on a decision (docs/
// telemetry.md, "Cost"): starting and ending one SDK span took about
// 2.7 µs, 6 allocations and 1.4 KB, and each decision has two to three: a
// span struct, its attribute slice, a copy of the span for the processor
// at End (the ReadOnlySpan snapshot), a sorted copy of its attributes, and
// the SDK's bookkeeping of children and of the processors it calls. Here a
// span is one allocation holding room for its first attributes; at End it
// becomes its own read-only form, queued as it is.
//
// What the SDK does that this does not: span processors other than the
// batcher (Kavach exports to one OTLP endpoint), ID generators, a parent's
// count of children (not exported over OTLP), the SDK's self-observability
// metrics, and keeping one entry per key within map-valued attributes
// (Kavach sets none). Where it differs on purpose: after Shutdown, a
// tracer obtained before starts spans that do not record (the SDK's record
// and are dropped); a valid U+FFFD counts towards the length limit; an
// event or link limit of 0 reports the count it dropped.

// spanData is an ended span, as the exporter reads it: what the SDK's
// ReadOnlySpan offers (which satisfies it, for the exporter's tests) and
// span (ours) does.
type spanData interface {
	Name() string
	SpanContext() trace.SpanContext
	Parent() trace.SpanContext
	SpanKind() trace.SpanKind
	StartTime() time.Time
	EndTime() time.Time
	Attributes() []attribute.KeyValue
	Links() []sdktrace.Link
	Events() []sdktrace.Event
	Status() sdktrace.Status
	InstrumentationScope() instrumentation.Scope
	Resource() *resource.Resource
	DroppedAttributes() int
	DroppedLinks() int
	DroppedEvents() int
}

var (
	_ spanData             = sdktrace.ReadOnlySpan(nil)
	_ spanData             = (*span)(nil)
	_ trace.TracerProvider = (*provider)(nil)
	_ trace.Span           = (*span)(nil)
	_ trace.Span           = nonRecording{}
	_ trace.Tracer         = (*tracer)(nil)
)

// limits are the span limits of the OTEL_* environment variables, as the
// SDK reads them (a negative count or length: unlimited).
type limits struct {
	attrValueLen int
	attrCount    int
	eventCount   int
	linkCount    int
	eventAttrs   int
	linkAttrs    int
}

// The SDK's default limits.
const (
	defaultAttrCount  = 128
	defaultEventCount = 128
	defaultLinkCount  = 128
)

// limitsOf reads OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT (else
// OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT), OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT (else
// OTEL_ATTRIBUTE_COUNT_LIMIT), OTEL_SPAN_EVENT_COUNT_LIMIT,
// OTEL_SPAN_LINK_COUNT_LIMIT, OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT and
// OTEL_LINK_ATTRIBUTE_COUNT_LIMIT exactly as the SDK reads them: the first
// key set decides, and a value that is not an integer (spaces included)
// gives the default, not the next key (TestLimitsAsTheSDK).
func limitsOf(getenv func(string) string) limits {
	read := func(def int, keys ...string) int {
		for _, k := range keys {
			v := getenv(k)
			if v == "" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return def
			}
			return n
		}
		return def
	}
	return limits{
		attrValueLen: read(-1, "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"),
		attrCount:    read(defaultAttrCount, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"),
		eventCount:   read(defaultEventCount, "OTEL_SPAN_EVENT_COUNT_LIMIT"),
		linkCount:    read(defaultLinkCount, "OTEL_SPAN_LINK_COUNT_LIMIT"),
		eventAttrs:   read(defaultAttrCount, "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT"),
		linkAttrs:    read(defaultAttrCount, "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT"),
	}
}

// provider is the tracer provider: a tracer per instrumentation scope,
// spans sampled by sampler, described by res, queued on proc.
type provider struct {
	embedded.TracerProvider
	sampler sdktrace.Sampler
	res     *resource.Resource
	proc    *batcher
	limits  limits
	tracers sync.Map // instrumentation.Scope → *tracer
	stopped atomic.Bool
}

func newProvider(sampler sdktrace.Sampler, res *resource.Resource, proc *batcher, l limits) *provider {
	return &provider{sampler: sampler, res: res, proc: proc, limits: l}
}

// defaultTracerName names a tracer asked for with no name, as the SDK does.
const defaultTracerName = "go.opentelemetry.io/otel/sdk/tracer"

// Tracer is the tracer of the scope name and opts describe: one per scope,
// kept. After Shutdown it is a tracer that records nothing.
func (p *provider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	if p.stopped.Load() {
		return noop.NewTracerProvider().Tracer(name, opts...)
	}
	if name == "" {
		name = defaultTracerName
	}
	c := trace.NewTracerConfig(opts...)
	scope := instrumentation.Scope{Name: name, Version: c.InstrumentationVersion(), SchemaURL: c.SchemaURL(),
		Attributes: c.InstrumentationAttributes()}
	if t, ok := p.tracers.Load(scope); ok {
		return t.(*tracer)
	}
	t, _ := p.tracers.LoadOrStore(scope, &tracer{p: p, scope: scope})
	return t.(*tracer)
}

// ForceFlush exports every span ended so far.
func (p *provider) ForceFlush(ctx context.Context) error { return p.proc.ForceFlush(ctx) }

// Shutdown stops recording, exports what is queued and stops the exporter.
func (p *provider) Shutdown(ctx context.Context) error {
	p.stopped.Store(true)
	return p.proc.Shutdown(ctx)
}

// tracer starts spans of one scope.
type tracer struct {
	embedded.Tracer
	p     *provider
	scope instrumentation.Scope
}

// Start starts a span as the SDK's tracer does: a child of the span
// context ctx carries (the caller's, remote, or a local span's) unless
// WithNewRoot, sampled by the provider's sampler, whose tracestate it
// takes; a span that is not recorded still has a span context of its own.
func (t *tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if ctx == nil {
		ctx = context.Background() // as the SDK: a nil context would panic below
	}
	c := trace.NewSpanStartConfig(opts...)
	var parent trace.SpanContext
	if c.NewRoot() {
		ctx = trace.ContextWithSpanContext(ctx, parent)
	} else {
		parent = trace.SpanContextFromContext(ctx)
	}
	tid := parent.TraceID()
	if !tid.IsValid() {
		tid = newTraceID()
	}
	sid := newSpanID()
	kind := trace.ValidateSpanKind(c.SpanKind())
	var sr sdktrace.SamplingResult
	if ls, ok := t.p.sampler.(linkSampler); ok && ls.rule != nil {
		// One of samplerOf's: decided without looking the parent up again.
		var sampled bool
		sampled, sr.Tracestate = ls.rule.decide(parent, tid, c.Links())
		sr.Decision = sdktrace.Drop
		if sampled {
			sr.Decision = sdktrace.RecordAndSample
		}
	} else {
		sr = t.p.sampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: name,
			Kind: c.SpanKind(), Attributes: c.Attributes(), Links: c.Links()})
	}
	flags := parent.TraceFlags() &^ trace.FlagsSampled
	if sr.Decision == sdktrace.RecordAndSample {
		flags |= trace.FlagsSampled
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, TraceState: sr.Tracestate})
	if sr.Decision == sdktrace.Drop || t.p.stopped.Load() {
		s := nonRecording{sc: sc, p: t.p}
		return trace.ContextWithSpan(ctx, s), s
	}
	start := c.Timestamp()
	if start.IsZero() {
		start = time.Now()
	}
	s := &span{t: t, sc: sc, parent: parent, kind: kind, name: name, start: start}
	s.attrs = s.inline[:0]
	s.setAttributes(sr.Attributes)
	s.setAttributes(c.Attributes())
	for _, l := range c.Links() {
		s.addLink(l)
	}
	return trace.ContextWithSpan(ctx, s), s
}

// newTraceID and newSpanID are random, non-zero IDs, from math/rand/v2's
// generator (ChaCha8, seeded by the runtime), as the SDK's default IDs
// come from math/rand: IDs need to be unique, not secret.
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		hi, lo := rand.Uint64(), rand.Uint64() //nolint:gosec // IDs, not secrets: the SDK's are math/rand too
		binary.BigEndian.PutUint64(id[:8], hi)
		binary.BigEndian.PutUint64(id[8:], lo)
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64()) //nolint:gosec // IDs, not secrets
	}
	return id
}

// inlineAttrs is how many attributes a span holds without allocating
// more: enough for a request's, a statement's or a transaction's; a
// decision's (six to nine) take one more allocation.
const inlineAttrs = 4

// span is a recording span. Until End it is written under mu; End marks it
// ended (after which every write is ignored, as the SDK ignores it) and
// queues it, and from then on it is read only, by the exporter, through
// the getters.
type span struct {
	embedded.Span
	t      *tracer
	sc     trace.SpanContext
	parent trace.SpanContext
	kind   trace.SpanKind
	ended  atomic.Bool

	mu     sync.Mutex
	name   string
	start  time.Time
	end    time.Time
	status sdktrace.Status
	attrs  []attribute.KeyValue
	// dupes is whether attrs may hold a key twice (deduplicated at End).
	dupes         bool
	droppedAttrs  int
	events        []sdktrace.Event
	droppedEvents int
	links         []sdktrace.Link
	droppedLinks  int
	inline        [inlineAttrs]attribute.KeyValue
}

func (s *span) SpanContext() trace.SpanContext { return s.sc }

// IsRecording is true until End.
func (s *span) IsRecording() bool { return !s.ended.Load() }

func (s *span) TracerProvider() trace.TracerProvider { return s.t.p }

// End ends the span at the time the options give, else now (on the
// monotonic clock, from the start), recording a panic under way as an
// exception event (the panic goes on), and queues it for export if
// sampled. Only the first End counts.
func (s *span) End(opts ...trace.SpanEndOption) {
	if s.ended.Load() {
		return
	}
	end := time.Now()
	c := trace.NewSpanEndConfig(opts...)
	if r := recover(); r != nil {
		// As the SDK's span: called deferred, End sees a panic under way.
		defer panic(r)
		s.AddEvent("exception", trace.WithAttributes(attribute.String("exception.type", typeName(r)),
			attribute.String("exception.message", fmt.Sprint(r))), stackTrace(c.StackTrace()))
	}
	s.mu.Lock()
	if s.ended.Load() {
		s.mu.Unlock()
		return
	}
	if ts := c.Timestamp(); !ts.IsZero() {
		end = ts
	} else {
		end = s.start.Add(end.Sub(s.start))
	}
	s.end = end
	if s.dupes {
		s.attrs = dedupe(s.attrs)
		s.dupes = false
	}
	s.ended.Store(true)
	s.mu.Unlock()
	if s.sc.IsSampled() {
		s.t.p.proc.add(s)
	}
}

// stackTrace is the option that adds exception.stacktrace when asked for.
func stackTrace(on bool) trace.EventOption {
	if !on {
		return trace.WithAttributes()
	}
	buf := make([]byte, 4096)
	buf = buf[:runtime.Stack(buf, false)]
	return trace.WithAttributes(attribute.String("exception.stacktrace", string(buf)))
}

// typeName is an error's or a panic value's type, as the SDK names it.
func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return "<nil>"
	}
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String() // a pointer or another unnamed type
	}
	return t.PkgPath() + "." + t.Name()
}

// dedupe keeps one attribute per key, where the key first appears, with
// the last value set for it, as the SDK does.
func dedupe(kvs []attribute.KeyValue) []attribute.KeyValue {
	at := make(map[attribute.Key]int, len(kvs))
	out := kvs[:0]
	for _, kv := range kvs {
		if i, ok := at[kv.Key]; ok {
			out[i] = kv
			continue
		}
		at[kv.Key] = len(out)
		out = append(out, kv)
	}
	clear(kvs[len(out):])
	return out
}

// SetAttributes sets attributes, a later value of a key replacing an
// earlier one; an invalid attribute, or one past the count limit, is
// dropped and counted; a string longer than the length limit is cut.
func (s *span) SetAttributes(kvs ...attribute.KeyValue) {
	if !s.IsRecording() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended.Load() {
		s.setAttributes(kvs)
	}
}

func (s *span) setAttributes(kvs []attribute.KeyValue) {
	if len(kvs) == 0 {
		return
	}
	l := &s.t.p.limits
	if l.attrCount == 0 {
		s.droppedAttrs += len(kvs)
		return
	}
	if l.attrCount > 0 && len(s.attrs)+len(kvs) > l.attrCount {
		s.setOverLimit(kvs)
		return
	}
	if len(s.attrs) == 0 && len(kvs) > cap(s.attrs) {
		s.attrs = make([]attribute.KeyValue, 0, len(kvs)) // exactly the size asked for
	}
	for _, kv := range kvs {
		if !kv.Valid() {
			s.droppedAttrs++
			continue
		}
		if !s.dupes {
			for _, have := range s.attrs {
				if have.Key == kv.Key {
					s.dupes = true
					break
				}
			}
		}
		s.attrs = append(s.attrs, truncate(l.attrValueLen, kv))
	}
}

// setOverLimit adds kvs to a span that would hold more than the limit:
// deduplicated now, a new key past the limit dropped and counted.
func (s *span) setOverLimit(kvs []attribute.KeyValue) {
	l := &s.t.p.limits
	if s.dupes {
		s.attrs, s.dupes = dedupe(s.attrs), false
	}
	for _, kv := range kvs {
		if !kv.Valid() {
			s.droppedAttrs++
			continue
		}
		kv = truncate(l.attrValueLen, kv)
		if i := slices.IndexFunc(s.attrs, func(have attribute.KeyValue) bool { return have.Key == kv.Key }); i >= 0 {
			s.attrs[i] = kv
			continue
		}
		if len(s.attrs) >= l.attrCount {
			s.droppedAttrs++
			continue
		}
		s.attrs = append(s.attrs, kv)
	}
}

// truncate cuts the strings and byte slices of kv (within slices and
// maps too) longer than limit characters (bytes), as the SDK does; limit
// < 0 is no limit.
func truncate(limit int, kv attribute.KeyValue) attribute.KeyValue {
	if limit < 0 || !needsCut(limit, kv.Value) {
		return kv
	}
	return attribute.KeyValue{Key: kv.Key, Value: truncateValue(limit, kv.Value)}
}

func truncateValue(limit int, v attribute.Value) attribute.Value {
	switch v.Type() {
	case attribute.STRING:
		return attribute.StringValue(cut(limit, v.AsString()))
	case attribute.STRINGSLICE:
		ss := v.AsStringSlice()
		for i := range ss {
			ss[i] = cut(limit, ss[i])
		}
		return attribute.StringSliceValue(ss)
	case attribute.BYTESLICE:
		if b := v.AsByteSlice(); len(b) > limit {
			return attribute.ByteSliceValue(b[:limit])
		}
	case attribute.SLICE:
		vs := v.AsSlice()
		for i := range vs {
			vs[i] = truncateValue(limit, vs[i])
		}
		return attribute.SliceValue(vs...)
	case attribute.MAP:
		m := v.AsMap()
		for i := range m {
			m[i].Value = truncateValue(limit, m[i].Value)
		}
		return attribute.MapValue(m...)
	}
	return v
}

// needsCut reports whether truncateValue would change v.
func needsCut(limit int, v attribute.Value) bool {
	switch v.Type() {
	case attribute.STRING:
		return len(v.AsString()) > limit
	case attribute.BYTESLICE:
		return len(v.AsString()) > limit
	case attribute.STRINGSLICE:
		return slices.ContainsFunc(v.AsStringSlice(), func(s string) bool { return len(s) > limit })
	case attribute.SLICE:
		return slices.ContainsFunc(v.AsSlice(), func(e attribute.Value) bool { return needsCut(limit, e) })
	case attribute.MAP:
		return slices.ContainsFunc(v.AsMap(), func(kv attribute.KeyValue) bool { return needsCut(limit, kv.Value) })
	}
	return false
}

// cut is s within limit characters: s itself when it has at most limit
// bytes, else its first limit characters with invalid UTF-8 dropped, as
// the SDK cuts, but that a valid U+FFFD counts as a character (the SDK
// skips it in its count).
func cut(limit int, s string) string {
	if len(s) <= limit {
		return s
	}
	if utf8.ValidString(s) {
		n := 0
		for i := range s {
			if n == limit {
				return s[:i]
			}
			n++
		}
		return s
	}
	b := make([]byte, 0, len(s))
	for i, n := 0, 0; i < len(s) && n < limit; {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError || size > 1 {
			b = append(b, s[i:i+size]...)
			n++
		}
		i += size
	}
	return string(b)
}

// AddEvent adds an event; past the event limit the oldest is dropped.
func (s *span) AddEvent(name string, opts ...trace.EventOption) {
	if !s.IsRecording() {
		return
	}
	c := trace.NewEventConfig(opts...)
	ts := c.Timestamp()
	if ts.IsZero() {
		ts = time.Now()
	}
	l := &s.t.p.limits
	ev := sdktrace.Event{Name: name, Time: ts}
	ev.Attributes, ev.DroppedAttributeCount = capAttributes(c.Attributes(), l.eventAttrs)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() {
		return
	}
	s.events, s.droppedEvents = pushBounded(s.events, ev, l.eventCount, s.droppedEvents)
}

// RecordError adds an exception event for err (nothing for nil): the
// options' attributes, then its type and message, and its stack when
// asked for, in the SDK's order.
func (s *span) RecordError(err error, opts ...trace.EventOption) {
	if err == nil || !s.IsRecording() {
		return
	}
	opts = append(opts, trace.WithAttributes(attribute.String("exception.type", typeName(err)),
		attribute.String("exception.message", err.Error())))
	if c := trace.NewEventConfig(opts...); c.StackTrace() {
		opts = append(opts, stackTrace(true))
	}
	s.AddEvent("exception", opts...)
}

// AddLink links the span to another; past the link limit the oldest link is dropped.
func (s *span) AddLink(l trace.Link) {
	if !s.IsRecording() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended.Load() {
		s.addLink(l)
	}
}

func (s *span) addLink(l trace.Link) {
	if !l.SpanContext.IsValid() && len(l.Attributes) == 0 && l.SpanContext.TraceState().Len() == 0 {
		return // as the SDK: a link to nothing, saying nothing
	}
	lim := &s.t.p.limits
	lk := sdktrace.Link{SpanContext: l.SpanContext}
	lk.Attributes, lk.DroppedAttributeCount = capAttributes(l.Attributes, lim.linkAttrs)
	s.links, s.droppedLinks = pushBounded(s.links, lk, lim.linkCount, s.droppedLinks)
}

// capAttributes is kvs within a count limit (the SDK does not cut the
// values of events' and links' attributes), and how many it dropped.
func capAttributes(kvs []attribute.KeyValue, count int) ([]attribute.KeyValue, int) {
	if count >= 0 && len(kvs) > count {
		return kvs[:count:count], len(kvs) - count
	}
	return kvs, 0
}

// pushBounded appends v, dropping (and counting) the oldest when the list
// holds limit already; limit 0 keeps nothing, < 0 is unlimited.
func pushBounded[T any](list []T, v T, limit, dropped int) ([]T, int) {
	switch {
	case limit == 0:
		return list, dropped + 1
	case limit > 0 && len(list) >= limit:
		copy(list, list[1:])
		list[len(list)-1] = v
		return list, dropped + 1
	}
	return append(list, v), dropped
}

// SetStatus sets the status as the SDK does: Ok is final, Error replaces
// Unset (and its description is kept only with Error), Unset changes
// nothing.
func (s *span) SetStatus(code codes.Code, description string) {
	if !s.IsRecording() || code == codes.Unset {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() || s.status.Code == codes.Ok {
		return
	}
	st := sdktrace.Status{Code: code}
	if code == codes.Error {
		st.Description = description
	}
	s.status = st
}

// SetName renames the span.
func (s *span) SetName(name string) {
	if !s.IsRecording() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended.Load() {
		s.name = name
	}
}

// The getters, read by the exporter once the span has ended (and so
// without the lock: nothing writes an ended span).

func (s *span) Name() string                     { return s.name }
func (s *span) Parent() trace.SpanContext        { return s.parent }
func (s *span) SpanKind() trace.SpanKind         { return s.kind }
func (s *span) StartTime() time.Time             { return s.start }
func (s *span) EndTime() time.Time               { return s.end }
func (s *span) Attributes() []attribute.KeyValue { return s.attrs }
func (s *span) DroppedAttributes() int           { return s.droppedAttrs }
func (s *span) Events() []sdktrace.Event         { return s.events }
func (s *span) DroppedEvents() int               { return s.droppedEvents }
func (s *span) Links() []sdktrace.Link           { return s.links }
func (s *span) DroppedLinks() int                { return s.droppedLinks }
func (s *span) Status() sdktrace.Status          { return s.status }
func (s *span) Resource() *resource.Resource     { return s.t.p.res }

func (s *span) InstrumentationScope() instrumentation.Scope { return s.t.scope }

// nonRecording is a span the sampler dropped: a span context to pass on
// (so the trace continues downstream, unsampled), and nothing recorded.
type nonRecording struct {
	embedded.Span
	sc trace.SpanContext
	p  *provider
}

func (s nonRecording) SpanContext() trace.SpanContext        { return s.sc }
func (nonRecording) IsRecording() bool                       { return false }
func (s nonRecording) TracerProvider() trace.TracerProvider  { return s.p }
func (nonRecording) End(...trace.SpanEndOption)              {}
func (nonRecording) AddEvent(string, ...trace.EventOption)   {}
func (nonRecording) AddLink(trace.Link)                      {}
func (nonRecording) RecordError(error, ...trace.EventOption) {}
func (nonRecording) SetStatus(codes.Code, string)            {}
func (nonRecording) SetName(string)                          {}
func (nonRecording) SetAttributes(...attribute.KeyValue)     {}
