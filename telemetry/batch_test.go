package telemetry

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// recorder is an exporter that keeps the size of each batch it is given.
type recorder struct {
	mu      sync.Mutex
	batches []int
	stopped bool
}

func (r *recorder) ExportSpans(_ context.Context, spans []spanData) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, len(spans))
	return nil
}

func (r *recorder) Shutdown(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	return nil
}

func (r *recorder) total() (n int, batches []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.batches {
		n += b
	}
	return n, append([]int(nil), r.batches...)
}

// providerOn is a provider sampling with sampler, queuing on b.
func providerOn(b *batcher, sampler sdktrace.Sampler) *provider {
	return newProvider(sampler, resource.Empty(), b, limitsOf(env()))
}

func startSpans(tp *provider, n int) {
	tr := tp.Tracer(Scope)
	for range n {
		_, s := tr.Start(context.Background(), "s")
		s.End()
	}
}

// The batcher exports once a batch of OTEL_BSP_MAX_EXPORT_BATCH_SIZE is
// queued (what is queued by then, in batches of at most that), the rest on
// ForceFlush (or after OTEL_BSP_SCHEDULE_DELAY),
// nothing unsampled, and everything left at Shutdown, which shuts the
// exporter down.
func TestBatcher(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := newBatcher(rec, env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10", "OTEL_BSP_SCHEDULE_DELAY", "3600000"))
	tp := providerOn(b, sdktrace.AlwaysSample())
	startSpans(tp, 25)
	unsampled := providerOn(b, sdktrace.NeverSample())
	startSpans(unsampled, 5)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if n, _ := rec.total(); n >= 10 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if n, batches := rec.total(); n < 10 {
		t.Fatalf("exported %d spans in %v before a flush; want a full batch of 10 at least", n, batches)
	}
	if err := tp.ForceFlush(t.Context()); err != nil {
		t.Fatal(err)
	}
	n, batches := rec.total()
	if n != 25 || batches[0] != 10 {
		t.Fatalf("exported %d spans in %v after a flush; want 25, the first batch full", n, batches)
	}
	for _, b := range batches {
		if b > 10 {
			t.Fatalf("exported batches %v; want none over 10", batches)
		}
	}
	startSpans(tp, 3)
	if err := tp.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	startSpans(tp, 3) // after Shutdown: dropped
	if n, _ := rec.total(); n != 28 || !rec.stopped {
		t.Fatalf("exported %d spans, exporter stopped %v, after Shutdown; want 28, true", n, rec.stopped)
	}
}

// The schedule delay exports what is queued without a full batch, and a
// full queue (OTEL_BSP_MAX_QUEUE_SIZE) drops spans rather than block.
func TestBatcherDelayAndQueueLimit(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := newBatcher(rec, env("OTEL_BSP_SCHEDULE_DELAY", "1", "OTEL_BSP_MAX_QUEUE_SIZE", "4", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "bad"))
	if b.maxBatch != 4 || b.maxQueue != 4 || b.timeout != defaultExportTimeout {
		t.Errorf("settings: batch %d, queue %d, timeout %v; want 4 (the queue), 4, the default", b.maxBatch, b.maxQueue, b.timeout)
	}
	tp := providerOn(b, sdktrace.AlwaysSample())
	defer func() { _ = tp.Shutdown(context.Background()) }()
	startSpans(tp, 2)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if n, _ := rec.total(); n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the schedule delay exported nothing")
		}
		time.Sleep(time.Millisecond)
	}
	b.mu.Lock()
	b.queue = append(b.queue, make([]spanData, 4)...) // full
	b.mu.Unlock()
	startSpans(tp, 1)
	if b.dropped.Load() != 1 {
		t.Errorf("dropped %d spans with the queue full; want 1", b.dropped.Load())
	}
	b.mu.Lock()
	b.queue = b.queue[:0]
	b.mu.Unlock()
}
