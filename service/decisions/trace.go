package decisions

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/domain"
)

// spanDecision is the name of a decision's span (docs/telemetry.md). Its
// children are the database calls the decision makes; the policy's
// evaluation, in memory, is not a span of its own: at a few microseconds,
// a span would weigh as much as what it measures.
const spanDecision = "kavach.decision"

// TraceArguments records each decision's arguments on its span; off by
// default, since arguments may hold what the app would not export. Call
// before serving.
func (s *Decisions) TraceArguments(on bool) { s.traceArguments = on }

// traceDecision describes the decision on the span ctx carries: who, what,
// and what was answered. Never the token, nor the caller's key.
func (s *Decisions) traceDecision(ctx context.Context, e domain.AuditEntry) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	// One call with every attribute: each SetAttributes grows the span's
	// attribute slice anew. The SDK copies them, so the slice is reused.
	buf, _ := s.spanAttrs.Get().(*[]attribute.KeyValue)
	if buf == nil {
		buf = new([]attribute.KeyValue)
	}
	attrs := append((*buf)[:0],
		attribute.String("kavach.agent.id", e.AgentID),
		attribute.String("kavach.action", e.Action),
		attribute.String("kavach.resource", e.Resource),
		attribute.String("kavach.decision.result", e.Result),
		attribute.String("kavach.decision.code", e.Code),
		attribute.String("kavach.audit.id", e.ID),
	)
	if level := s.engine.TrustLevel(ctx, e.AgentID); level != "" {
		attrs = append(attrs, attribute.String("kavach.trust.level", level))
	}
	if e.ApprovalID != "" {
		attrs = append(attrs, attribute.String("kavach.approval.id", e.ApprovalID))
	}
	if s.traceArguments && len(e.Arguments) > 0 {
		attrs = append(attrs, attribute.String("kavach.arguments", string(e.Arguments)))
	}
	span.SetAttributes(attrs...)
	clear(attrs) // no strings kept alive from the pool
	*buf = attrs[:0]
	s.spanAttrs.Put(buf)
}

// traceFailure marks the span of a request that got no decision with the
// error's stable code, never its message.
func traceFailure(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	code := "internal"
	if e, ok := apperr.As(err); ok {
		code = e.Code
	}
	span.SetAttributes(attribute.String("kavach.error.code", code))
	span.SetStatus(codes.Error, code)
}
