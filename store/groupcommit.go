package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kavach-dev/kavach/domain"
)

// Group commit: concurrent decisions' audit rows share one transaction and
// one fsync. A caller waits until the batch holding its row has committed,
// so a decision is still answered only after its row is durable; the
// writer just does one commit for many callers. The queue is bounded: when
// the database is slow, callers wait for room (back-pressure), and nothing
// is ever dropped.

const (
	maxBatch   = 512
	queueDepth = 4096
)

// batchBounds are the upper bounds of the batch-size histogram.
func batchBounds() [10]uint64 { return [10]uint64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512} }

// AuditStats are the group-commit counters, for /metrics.
type AuditStats struct {
	Rows, Batches, Failures uint64
	// SizeBuckets[i] counts batches of at most BucketBounds[i] rows.
	BucketBounds []uint64
	SizeBuckets  []uint64
	SizeSum      uint64
	Queued       int
	Async        bool
}

type auditReq struct {
	e   domain.AuditEntry
	err chan error
	// gone is closed when the caller stops waiting, at the latest at
	// until (sync mode; nil and zero in async mode, where nobody waits).
	gone  <-chan struct{}
	until time.Time
	// span is the caller's (its decision's), batch the span context of
	// the batch that wrote the row (trace.go).
	span  trace.Span
	batch atomic.Pointer[trace.SpanContext]
}

type batcher struct {
	s     *Store
	queue chan *auditReq
	async bool
	// onAsyncError hears failures nobody waits for (async mode).
	onAsyncError func(error)
	// mu orders enqueue against close: once closed is set, no row is
	// accepted, so every accepted row is drained.
	mu         sync.RWMutex
	closed     bool
	stop, done chan struct{}

	// insert and chain are used only by run's goroutine: the prepared
	// insert, and the audit chain this writer appends to (its own, so
	// appending takes no lock).
	insert *sql.Stmt
	// revokedOne is the prepared check of one API key (a batch's rows are
	// nearly always asked with one key): a query of a new text is parsed
	// and planned anew each time, which cost more than the check itself.
	revokedOne *sql.Stmt
	// insertEvent is the prepared INSERT of one event, where the dialect
	// is in process and decision events are recorded (nil otherwise).
	insertEvent *sql.Stmt
	chain       *chain
	// span is the batch being written's, when traced (trace.go).
	span trace.Span

	rows, batches, failures, sizeSum atomic.Uint64
	sizes                            [10]atomic.Uint64
}

func newBatcher(s *Store, async bool, onAsyncError func(error)) *batcher {
	b := &batcher{s: s, queue: make(chan *auditReq, queueDepth), async: async, onAsyncError: onAsyncError,
		stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

// enqueue hands a row to the writer and, unless async, waits for its commit.
func (b *batcher) enqueue(ctx context.Context, r *auditReq) error {
	if err := b.s.Writable(); err != nil && b.async {
		// Nobody would wait for the row to fail: refuse it while writes do.
		return err
	}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return fmt.Errorf("audit writer stopped")
	}
	select {
	case b.queue <- r:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		return fmt.Errorf("audit queue full: %w", ctx.Err())
	}
	if b.async {
		return nil
	}
	select {
	case err := <-r.err:
		return err
	case <-ctx.Done():
		// The row may still commit; the caller has gone and gets no answer.
		return ctx.Err()
	}
}

func (b *batcher) run() {
	defer close(b.done)
	batch := make([]*auditReq, 0, maxBatch)
	prev := 0
	for {
		var first *auditReq
		select {
		case first = <-b.queue:
		case <-b.stop:
			// No row is accepted any more; drain what was, in full batches.
			for len(b.queue) > 0 {
				batch = batch[:0]
				for len(batch) < maxBatch && len(b.queue) > 0 {
					batch = append(batch, <-b.queue)
				}
				b.flush(batch)
			}
			return
		}
		batch = append(batch[:0], first)
		batch = b.gather(batch, prev)
		prev = len(batch)
		b.flush(batch)
	}
}

// gatherWait is how long a batch may wait for rows still on their way,
// as PostgreSQL's commit_delay does: when the previous batch was large,
// the callers it released are about to send their next rows, and
// committing without them would make them wait a whole commit more.
const gatherWait = 250 * time.Microsecond

// gather adds queued rows to batch, waiting up to gatherWait while it is
// smaller than the previous batch. Under light load (batches of one) it
// never waits.
func (b *batcher) gather(batch []*auditReq, prev int) []*auditReq {
	var timeout <-chan time.Time
	for len(batch) < maxBatch {
		select {
		case r := <-b.queue:
			batch = append(batch, r)
			continue
		default:
		}
		if len(batch) >= prev {
			return batch
		}
		if timeout == nil {
			t := time.NewTimer(gatherWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case r := <-b.queue:
			batch = append(batch, r)
		case <-timeout:
			return batch
		case <-b.stop:
			return batch
		}
	}
	return batch
}

func (b *batcher) flush(batch []*auditReq) {
	batch = b.waited(batch)
	if len(batch) == 0 {
		return
	}
	b.span = startBatch(batch)
	defer endBatch(b)
	refused, err := b.write(batch)
	if err == nil {
		b.s.writes.succeeded()
	}
	if err != nil && len(batch) > 1 && !IsUnavailable(err) {
		// Isolate the row at fault: the others must not fail with it. (Not
		// when the database is at fault: each row would wait as long again.)
		for _, r := range batch {
			refused, err := b.write([]*auditReq{r})
			if err == nil && refused[r] == nil {
				b.count(1)
				b.s.tap.add(r.e)
			}
			b.finish(r, errors.Join(err, refused[r]))
		}
		return
	}
	if err == nil {
		b.s.tap.addBatch(batch, refused)
	}
	n := 0
	for _, r := range batch {
		if err == nil && refused[r] != nil {
			b.finish(r, refused[r])
			continue
		}
		n++
		b.finish(r, err)
	}
	if err == nil && n > 0 {
		b.count(n)
	}
}

// waited finishes, unwritten, the rows whose callers stopped waiting (their
// deadline passed while the database was slow): they were answered with an
// error, so no row may say they were decided. It returns the others.
func (b *batcher) waited(batch []*auditReq) []*auditReq {
	live := batch[:0]
	for _, r := range batch {
		select {
		case <-r.gone:
			b.finish(r, errors.New("the caller stopped waiting before the row was written"))
		default:
			live = append(live, r)
		}
	}
	return live
}

// deadline is when writing batch must end: the store's timeout from now,
// or sooner when every caller stops waiting sooner, so that a batch held
// up by a locked database does not commit after its callers were told
// the decision failed.
func (b *batcher) deadline(batch []*auditReq) time.Time {
	d := time.Now().Add(b.s.timeout)
	var last time.Time
	for _, r := range batch {
		if r.until.IsZero() {
			return d // someone without a deadline (async mode)
		}
		if r.until.After(last) {
			last = r.until
		}
	}
	if last.Before(d) {
		return last
	}
	return d
}

// count records one committed transaction of n rows.
func (b *batcher) count(n int) {
	rows := uint64(n) //nolint:gosec // G115: n > 0, a batch's row count (see write)
	b.rows.Add(rows)
	b.batches.Add(1)
	b.sizeSum.Add(rows)
	for i, bound := range batchBounds() {
		if rows <= bound {
			b.sizes[i].Add(1)
			break
		}
	}
}

func (b *batcher) finish(r *auditReq, err error) {
	if err != nil {
		b.failures.Add(1)
		if b.async && b.onAsyncError != nil {
			b.onAsyncError(fmt.Errorf("audit row %s lost: %w", r.e.ID, err))
		}
	}
	r.err <- err
}

// write commits the batch's rows in one transaction, except those asked
// with an API key revoked by then (on any replica): those are refused with
// ErrKeyRevoked and not written.
func (b *batcher) write(batch []*auditReq) (map[*auditReq]error, error) {
	ctx, cancel := context.WithDeadline(batchContext(b.span), b.deadline(batch))
	defer cancel()
	if b.insert == nil {
		// Prepared once on the writer (outside a transaction, which would
		// hold its only connection) and reused by every batch: preparing
		// costs about as much as inserting several rows.
		q := auditInsert
		if b.s.deferredAuditIndexes() {
			q = auditInsertPending // indexed by agent and owner later (auditindex.go)
		}
		st, err := b.s.w.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("prepare audit insert: %w", err)
		}
		b.insert = st
	}
	if b.revokedOne == nil {
		st, err := b.s.w.PrepareContext(ctx, revokedKeysQuery(1))
		if err != nil {
			return nil, fmt.Errorf("prepare API key check: %w", err)
		}
		b.revokedOne = st
	}
	if b.insertEvent == nil && len(b.s.sinks.decisions) > 0 && b.s.dialect.inProcess() {
		st, err := b.s.w.PrepareContext(ctx, eventInsert)
		if err != nil {
			return nil, fmt.Errorf("prepare event insert: %w", err)
		}
		b.insertEvent = st
	}
	if b.chain == nil || b.chain.retired.Load() {
		b.chain = b.s.chains.open()
	}
	var refused map[*auditReq]error
	err := b.s.withTx(ctx, func(tx *txn) error {
		tx.chain = b.chain
		keys := make([]string, 0, 2)
		for _, r := range batch {
			if r.e.Actor.Type == domain.ActorKey && !slices.Contains(keys, r.e.Actor.ID) {
				keys = append(keys, r.e.Actor.ID)
			}
		}
		var revoked map[string]bool
		var err error
		if len(keys) == 1 {
			one := tx.StmtContext(ctx, b.revokedOne)
			defer one.Close()
			revoked, err = scanRevoked(one.QueryContext(ctx, keys[0]))
		} else {
			revoked, err = revokedKeys(ctx, tx, keys)
		}
		if err != nil {
			return err
		}
		refused = nil
		var evs []pendingEvent
		stmt := tx.StmtContext(ctx, b.insert)
		defer stmt.Close()
		// The inserts run under the write lock BEGIN took, so they wait for
		// no lock: without a context that can end, the driver does not
		// start a goroutine per statement to interrupt it. The commit
		// still ends with ctx (and then nothing is written).
		insertCtx := context.WithoutCancel(ctx)
		if b.insertEvent != nil {
			tx.insertEvent = tx.StmtContext(ctx, b.insertEvent)
			defer tx.insertEvent.Close()
		}
		for _, r := range batch {
			if r.e.Actor.Type == domain.ActorKey && revoked[r.e.Actor.ID] {
				if refused == nil {
					refused = map[*auditReq]error{}
				}
				refused[r] = fmt.Errorf("API key %s: %w", r.e.Actor.ID, ErrKeyRevoked)
				continue
			}
			b.chain.link(&r.e)
			if _, err := stmt.ExecContext(insertCtx, auditArgs(r.e)...); err != nil {
				return fmt.Errorf("insert audit row: %w", err)
			}
			if ev, ok := b.s.decisionEvent(r.e); ok {
				evs = append(evs, ev)
			}
		}
		return b.s.emitAll(ctx, tx, evs)
	})
	return refused, err
}

// revokedKeys returns which of ids are revoked keys, read in tx: a
// revocation committed on any replica before this transaction began is
// seen.
func revokedKeys(ctx context.Context, tx *txn, ids []string) (map[string]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return scanRevoked(tx.QueryContext(ctx, revokedKeysQuery(len(ids)), args...))
}

// revokedKeysQuery selects which of n API key IDs are revoked keys.
func revokedKeysQuery(n int) string {
	return `SELECT id FROM api_keys WHERE revoked_at IS NOT NULL AND id IN (?` + strings.Repeat(", ?", n-1) + `)`
}

// scanRevoked reads the IDs revokedKeysQuery selected.
func scanRevoked(rows *sql.Rows, err error) (map[string]bool, error) {
	if err != nil {
		return nil, fmt.Errorf("check API keys: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("check API keys: %w", err)
		}
		out[id] = true
	}
	return out, rows.Err()
}

// close stops accepting rows and waits until every accepted row is written.
func (b *batcher) close() {
	b.mu.Lock()
	already := b.closed
	b.closed = true
	b.mu.Unlock()
	if !already {
		close(b.stop)
	}
	<-b.done
	if b.insert != nil {
		_ = b.insert.Close()
	}
	if b.revokedOne != nil {
		_ = b.revokedOne.Close()
	}
	if b.insertEvent != nil {
		_ = b.insertEvent.Close()
	}
}

// AuditStats reports the group-commit counters.
func (s *Store) AuditStats() AuditStats {
	b := s.audit
	bounds := batchBounds()
	st := AuditStats{Rows: b.rows.Load(), Batches: b.batches.Load(), Failures: b.failures.Load(),
		SizeSum: b.sizeSum.Load(), Queued: len(b.queue), Async: b.async, BucketBounds: bounds[:]}
	for i := range b.sizes {
		st.SizeBuckets = append(st.SizeBuckets, b.sizes[i].Load())
	}
	return st
}
