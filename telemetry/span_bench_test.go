package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

// What tracing weighs when it is off, on every call that would start a
// span: one context lookup, no allocation.
//
//	go test ./telemetry -run X -bench StartOff -benchmem
func BenchmarkStartOff(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, span := Start(ctx, "kavach.decision")
		if span.IsRecording() {
			span.SetAttributes(attribute.String("kavach.agent.id", "agt_x"))
		}
		span.End()
		_ = c
	}
}
