package tests

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/kavach-dev/kavach/api"
)

// OpenTelemetry traces against the real binary: a test server is the OTLP/HTTP
// receiver, decoding what the sidecar exports with the OTLP protobufs.

// receiver is an OTLP/HTTP trace receiver: it keeps every span it is sent,
// with its resource, and the headers of the requests.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	spans   []receivedSpan
	headers []http.Header
}

type receivedSpan struct {
	resource []*commonpb.KeyValue
	span     *tracepb.Span
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			t.Errorf("receiver: %s %s; want POST /v1/traces", r.Method, r.URL.Path)
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Errorf("receiver: gzip: %v", err)
				http.Error(w, "bad gzip", http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Errorf("receiver: decode ExportTraceServiceRequest: %v", err)
			http.Error(w, "bad protobuf", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.headers = append(rc.headers, r.Header.Clone())
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					rc.spans = append(rc.spans, receivedSpan{resource: rs.GetResource().GetAttributes(), span: sp})
				}
			}
		}
		rc.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) received() ([]receivedSpan, []http.Header) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedSpan(nil), rc.spans...), append([]http.Header(nil), rc.headers...)
}

// attrs flattens OTLP attributes to strings.
func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.GetKey()] = anyString(kv.GetValue())
	}
	return m
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.GetValues() {
			parts = append(parts, anyString(e))
		}
		return strings.Join(parts, ",")
	case *commonpb.AnyValue_KvlistValue:
		var parts []string
		for k, e := range attrs(x.KvlistValue.GetValues()) {
			parts = append(parts, k+"="+e)
		}
		return strings.Join(parts, ",")
	case *commonpb.AnyValue_BytesValue:
		return string(x.BytesValue)
	}
	return ""
}

// everyValue is every string a span exports: its name, status and the
// values of its attributes, events' and links', and its resource's.
func everyValue(s receivedSpan) []string {
	out := []string{s.span.GetName(), s.span.GetStatus().GetMessage(), s.span.GetTraceState()}
	lists := [][]*commonpb.KeyValue{s.resource, s.span.GetAttributes()}
	for _, e := range s.span.GetEvents() {
		out = append(out, e.GetName())
		lists = append(lists, e.GetAttributes())
	}
	for _, l := range s.span.GetLinks() {
		out = append(out, l.GetTraceState())
		lists = append(lists, l.GetAttributes())
	}
	for _, l := range lists {
		for k, v := range attrs(l) {
			out = append(out, k, v)
		}
	}
	return out
}

// The caller's trace ID and span ID, sent in traceparent.
const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// tracedAuthorize sends POST /v1/authorize with the caller's traceparent,
// the decider's key, and either agentId or the agent's token forwarded.
func tracedAuthorize(t *testing.T, s *sidecar, key string, body api.AuthorizeRequest, agentToken string) api.AuthorizeResponse {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/v1/authorize", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	req.Header.Set("tracestate", "app=1")
	if agentToken != "" {
		req.Header.Set(api.AgentTokenHeader, agentToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res api.AuthorizeResponse
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/authorize = %d, %v", resp.StatusCode, err)
	}
	return res
}

func TestTelemetryTraces(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	cfg := filepath.Join(t.TempDir(), "kavach.yaml")
	writeFile(t, cfg, fmt.Sprintf("telemetry:\n  otlpEndpoint: %s\n  serviceName: kavach-e2e\n  sampleRatio: 1\n", rc.URL))
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"), "--config", cfg, "--log-level", "debug")
	admin := s.adminClient()
	agent := mustCreate(t, admin, perm("mcp:github:repos", "read"))
	key := s.mintKey(t, "app", "decider").Key

	allowed := tracedAuthorize(t, s, key, api.AuthorizeRequest{AgentID: agent.ID, Action: "read", Resource: "mcp:github:repos",
		Arguments: json.RawMessage(`{"repo":"kavach"}`)}, "")
	denied := tracedAuthorize(t, s, key, api.AuthorizeRequest{Action: "write", Resource: "mcp:github:repos"}, agent.Token)
	if !allowed.Allowed || denied.Allowed {
		t.Fatalf("decisions = %+v, %+v; want an allow, then a denial", allowed, denied)
	}
	// A graceful stop exports what is still queued.
	s.stop(t)
	spans, _ := rc.received()

	var servers, decisions []receivedSpan
	byID := map[string]receivedSpan{}
	for _, sp := range spans {
		byID[hex.EncodeToString(sp.span.GetSpanId())] = sp
		if hex.EncodeToString(sp.span.GetTraceId()) != callerTrace {
			continue
		}
		switch sp.span.GetName() {
		case "POST /v1/authorize":
			servers = append(servers, sp)
		case "kavach.decision":
			decisions = append(decisions, sp)
		}
	}
	if len(servers) != 2 || len(decisions) != 2 {
		t.Fatalf("got %d server and %d decision spans in the caller's trace; want 2 and 2; spans: %v", len(servers), len(decisions), names(spans))
	}
	for _, sp := range servers {
		if got := hex.EncodeToString(sp.span.GetParentSpanId()); got != callerSpan {
			t.Errorf("server span's parent = %s; want the caller's span %s", got, callerSpan)
		}
		if sp.span.GetKind() != tracepb.Span_SPAN_KIND_SERVER || sp.span.GetTraceState() != "app=1" {
			t.Errorf("server span kind %v, tracestate %q; want SERVER and the caller's app=1", sp.span.GetKind(), sp.span.GetTraceState())
		}
		a := attrs(sp.span.GetAttributes())
		if a["http.route"] != "/v1/authorize" || a["http.request.method"] != "POST" || a["http.response.status_code"] != "200" || a["kavach.route"] != "authorize" {
			t.Errorf("server span attributes = %v", a)
		}
		if got := attrs(sp.resource)["service.name"]; got != "kavach-e2e" {
			t.Errorf("resource service.name = %q; want kavach-e2e", got)
		}
	}
	want := map[string]api.AuthorizeResponse{"allowed": allowed, "denied": denied}
	for _, sp := range decisions {
		a := attrs(sp.span.GetAttributes())
		parent, ok := byID[hex.EncodeToString(sp.span.GetParentSpanId())]
		if !ok || parent.span.GetName() != "POST /v1/authorize" {
			t.Errorf("decision span's parent is not a server span")
		}
		res := want[a["kavach.decision.result"]]
		if a["kavach.agent.id"] != agent.ID || a["kavach.resource"] != "mcp:github:repos" || a["kavach.decision.code"] != res.Code ||
			a["kavach.audit.id"] != res.AuditID || res.AuditID == "" {
			t.Errorf("decision span attributes = %v; want agent %s, resource mcp:github:repos, code and audit ID of %+v", a, agent.ID, res)
		}
		if action := map[bool]string{true: "read", false: "write"}[res.Allowed]; a["kavach.action"] != action {
			t.Errorf("decision span kavach.action = %q; want %q", a["kavach.action"], action)
		}
		if _, ok := a["kavach.arguments"]; ok {
			t.Errorf("decision span has kavach.arguments without telemetry.includeArguments")
		}
		// A new agent's trust: the initial score's level.
		if a["kavach.trust.level"] != "limited" {
			t.Errorf("decision span kavach.trust.level = %q; want limited (a new agent)", a["kavach.trust.level"])
		}
	}
	// The batch that committed each row is a trace of its own, linked to
	// the decision, which links back to it.
	batches := map[string]bool{}
	linked := 0
	for _, sp := range spans {
		if sp.span.GetName() != "kavach.audit.batch" {
			continue
		}
		batches[hex.EncodeToString(sp.span.GetSpanId())] = true
		for _, l := range sp.span.GetLinks() {
			if d, ok := byID[hex.EncodeToString(l.GetSpanId())]; ok && d.span.GetName() == "kavach.decision" {
				linked++
			}
		}
	}
	back := 0
	for _, sp := range decisions {
		for _, l := range sp.span.GetLinks() {
			if batches[hex.EncodeToString(l.GetSpanId())] {
				back++
			}
		}
	}
	if linked != 2 || back != 2 {
		t.Errorf("%d decisions linked from batches, %d linking back; want 2 and 2; spans: %v", linked, back, names(spans))
	}
	// Database calls: the admin's writes (agent, key) are traced only when
	// the caller traces them; the batch's transaction always is.
	if count(spans, "kavach.store.tx", "") == 0 {
		t.Errorf("no kavach.store.tx span; spans: %v", names(spans))
	}

	// No credential in any exported value.
	for _, sp := range spans {
		for _, v := range everyValue(sp) {
			for name, secret := range map[string]string{"API key": key, "agent token": agent.Token, "admin key": adminKey} {
				if strings.Contains(v, secret) {
					t.Errorf("span %s exports the %s in %q", sp.span.GetName(), name, v)
				}
			}
		}
	}

	// The request's log line names its trace and span.
	found := false
	for _, line := range strings.Split(s.log(), "\n") {
		var rec struct{ Msg, Route, TraceID, SpanID string }
		var raw map[string]any
		if json.Unmarshal([]byte(line), &raw) != nil || raw["msg"] != "request" || raw["route"] != "authorize" {
			continue
		}
		_ = json.Unmarshal([]byte(line), &rec)
		rec.TraceID, _ = raw["trace_id"].(string)
		rec.SpanID, _ = raw["span_id"].(string)
		if rec.TraceID != callerTrace {
			t.Errorf("log line %s: trace_id %q; want %s", line, rec.TraceID, callerTrace)
			continue
		}
		sp, ok := byID[rec.SpanID]
		if !ok || sp.span.GetName() != "POST /v1/authorize" {
			t.Errorf("log line %s: span_id %q is not a server span exported", line, rec.SpanID)
		}
		found = true
	}
	if !found {
		t.Errorf("no request log line for authorize:\n%s", s.log())
	}
}

// The OTEL_* environment alone turns tracing on: the endpoint (a base URL,
// to which /v1/traces is appended), the headers, the service name.
func TestTelemetryFromEnvironment(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	s, err := startEnv(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rc.URL, "OTEL_SERVICE_NAME=kavach-env",
		"OTEL_EXPORTER_OTLP_HEADERS=x-collector-tenant=kavach-tests", "OTEL_EXPORTER_OTLP_COMPRESSION=gzip"},
		"--database", filepath.Join(t.TempDir(), "kavach.db"))
	if err != nil {
		t.Fatal(err)
	}
	agent := mustCreate(t, s.adminClient(), perm("mcp:github:repos", "read"))
	key := s.mintKey(t, "app", "decider").Key
	tracedAuthorize(t, s, key, api.AuthorizeRequest{AgentID: agent.ID, Action: "read", Resource: "mcp:github:repos"}, "")
	s.stop(t)
	spans, headers := rc.received()
	if count(spans, "kavach.decision", callerTrace) != 1 {
		t.Fatalf("spans %v; want a kavach.decision span in the caller's trace", names(spans))
	}
	for _, sp := range spans {
		if got := attrs(sp.resource)["service.name"]; got != "kavach-env" {
			t.Errorf("resource service.name = %q; want OTEL_SERVICE_NAME's kavach-env", got)
		}
	}
	for _, h := range headers {
		if h.Get("X-Collector-Tenant") != "kavach-tests" || h.Get("Content-Encoding") != "gzip" {
			t.Errorf("export headers %v; want OTEL_EXPORTER_OTLP_HEADERS' x-collector-tenant and gzip", h)
		}
	}
}

// OTEL_SDK_DISABLED turns tracing off whatever else is set; and a bad
// setting stops the sidecar at start, naming it.
func TestTelemetryDisabledAndRefused(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	s, err := startEnv(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rc.URL, "OTEL_SDK_DISABLED=true"}, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	if err != nil {
		t.Fatal(err)
	}
	agent := mustCreate(t, s.adminClient(), perm("mcp:github:repos", "read"))
	tracedAuthorize(t, s, s.mintKey(t, "app", "decider").Key, api.AuthorizeRequest{AgentID: agent.ID, Action: "read", Resource: "mcp:github:repos"}, "")
	s.stop(t)
	if spans, headers := rc.received(); len(headers) != 0 {
		t.Errorf("OTEL_SDK_DISABLED=true: %d exports (%v); want none", len(headers), names(spans))
	}
	traces := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + rc.URL + "/v1/traces"
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=ftp://collector"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://user:pw@collector:4318"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{[]string{traces, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{[]string{traces, "OTEL_TRACES_SAMPLER=sometimes"}, "OTEL_TRACES_SAMPLER"},
		{[]string{traces, "OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=2"}, "OTEL_TRACES_SAMPLER_ARG"},
		{[]string{traces, "OTEL_TRACES_EXPORTER=zipkin"}, "OTEL_TRACES_EXPORTER"},
	} {
		_, errOut, code := cli(t, tc.env, "serve", "--addr", "127.0.0.1:0", "--database", ":memory:")
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("serve with %s: exit %d, stderr %q; want exit 2 naming %s", tc.env, code, errOut, tc.want)
		}
	}
}

func count(spans []receivedSpan, name, traceID string) int {
	n := 0
	for _, sp := range spans {
		if sp.span.GetName() == name && (traceID == "" || hex.EncodeToString(sp.span.GetTraceId()) == traceID) {
			n++
		}
	}
	return n
}

func names(spans []receivedSpan) []string {
	var out []string
	for _, sp := range spans {
		out = append(out, sp.span.GetName())
	}
	return out
}
