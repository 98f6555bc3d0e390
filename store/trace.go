package store

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kavach-dev/kavach/telemetry"
)

// Tracing of the store, at its two seams: every statement run through db
// and txn (dialect.go) is a client span named by its operation, every
// transaction (txOn) a span around them, and every group-commit batch a
// root span linked to the requests whose rows it commits. Spans are
// started only under a span that records (telemetry.Start): a store that
// nobody traces pays one context lookup per call.

// Span names (docs/telemetry.md).
const (
	spanTx         = "kavach.store.tx"
	spanAuditBatch = "kavach.audit.batch"
)

// startStatement starts the span of one statement: its operation (SELECT,
// INSERT, …) and its text, which holds placeholders, never values.
func startStatement(ctx context.Context, d dialect, query string) (context.Context, trace.Span) {
	if !telemetry.Recording(ctx) {
		return ctx, trace.SpanFromContext(ctx)
	}
	op := operation(query)
	return telemetry.Start(ctx, op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("db.system.name", dbSystem(d)),
		attribute.String("db.operation.name", op),
		attribute.String("db.query.text", query)))
}

// endStatement ends a statement's span, marked failed with err.
func endStatement(span trace.Span, err error) {
	if span.IsRecording() {
		fail(span, err)
		span.End()
	}
}

// startTx starts the span of one transaction.
func startTx(ctx context.Context, d dialect) (context.Context, trace.Span) {
	if !telemetry.Recording(ctx) {
		return ctx, trace.SpanFromContext(ctx)
	}
	return telemetry.Start(ctx, spanTx, trace.WithAttributes(attribute.String("db.system.name", dbSystem(d))))
}

// endTx ends a transaction's span.
func endTx(span trace.Span, err error) {
	if span.IsRecording() {
		fail(span, err)
		span.End()
	}
}

// fail marks span failed by err, naming whether the database was
// unavailable; the message (which may quote a value) is not recorded.
func fail(span trace.Span, err error) {
	if err == nil {
		return
	}
	reason := UnavailableReason(err)
	if reason == "" {
		reason = "error"
	}
	span.SetStatus(codes.Error, reason)
}

// operation is the statement's first word, upper-cased.
func operation(query string) string {
	q := strings.TrimSpace(query)
	if i := strings.IndexAny(q, " \t\n("); i > 0 {
		q = q[:i]
	}
	return strings.ToUpper(q)
}

// dbSystem is the semantic conventions' name of the engine.
func dbSystem(d dialect) string {
	if d.name() == "postgres" {
		return "postgresql"
	}
	return d.name()
}

// startBatch starts the span of a group-commit batch when a request it
// serves is traced: a root span linked to each request's span (a batch
// serves many requests, and belongs to none), whose context each request's
// span links back to (linkBatch). It returns nil otherwise.
func startBatch(batch []*auditReq) trace.Span {
	traced := false
	for _, r := range batch {
		if r.span != nil && r.span.IsRecording() {
			traced = true
			break
		}
	}
	if !traced {
		return nil
	}
	spans := make([]trace.Span, len(batch))
	for i, r := range batch {
		spans[i] = r.span
	}
	span := telemetry.StartLinked(spanAuditBatch, spans, trace.WithAttributes(attribute.Int("kavach.audit.batch.size", len(batch))))
	if span != nil {
		// One value for every row, read by each caller once its row is
		// written (or never, if it stopped waiting).
		sc := span.SpanContext()
		for _, r := range batch {
			r.batch.Store(&sc)
		}
	}
	return span
}

// batchContext is the context of a batch's transaction: under the batch's
// span, if it has one.
func batchContext(span trace.Span) context.Context {
	if span == nil {
		return context.Background()
	}
	return trace.ContextWithSpan(context.Background(), span)
}

// endBatch ends the span of the batch b has written, if any.
func endBatch(b *batcher) {
	if b.span != nil {
		b.span.End()
		b.span = nil
	}
}

// within is ctx under the transaction's span, so that its statements nest
// in it; ctx itself when the transaction is not traced.
func (t *txn) within(ctx context.Context) context.Context {
	if t.span == nil || !t.span.IsRecording() {
		return ctx
	}
	return trace.ContextWithSpan(ctx, t.span)
}

// linkBatch links the span of the request that asked for r (its
// decision's) to the batch that wrote the row, if traced.
func linkBatch(r *auditReq) {
	if !r.span.IsRecording() {
		return
	}
	if sc := r.batch.Load(); sc != nil {
		r.span.AddLink(trace.Link{SpanContext: *sc})
	}
}
