package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// The recorder is held to the SDK: the same calls on the SDK's
// TracerProvider and on ours, with the same sampler, resource and limits,
// put the same spans on the wire (span and trace IDs, random on both
// sides, are renumbered in order of appearance; the times of events the
// SDK stamps itself, a panic's, are compared as set or not).

// The caller's trace and spans in exercise.
var (
	tid        = trace.TraceID{0xa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	sidB, sidC = trace.SpanID{0xb, 1}, trace.SpanID{0xc, 1}
)

// exercise makes every call of the trace API Kavach's code, or another
// library handed the provider, could make, at fixed times.
func exercise(t *testing.T, tp trace.TracerProvider) {
	t.Helper()
	at := func(us int) time.Time {
		return time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC).Add(time.Duration(us) * time.Microsecond)
	}
	ts, _ := trace.ParseTraceState("vendor=v")
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sidB, TraceFlags: trace.FlagsSampled,
		TraceState: ts, Remote: true})
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sidC, Remote: true})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
	tr := tp.Tracer(Scope, trace.WithInstrumentationVersion("v9"), trace.WithInstrumentationAttributes(attribute.String("a", "b")))

	ctx, server := tr.Start(ctx, "POST /v1/authorize", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(at(0)),
		trace.WithAttributes(attribute.String("http.request.method", "POST"), attribute.String("dup", "first")))
	long := strings.Repeat("é", 4) + "ü" + strings.Repeat("x", 200) // no invalid UTF-8: protobuf strings may not hold it
	server.SetAttributes(attribute.String("dup", "second"), attribute.String("long", long), attribute.KeyValue{Key: "invalid"},
		attribute.StringSlice("ss", []string{"short", long}), attribute.ByteSlice("b", []byte(long)),
		attribute.Int("i", 7), attribute.Bool("t", true), attribute.Float64("f", 0.5), attribute.Int64Slice("is", []int64{1, 2}))
	for i := range 6 {
		server.SetAttributes(attribute.Int("n"+string(rune('0'+i)), i))
	}
	server.SetStatus(codes.Error, "first")
	server.SetStatus(codes.Unset, "ignored")
	server.SetStatus(codes.Error, "second")

	dctx, decision := tr.Start(ctx, "kavach.decision", trace.WithTimestamp(at(10)))
	for i := range 5 {
		decision.AddEvent("step", trace.WithTimestamp(at(11+i)), trace.WithAttributes(attribute.Int("k", i), attribute.String("s", long)))
	}
	decision.RecordError(errors.New("boom"), trace.WithTimestamp(at(20)), trace.WithAttributes(attribute.String("extra", "1")))
	decision.RecordError(nil)
	decision.SetStatus(codes.Ok, "dropped with Ok")
	decision.SetStatus(codes.Error, "Ok is final")
	decision.SetName("kavach.decision.renamed")

	_, stmt := tr.Start(dctx, "SELECT", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(at(12)))
	stmt.End(trace.WithTimestamp(at(13)))
	stmt.SetName("after End: ignored")
	stmt.End(trace.WithTimestamp(at(99))) // a second End: ignored

	links := []trace.Link{{SpanContext: server.SpanContext(), Attributes: []attribute.KeyValue{attribute.String("l", "1"), attribute.String("m", "2")}},
		{SpanContext: unsampled}, {SpanContext: trace.SpanContext{}}, {Attributes: []attribute.KeyValue{attribute.String("only", "attrs")}}}
	_, batch := tr.Start(context.Background(), "kavach.audit.batch", trace.WithNewRoot(), trace.WithLinks(links...), trace.WithTimestamp(at(14)))
	batch.AddLink(trace.Link{SpanContext: decision.SpanContext()})
	batch.End(trace.WithTimestamp(at(30)))

	// A span under an unsampled caller: not recorded, but its context
	// goes on, unsampled, with a span ID of its own.
	uctx := trace.ContextWithRemoteSpanContext(context.Background(), unsampled)
	_, dropped := tr.Start(uctx, "unsampled")
	if dropped.IsRecording() || dropped.SpanContext().IsSampled() || dropped.SpanContext().TraceID() != tid ||
		dropped.SpanContext().SpanID() == unsampled.SpanID() || !dropped.SpanContext().SpanID().IsValid() {
		t.Errorf("a span under an unsampled caller: recording %v, context %v", dropped.IsRecording(), dropped.SpanContext())
	}
	dropped.End()

	// A panic under way is recorded by a deferred End, and goes on.
	func() {
		defer func() {
			if r := recover(); r != "bad" {
				t.Errorf("recovered %v; want the panic to go on through End", r)
			}
		}()
		_, p := tr.Start(ctx, "panics", trace.WithTimestamp(at(40)))
		defer p.End(trace.WithTimestamp(at(41)))
		panic("bad")
	}()

	// Another scope, and a tracer with no name.
	_, other := tp.Tracer("other").Start(ctx, "other", trace.WithTimestamp(at(50)))
	other.End(trace.WithTimestamp(at(51)))
	_, unnamed := tp.Tracer("").Start(context.Background(), "unnamed", trace.WithTimestamp(at(52)))
	unnamed.End(trace.WithTimestamp(at(53)))

	decision.End(trace.WithTimestamp(at(25)))
	server.End(trace.WithTimestamp(at(60)))
	server.SetAttributes(attribute.String("after", "End")) // ignored
	if server.IsRecording() {
		t.Error("an ended span is recording")
	}
}

// receiver collects the OTLP requests posted to it.
type receiver struct {
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
}

func (r *receiver) ServeHTTP(_ http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var m coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &m); err == nil {
		r.mu.Lock()
		r.reqs = append(r.reqs, &m)
		r.mu.Unlock()
	}
}

// spans are the spans received, with their scope and resource, IDs
// renumbered, sorted by name.
func (r *receiver) spans(t *testing.T) []*tracepb.ResourceSpans {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.ResourceSpans
	ids := map[string][]byte{}
	renumber := func(id []byte) []byte {
		if len(id) == 0 || string(id) == string(tid[:]) || string(id) == string(sidB[:]) || string(id) == string(sidC[:]) {
			return id // empty, or the test's own
		}
		k := string(id)
		if _, ok := ids[k]; !ok {
			n := make([]byte, len(id))
			n[len(n)-1] = byte(len(ids) + 1)
			ids[k] = n
		}
		return ids[k]
	}
	var all []*tracepb.ResourceSpans
	for _, req := range r.reqs {
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					all = append(all, &tracepb.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl,
						ScopeSpans: []*tracepb.ScopeSpans{{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl, Spans: []*tracepb.Span{sp}}}})
				}
			}
		}
	}
	slices.SortFunc(all, func(a, b *tracepb.ResourceSpans) int {
		return strings.Compare(a.ScopeSpans[0].Spans[0].Name, b.ScopeSpans[0].Spans[0].Name)
	})
	for _, rs := range all {
		sp := rs.ScopeSpans[0].Spans[0]
		sp.TraceId, sp.SpanId, sp.ParentSpanId = renumber(sp.TraceId), renumber(sp.SpanId), renumber(sp.ParentSpanId)
		for _, l := range sp.Links {
			l.TraceId, l.SpanId = renumber(l.TraceId), renumber(l.SpanId)
		}
		for _, ev := range sp.Events {
			if ev.Name == "exception" && ev.TimeUnixNano != 0 && sp.Name == "panics" {
				ev.TimeUnixNano = 1 // stamped by End: set, when is not compared
			}
		}
		out = append(out, rs)
	}
	return out
}

func TestRecorderRecordsAsTheSDK(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		env  []string
		sdk  sdktrace.SpanLimits
	}{
		{"default limits", nil, sdktrace.NewSpanLimits()},
		{"tight limits", []string{"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "8", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "10",
			"OTEL_SPAN_EVENT_COUNT_LIMIT", "3", "OTEL_SPAN_LINK_COUNT_LIMIT", "2", "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "1",
			"OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "1"},
			sdktrace.SpanLimits{AttributeCountLimit: 8, AttributeValueLengthLimit: 10, EventCountLimit: 3, LinkCountLimit: 2,
				AttributePerEventCountLimit: 1, AttributePerLinkCountLimit: 1}},
		// (Not an event limit of 0: the SDK then loses the count of the
		// events it dropped, which the recorder reports.)
		{"no attributes", []string{"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "0", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "0"},
			sdktrace.SpanLimits{AttributeCountLimit: 0, AttributeValueLengthLimit: -1, EventCountLimit: 128, LinkCountLimit: 128,
				AttributePerEventCountLimit: 128, AttributePerLinkCountLimit: 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			res := resource.NewSchemaless(attribute.String("service.name", "kavach-test"))
			sampler, err := samplerOf(nil, env()) // the SDK's provider asks its sampler, ours its rule
			if err != nil || sampler.rule == nil {
				t.Fatalf("samplerOf = %+v, %v", sampler, err)
			}
			newExp := func(rec *receiver) *exporter {
				srv := httptest.NewServer(rec)
				t.Cleanup(srv.Close)
				exp, err := newExporter(ctx, otlptracehttp.WithEndpointURL(srv.URL+TracesPath))
				if err != nil {
					t.Fatal(err)
				}
				return exp
			}

			var fromSDK, fromOurs receiver
			sdk := sdktrace.NewTracerProvider(sdktrace.WithSyncer(sdkExporter{newExp(&fromSDK)}), sdktrace.WithResource(res),
				sdktrace.WithSampler(sampler), sdktrace.WithRawSpanLimits(tt.sdk))
			exercise(t, sdk)
			if err := sdk.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			ours := newProvider(sampler, res, newBatcher(newExp(&fromOurs), env()), limitsOf(env(tt.env...)))
			exercise(t, ours)
			if err := ours.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}

			want, got := fromSDK.spans(t), fromOurs.spans(t)
			if len(got) != len(want) || len(got) < 7 {
				t.Fatalf("recorded %d spans; the SDK %d (want 7 at least)", len(got), len(want))
			}
			for i := range want {
				if !proto.Equal(got[i], want[i]) {
					t.Errorf("span %d:\n%v\nwant (the SDK's)\n%v", i, got[i], want[i])
				}
			}
		})
	}
}

// sdkExporter hands the SDK's spans to our exporter (which encodes them
// as the SDK's own exporter does: TestExporterEncodesAsTheSDK).
type sdkExporter struct{ e *exporter }

func (x sdkExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	return x.e.ExportSpans(ctx, asSpanData(spans))
}

func (x sdkExporter) Shutdown(ctx context.Context) error { return x.e.Shutdown(ctx) }

// After Shutdown, tracers record nothing and spans ended late are dropped.
func TestRecorderAfterShutdown(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	tp := providerOn(newBatcher(rec, env()), sdktrace.AlwaysSample())
	_, late := tp.Tracer(Scope).Start(context.Background(), "started before")
	if err := tp.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	late.End()
	_, s := tp.Tracer(Scope).Start(context.Background(), "after")
	if s.IsRecording() {
		t.Error("a span started after Shutdown records")
	}
	s.End()
	if n, _ := rec.total(); n != 0 {
		t.Errorf("exported %d spans after Shutdown; want 0", n)
	}
}

// cut counts characters, not bytes, and drops invalid UTF-8 when it cuts.
func TestCut(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in    string
		limit int
		want  string
	}{
		{"abc", 3, "abc"}, {"abcd", 3, "abc"}, {"éé", 3, "éé"}, {"ééé", 2, "éé"}, {"a\xffb", 3, "a\xffb"},
		{"a\xffbcd", 3, "abc"}, {"\ufffdxyz", 2, "\ufffdx"}, {"", 0, ""}, {"a", 0, ""},
	} {
		if got := cut(tt.limit, tt.in); got != tt.want {
			t.Errorf("cut(%d, %q) = %q; want %q", tt.limit, tt.in, got, tt.want)
		}
	}
}

// Every sampler samplerOf builds decides by its rule as the SDK's sampler
// does, for roots, remote and local parents, sampled or not, with and
// without a tracestate, linked to sampled spans or not, over random
// trace IDs.
func TestRuleDecidesAsTheSDK(t *testing.T) {
	t.Parallel()
	ts, _ := trace.ParseTraceState("k=v")
	parent := func(remote, sampled bool) trace.SpanContext {
		c := trace.SpanContextConfig{TraceID: tid, SpanID: sidB, Remote: remote, TraceState: ts}
		if sampled {
			c.TraceFlags = trace.FlagsSampled
		}
		return trace.NewSpanContext(c)
	}
	parents := []trace.SpanContext{{}, parent(true, true), parent(true, false), parent(false, true), parent(false, false)}
	sampledLink := []trace.Link{{SpanContext: parent(false, true)}}
	unsampledLink := []trace.Link{{SpanContext: parent(false, false)}}
	quarter, zero, one := 0.25, 0.0, 1.0
	configs := []struct {
		ratio *float64
		env   []string
	}{
		{nil, nil}, {&quarter, nil}, {&zero, nil}, {&one, nil},
		{nil, []string{"OTEL_TRACES_SAMPLER", "always_on"}}, {nil, []string{"OTEL_TRACES_SAMPLER", "always_off"}},
		{nil, []string{"OTEL_TRACES_SAMPLER", "parentbased_always_off"}},
		{nil, []string{"OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "0.5"}},
		{nil, []string{"OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "0"}},
		{nil, []string{"OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG", "0.1"}},
		{nil, []string{"OTEL_TRACES_SAMPLER", "parentbased_traceidratio"}},
	}
	for _, cfg := range configs {
		s, err := samplerOf(cfg.ratio, env(cfg.env...))
		if err != nil || s.rule == nil {
			t.Fatalf("samplerOf(%v, %v) = %+v, %v", cfg.ratio, cfg.env, s, err)
		}
		sampled := 0
		for range 500 {
			id := newTraceID()
			for _, p := range parents {
				ctx := trace.ContextWithSpanContext(context.Background(), p)
				for _, links := range [][]trace.Link{nil, sampledLink, unsampledLink} {
					want := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: id, Name: "n", Links: links})
					got, state := s.rule.decide(p, id, links)
					if got != (want.Decision == sdktrace.RecordAndSample) || want.Decision == sdktrace.RecordOnly ||
						want.Tracestate.String() != state.String() {
						t.Fatalf("%s, parent %v, links %v, trace %v: rule %v; the SDK %v (tracestate %q)",
							s.Description(), p, links, id, got, want.Decision, want.Tracestate)
					}
					if got {
						sampled++
					}
				}
			}
		}
		t.Logf("%s: %d of %d sampled", s.Description(), sampled, 500*len(parents)*3)
	}
}

// The span limits are read from the environment as the SDK reads them.
func TestLimitsAsTheSDK(t *testing.T) {
	for _, kv := range [][]string{
		nil,
		{"OTEL_ATTRIBUTE_COUNT_LIMIT", "2"},
		{"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "abc", "OTEL_ATTRIBUTE_COUNT_LIMIT", "5"},
		{"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", " 7"},
		{"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "9", "OTEL_SPAN_EVENT_COUNT_LIMIT", "0", "OTEL_SPAN_LINK_COUNT_LIMIT", "-1"},
		{"OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "3", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "4", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "6"},
	} {
		t.Run(strings.Join(kv, "="), func(t *testing.T) {
			for _, k := range []string{"OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
				"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_EVENT_COUNT_LIMIT", "OTEL_SPAN_LINK_COUNT_LIMIT",
				"OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT"} {
				t.Setenv(k, "")
			}
			for i := 0; i+1 < len(kv); i += 2 {
				t.Setenv(kv[i], kv[i+1])
			}
			sdk := sdktrace.NewSpanLimits()
			want := limits{attrValueLen: sdk.AttributeValueLengthLimit, attrCount: sdk.AttributeCountLimit, eventCount: sdk.EventCountLimit,
				linkCount: sdk.LinkCountLimit, eventAttrs: sdk.AttributePerEventCountLimit, linkAttrs: sdk.AttributePerLinkCountLimit}
			if got := limitsOf(os.Getenv); got != want {
				t.Errorf("limitsOf = %+v; the SDK's %+v", got, want)
			}
		})
	}
}

// A nil context is taken as context.Background, as the SDK takes it.
func TestStartNilContext(t *testing.T) {
	t.Parallel()
	tp := providerOn(newBatcher(&recorder{}, env()), sdktrace.AlwaysSample())
	defer func() { _ = tp.Shutdown(context.Background()) }()
	for _, opts := range [][]trace.SpanStartOption{nil, {trace.WithNewRoot()}} {
		//nolint:staticcheck // SA1012: a nil context on purpose
		ctx, s := tp.Tracer(Scope).Start(nil, "n", opts...)
		if ctx == nil || !s.IsRecording() || trace.SpanFromContext(ctx) != s {
			t.Errorf("Start(nil, %v) = %v, recording %v", opts, ctx, s.IsRecording())
		}
		s.End()
	}
}

// readAll is an exporter that reads every getter of every span, as the
// encoder does, and counts the spans.
type readAll struct{ n atomic.Int64 }

func (r *readAll) ExportSpans(_ context.Context, spans []spanData) error {
	for _, s := range spans {
		_, _, _ = s.Name(), s.EndTime(), s.Status()
		for _, kv := range s.Attributes() {
			_ = kv.Value.String()
		}
		for _, e := range s.Events() {
			for _, kv := range e.Attributes {
				_ = kv.Value.String()
			}
		}
		for _, l := range s.Links() {
			_ = l.SpanContext.SpanID()
		}
		_ = s.DroppedAttributes() + s.DroppedEvents() + s.DroppedLinks()
		r.n.Add(1)
	}
	return nil
}

func (*readAll) Shutdown(context.Context) error { return nil }

// Goroutines write to one span (past every limit) and end it while the
// batcher exports ended spans: under -race, no write races a read, and
// every span is exported once.
func TestSpanConcurrentUse(t *testing.T) {
	t.Parallel()
	exp := &readAll{}
	b := newBatcher(exp, env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2", "OTEL_BSP_SCHEDULE_DELAY", "1"))
	tp := newProvider(sdktrace.AlwaysSample(), resource.Empty(), b, limitsOf(env("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "6",
		"OTEL_SPAN_EVENT_COUNT_LIMIT", "3", "OTEL_SPAN_LINK_COUNT_LIMIT", "2", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3")))
	tr := tp.Tracer(Scope)
	const spans = 50
	for range spans {
		_, s := tr.Start(context.Background(), "concurrent", trace.WithAttributes(attribute.String("a", "start")))
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 20 {
					s.SetAttributes(attribute.Int("k"+strconv.Itoa(i%9), g), attribute.String("a", "abcdef"))
					s.AddEvent("e", trace.WithAttributes(attribute.Int("g", g)))
					s.AddLink(trace.Link{SpanContext: s.SpanContext()})
					s.RecordError(errors.New("x"))
					s.SetStatus(codes.Error, "d")
					s.SetName("n" + strconv.Itoa(g))
					if i == 10 {
						s.End()
					}
				}
			})
		}
		wg.Wait()
	}
	if err := tp.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := exp.n.Load(); n != spans {
		t.Errorf("exported %d spans; want %d, each once", n, spans)
	}
}
