package telemetry

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
)

// batcher queues the recorder's ended spans and exports them in batches,
// as the SDK's batch span processor does and with its settings
// (OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_EXPORT_TIMEOUT, OTEL_BSP_MAX_QUEUE_SIZE,
// OTEL_BSP_MAX_EXPORT_BATCH_SIZE and their defaults), but queuing under a
// mutex instead of sending each span down a channel.
//
// Why: the SDK's processor hands every span to its goroutine over a
// channel, waking that goroutine (and, on a sidecar whose processors are
// idle between requests, an OS thread for it) for every span: two and more
// per decision, each a context switch. Here a span is appended to a slice,
// and the exporting goroutine is woken once a batch is full, or when the
// schedule delay has passed: once every few hundred spans.
type batcher struct {
	exp      spanExporter
	delay    time.Duration
	timeout  time.Duration
	maxQueue int
	maxBatch int

	mu     sync.Mutex
	queue  []spanData
	spare  []spanData // the exported queue, reused
	closed bool

	// kick wakes the exporter when a batch is full; flush asks it to
	// export everything queued and close the channel sent.
	kick    chan struct{}
	flush   chan chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	dropped atomic.Int64
}

// spanExporter sends ended spans (export.go), as the SDK's SpanExporter
// does the SDK's.
type spanExporter interface {
	ExportSpans(ctx context.Context, spans []spanData) error
	Shutdown(ctx context.Context) error
}

// The SDK's batch span processor's defaults.
const (
	defaultScheduleDelay = 5 * time.Second
	defaultExportTimeout = 30 * time.Second
	defaultMaxQueue      = 2048
	defaultMaxBatch      = 512
)

// newBatcher starts a batcher exporting to exp, with the OTEL_BSP_*
// settings getenv reads; an invalid one is ignored, as the SDK ignores it.
func newBatcher(exp spanExporter, getenv func(string) string) *batcher {
	ms := func(k string, def time.Duration) time.Duration {
		if n, ok := envInt(getenv, k); ok && n >= 0 {
			return time.Duration(n) * time.Millisecond
		}
		return def
	}
	count := func(k string, def int) int {
		if n, ok := envInt(getenv, k); ok && n > 0 {
			return n
		}
		return def
	}
	b := &batcher{exp: exp,
		delay:    ms("OTEL_BSP_SCHEDULE_DELAY", defaultScheduleDelay),
		timeout:  ms("OTEL_BSP_EXPORT_TIMEOUT", defaultExportTimeout),
		maxQueue: count("OTEL_BSP_MAX_QUEUE_SIZE", defaultMaxQueue),
		maxBatch: count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", defaultMaxBatch),
		kick:     make(chan struct{}, 1), flush: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	// As the SDK: a batch is never larger than the queue.
	b.maxBatch = min(b.maxBatch, b.maxQueue)
	go b.run()
	return b
}

func envInt(getenv func(string) string, k string) (int, bool) {
	v := strings.TrimSpace(getenv(k))
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

// add queues an ended, sampled span, or drops it when the queue is full
// (the exporter cannot keep up) or the batcher is shut down.
func (b *batcher) add(s spanData) {
	b.mu.Lock()
	if b.closed || len(b.queue) >= b.maxQueue {
		closed := b.closed
		b.mu.Unlock()
		if !closed {
			b.dropped.Add(1)
		}
		return
	}
	b.queue = append(b.queue, s)
	n := len(b.queue)
	b.mu.Unlock()
	if n >= b.maxBatch {
		select {
		case b.kick <- struct{}{}:
		default: // woken already
		}
	}
}

// run exports what is queued whenever a batch is full, the schedule delay
// has passed, or a flush asks, until stopped.
func (b *batcher) run() {
	defer close(b.done)
	t := time.NewTimer(b.delay)
	defer t.Stop()
	for {
		var flushed chan struct{}
		select {
		case <-b.stop:
			return
		case <-b.kick:
		case <-t.C:
		case flushed = <-b.flush:
		}
		b.export(context.Background())
		if flushed != nil {
			close(flushed)
		}
		t.Reset(b.delay)
	}
}

// export sends everything queued, a batch of at most maxBatch spans per
// request, each within the export timeout.
func (b *batcher) export(ctx context.Context) {
	b.mu.Lock()
	spans := b.queue
	b.queue, b.spare = b.spare[:0], nil
	b.mu.Unlock()
	for i := 0; i < len(spans); i += b.maxBatch {
		batch := spans[i:min(i+b.maxBatch, len(spans))]
		ectx, cancel := context.WithTimeout(ctx, b.timeout)
		if err := b.exp.ExportSpans(ectx, batch); err != nil {
			otel.Handle(err)
		}
		cancel()
	}
	clear(spans) // the spans are garbage once sent
	b.mu.Lock()
	if b.spare == nil && cap(spans) <= 4*b.maxQueue {
		b.spare = spans[:0]
	}
	b.mu.Unlock()
}

// ForceFlush exports every span queued so far.
func (b *batcher) ForceFlush(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case b.flush <- ch:
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops queuing, exports what is queued and shuts the exporter
// down; later calls do nothing.
func (b *batcher) Shutdown(ctx context.Context) error {
	var err error
	b.once.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.stop)
		select {
		case <-b.done:
		case <-ctx.Done():
			err = ctx.Err()
			return
		}
		b.export(ctx)
		if n := b.dropped.Load(); n > 0 {
			otel.Handle(fmt.Errorf("%d spans were dropped: the export queue (OTEL_BSP_MAX_QUEUE_SIZE %d) was full", n, b.maxQueue))
		}
		err = b.exp.Shutdown(ctx)
	})
	return err
}
