package telemetry

import (
	"context"
	"fmt"
	"math"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// exporter sends spans over OTLP/HTTP through the SDK's own client
// (otlptracehttp.NewClient: endpoint, headers, compression, TLS, timeout
// and retries, from the options and the OTEL_EXPORTER_OTLP_* environment),
// as the SDK's otlptrace exporter does, but encodes them itself.
//
// Why: the SDK's exporter builds a tree of protobuf objects for every span
// (three allocations per attribute, one per ID) and then marshals it; with
// every request traced, that was half of what tracing cost. Here the spans
// are appended, in OTLP's protobuf encoding, to one buffer reused from
// export to export, and the client is handed a ResourceSpans whose every
// field is that encoding, carried as the message's unknown fields, which
// protobuf marshals as they are: the same bytes on the wire, decoded by any
// receiver as the SDK's exporter's would be (export_test.go checks this).
//
// Only protobuf works so (unknown fields have no JSON form): New refuses
// any OTEL_EXPORTER_OTLP_PROTOCOL but http/protobuf. The SDK's
// experimental self-observability (OTEL_GO_X_OBSERVABILITY) would count
// no spans in these requests.
type exporter struct {
	client otlptrace.Client
	// mu guards buf: the batch span processor exports from one goroutine,
	// but the exporter does not rely on it.
	mu  sync.Mutex
	buf []byte
	// groups and bounds (of each ResourceSpans in buf) of the export at
	// hand, reused.
	groups []spanGroup
	bounds []int
}

var _ spanExporter = (*exporter)(nil)

// spanGroup is the spans of an export that share a resource and a scope,
// by index.
type spanGroup struct {
	res   *resource.Resource
	key   attribute.Distinct
	scope instrumentation.Scope
	spans []int
	done  bool
}

// newExporter starts the SDK's OTLP/HTTP client with opts.
func newExporter(ctx context.Context, opts ...otlptracehttp.Option) (*exporter, error) {
	c := otlptracehttp.NewClient(opts...)
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	return &exporter{client: c}, nil
}

// ExportSpans sends spans in one request, grouped by resource and scope as
// the SDK's exporter groups them.
func (e *exporter) ExportSpans(ctx context.Context, spans []spanData) error {
	if len(spans) == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.group(spans)
	b, bounds := e.buf[:0], e.bounds[:0]
	for i := range e.groups {
		g := &e.groups[i]
		if g.done {
			continue
		}
		// One ResourceSpans per resource, with a ScopeSpans per scope.
		start := len(b)
		if g.res != nil {
			b = beginMessage(b, 1) // ResourceSpans.resource
			r := len(b)
			b = appendIterator(b, 1, g.res.Iter())
			b = endMessage(b, r)
		}
		for j := i; j < len(e.groups); j++ {
			h := &e.groups[j]
			if h.done || h.key != g.key {
				continue
			}
			h.done = true
			b = beginMessage(b, 2) // ResourceSpans.scope_spans
			ss := len(b)
			if h.scope != (instrumentation.Scope{}) {
				b = beginMessage(b, 1) // ScopeSpans.scope
				sc := len(b)
				b = appendString(b, 1, h.scope.Name)
				b = appendString(b, 2, h.scope.Version)
				b = appendIterator(b, 3, h.scope.Attributes.Iter())
				b = endMessage(b, sc)
			}
			for _, k := range h.spans {
				b = appendSpan(b, 2, spans[k])
			}
			b = appendString(b, 3, h.scope.SchemaURL)
			b = endMessage(b, ss)
		}
		if g.res != nil {
			b = appendString(b, 3, g.res.SchemaURL())
		}
		bounds = append(bounds, start, len(b))
	}
	e.buf, e.bounds = b, bounds
	rss := make([]*tracepb.ResourceSpans, 0, len(bounds)/2)
	for i := 0; i < len(bounds); i += 2 {
		rss = append(rss, raw(b[bounds[i]:bounds[i+1]:bounds[i+1]]))
	}
	// The client marshals the request (copying b) before it returns.
	if err := e.client.UploadTraces(ctx, rss); err != nil {
		return fmt.Errorf("traces export: %w", err)
	}
	return nil
}

// group sorts spans into e.groups, in order of first appearance.
func (e *exporter) group(spans []spanData) {
	for i := range e.groups {
		e.groups[i].spans = e.groups[i].spans[:0]
	}
	n := 0
	for i, s := range spans {
		if s == nil {
			continue
		}
		res, scope := s.Resource(), s.InstrumentationScope()
		key := res.Equivalent()
		j := 0
		for j < n && (e.groups[j].key != key || e.groups[j].scope != scope) {
			j++
		}
		if j == n {
			if n == len(e.groups) {
				e.groups = append(e.groups, spanGroup{})
			}
			e.groups[n] = spanGroup{res: res, key: key, scope: scope, spans: e.groups[n].spans[:0]}
			n++
		}
		e.groups[j].spans = append(e.groups[j].spans, i)
	}
	e.groups = e.groups[:n]
}

// Shutdown stops the client.
func (e *exporter) Shutdown(ctx context.Context) error { return e.client.Stop(ctx) }

// The encoding: OTLP's trace.proto, common.proto and resource.proto, field
// by field, zero values left out as proto3 leaves them out (but a oneof's,
// which is always written).

// beginMessage appends the tag of a message field and one byte for its
// length, and returns where its content starts.
func beginMessage(b []byte, num protowire.Number) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return append(b, 0)
}

// endMessage writes the length of the message whose content started at
// start, moving the content on if its length takes more than one byte.
func endMessage(b []byte, start int) []byte {
	n := len(b) - start
	size := uint64(n) //nolint:gosec // a length: never negative
	k := protowire.SizeVarint(size)
	if k > 1 {
		for range k - 1 {
			b = append(b, 0)
		}
		copy(b[start+k-1:], b[start:start+n])
	}
	protowire.AppendVarint(b[:start-1], size)
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

func appendUvarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), v)
}

func clampUint32(v int) uint64 {
	return uint64(min(max(v, 0), math.MaxUint32)) //nolint:gosec // clamped to 0..MaxUint32
}

func unixNano(ns int64) uint64 { return uint64(max(0, ns)) } //nolint:gosec // clamped to 0..

func appendIterator(b []byte, num protowire.Number, it attribute.Iterator) []byte {
	for it.Next() {
		b = appendKeyValue(b, num, it.Attribute())
	}
	return b
}

func appendKeyValues(b []byte, num protowire.Number, kvs []attribute.KeyValue) []byte {
	for _, kv := range kvs {
		b = appendKeyValue(b, num, kv)
	}
	return b
}

// appendKeyValue appends a KeyValue.
func appendKeyValue(b []byte, num protowire.Number, kv attribute.KeyValue) []byte {
	b = beginMessage(b, num)
	start := len(b)
	b = appendString(b, 1, string(kv.Key))
	b = appendAnyValue(b, 2, kv.Value)
	return endMessage(b, start)
}

// appendAnyValue appends an AnyValue, as the SDK's exporter converts it.
func appendAnyValue(b []byte, num protowire.Number, v attribute.Value) []byte {
	b = beginMessage(b, num)
	start := len(b)
	switch v.Type() {
	case attribute.STRING:
		b = protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), v.AsString())
	case attribute.BOOL:
		b = protowire.AppendVarint(protowire.AppendTag(b, 2, protowire.VarintType), protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = protowire.AppendVarint(protowire.AppendTag(b, 3, protowire.VarintType), uint64(v.AsInt64())) //nolint:gosec // two's complement, as protobuf's int64
	case attribute.FLOAT64:
		b = protowire.AppendFixed64(protowire.AppendTag(b, 4, protowire.Fixed64Type), math.Float64bits(v.AsFloat64()))
	case attribute.BYTESLICE:
		b = protowire.AppendBytes(protowire.AppendTag(b, 7, protowire.BytesType), v.AsByteSlice())
	case attribute.BOOLSLICE:
		b = appendArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		b = appendArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		b = appendArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		b = appendArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		b = appendArray(b, v.AsSlice(), func(v attribute.Value) attribute.Value { return v })
	case attribute.MAP:
		b = beginMessage(b, 6) // AnyValue.kvlist_value
		list := len(b)
		b = appendKeyValues(b, 1, v.AsMap())
		b = endMessage(b, list)
	case attribute.EMPTY:
	default:
		b = protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), "INVALID")
	}
	return endMessage(b, start)
}

// appendArray appends AnyValue.array_value.
func appendArray[T any](b []byte, vs []T, value func(T) attribute.Value) []byte {
	b = beginMessage(b, 5)
	start := len(b)
	for _, v := range vs {
		b = appendAnyValue(b, 1, value(v))
	}
	return endMessage(b, start)
}

// spanFlags are the W3C flags and whether the parent is known to be
// remote (SpanFlags), as the SDK's exporter sets them.
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	f := uint32(tf) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if parent.IsRemote() {
		f |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	return f
}

// appendSpan appends a Span.
func appendSpan(b []byte, num protowire.Number, s spanData) []byte {
	b = beginMessage(b, num)
	start := len(b)
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), tid[:])
	b = protowire.AppendBytes(protowire.AppendTag(b, 2, protowire.BytesType), sid[:])
	b = appendString(b, 3, sc.TraceState().String())
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		b = protowire.AppendBytes(protowire.AppendTag(b, 4, protowire.BytesType), psid[:])
	}
	b = appendString(b, 5, s.Name())
	b = appendUvarint(b, 6, spanKind(s.SpanKind()))
	b = appendFixed64(b, 7, unixNano(s.StartTime().UnixNano()))
	b = appendFixed64(b, 8, unixNano(s.EndTime().UnixNano()))
	b = appendKeyValues(b, 9, s.Attributes())
	b = appendUvarint(b, 10, clampUint32(s.DroppedAttributes()))
	for _, ev := range s.Events() {
		b = beginMessage(b, 11)
		e := len(b)
		b = appendFixed64(b, 1, unixNano(ev.Time.UnixNano()))
		b = appendString(b, 2, ev.Name)
		b = appendKeyValues(b, 3, ev.Attributes)
		b = appendUvarint(b, 4, clampUint32(ev.DroppedAttributeCount))
		b = endMessage(b, e)
	}
	b = appendUvarint(b, 12, clampUint32(s.DroppedEvents()))
	for _, l := range s.Links() {
		b = beginMessage(b, 13)
		lk := len(b)
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		b = protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), ltid[:])
		b = protowire.AppendBytes(protowire.AppendTag(b, 2, protowire.BytesType), lsid[:])
		b = appendKeyValues(b, 4, l.Attributes)
		b = appendUvarint(b, 5, clampUint32(l.DroppedAttributeCount))
		b = protowire.AppendFixed32(protowire.AppendTag(b, 6, protowire.Fixed32Type), spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		b = endMessage(b, lk)
	}
	b = appendUvarint(b, 14, clampUint32(s.DroppedLinks()))
	b = beginMessage(b, 15) // status, always present
	st := len(b)
	status := s.Status()
	b = appendString(b, 2, status.Description)
	b = appendUvarint(b, 3, statusCode(status.Code))
	b = endMessage(b, st)
	b = protowire.AppendFixed32(protowire.AppendTag(b, 16, protowire.Fixed32Type), spanFlags(sc.TraceFlags(), parent))
	return endMessage(b, start)
}

// spanKind is Span.kind, a SpanKind of trace.proto.
func spanKind(k trace.SpanKind) uint64 {
	switch k {
	case trace.SpanKindInternal:
		return uint64(tracepb.Span_SPAN_KIND_INTERNAL)
	case trace.SpanKindServer:
		return uint64(tracepb.Span_SPAN_KIND_SERVER)
	case trace.SpanKindClient:
		return uint64(tracepb.Span_SPAN_KIND_CLIENT)
	case trace.SpanKindProducer:
		return uint64(tracepb.Span_SPAN_KIND_PRODUCER)
	case trace.SpanKindConsumer:
		return uint64(tracepb.Span_SPAN_KIND_CONSUMER)
	}
	return uint64(tracepb.Span_SPAN_KIND_UNSPECIFIED)
}

// statusCode is Status.code: trace.proto numbers Ok and Error the other
// way round from the SDK's codes.
func statusCode(c codes.Code) uint64 {
	switch c {
	case codes.Ok:
		return uint64(tracepb.Status_STATUS_CODE_OK)
	case codes.Error:
		return uint64(tracepb.Status_STATUS_CODE_ERROR)
	}
	return uint64(tracepb.Status_STATUS_CODE_UNSET)
}

// raw is a ResourceSpans whose fields are b, already encoded.
func raw(b []byte) *tracepb.ResourceSpans {
	rs := &tracepb.ResourceSpans{}
	rs.ProtoReflect().SetUnknown(protoreflect.RawFields(b))
	return rs
}
