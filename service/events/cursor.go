package events

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/store"
)

// Cursor bounds.
const (
	// cursorBatch is the most events one pass over a cursor reads.
	cursorBatch = 256
	// cursorLease is how long a holder's lease on a cursor lasts from its
	// last write. A pass starts attempts for launchFor at most, each cut at
	// attemptTimeout, so the lease is written again (renewed) before a
	// pass whenever less than leaseMargin of it is left.
	cursorLease = 30 * time.Second
	launchFor   = cursorLease - 2*attemptTimeout
	leaseMargin = launchFor + attemptTimeout + time.Second
	// saveEvery is how often the holder writes how far it got (with the
	// retries of what failed): a crash sends at most that much again,
	// under the same ids, and the writes stay a few a second in all.
	saveEvery = time.Second
	// cursorRefresh is how often a cursor is written though nothing was
	// sent (moving it past the events it does not subscribe to): pruning
	// takes a cursor not written within events.retention for one whose
	// endpoint is gone.
	cursorRefresh = time.Minute
)

// follower makes an endpoint's first attempts, in seq order, from its
// cursor; only the endpoint's worker goroutine uses it. While this replica
// holds the cursor's lease it remembers how far it got (pos) and the
// retries of what failed, and writes them, renewing the lease, once a
// second: the cursor in the database (saved) lags by that much at most.
type follower struct {
	e  *Events
	ep Endpoint
	// held: this replica holds the lease, until until, as of its last
	// write.
	held  bool
	until time.Time
	// saved is the cursor's seq in the database, savedAt when it was last
	// written (by any replica, when not held).
	saved   int64
	savedAt time.Time
	// pos is the last event attempted (or skipped); retries are the
	// failed first attempts after saved, not yet written.
	pos     int64
	retries []store.Retry
}

func (f *follower) dirty() bool { return f.pos != f.saved || len(f.retries) > 0 }

// follow makes passes while events wait, and writes progress when due.
func (f *follower) follow(ctx context.Context) {
	for ctx.Err() == nil {
		more, err := f.pass(ctx)
		if err != nil {
			if ctx.Err() == nil {
				f.e.log.Warn("delivering webhooks from the cursor failed; retrying in a second", "endpoint", f.ep.ID, "error", err)
			}
			return
		}
		if !more {
			return
		}
	}
}

// pass reads up to cursorBatch subscribed events after pos, attempts them
// 8 at once, and reports whether more may wait. It leases the cursor when
// it has something to send and does not hold it; another replica's live
// lease leaves the endpoint to that replica.
func (f *follower) pass(ctx context.Context) (bool, error) {
	e, now := f.e, f.e.now()
	if f.held && f.until.Sub(now) < leaseMargin {
		if !f.dirty() {
			f.held = false // idle: let the lease lapse rather than write
		} else if err := f.save(ctx); err != nil {
			return false, err
		}
	}
	if !f.held {
		c, err := e.store.GetCursor(ctx, f.ep.ID)
		if errors.Is(err, store.ErrNotFound) {
			// Dropped as stale by a replica that does not know the
			// endpoint (none wrote it within events.retention): start
			// afresh.
			e.log.Warn("the webhook endpoint's cursor was missing; it starts at the newest event", "endpoint", f.ep.ID)
			return false, e.store.StartCursor(ctx, f.ep.ID)
		}
		if err != nil {
			return false, err
		}
		if c.LeaseOwner != e.owner && c.LeaseUntil.After(now) {
			return false, nil // another replica follows it
		}
		f.saved, f.pos, f.savedAt, f.retries = c.Seq, c.Seq, c.UpdatedAt, nil
	}
	latest, err := e.store.LatestEvent(ctx)
	if err != nil {
		return false, err
	}
	var evs []domain.Event
	if latest > f.pos {
		if evs, err = e.store.EventsSince(ctx, f.pos, latest, store.EventFilter{Types: f.ep.Events}, cursorBatch); err != nil {
			return false, err
		}
	}
	refresh := now.Sub(f.savedAt) >= cursorRefresh
	if len(evs) == 0 && !refresh {
		return false, f.saveIfDue(ctx, now)
	}
	if !f.held {
		ok, err := e.store.LeaseCursor(ctx, e.owner, f.ep.ID, f.saved, cursorLease)
		if err != nil || !ok {
			return false, err
		}
		f.held, f.until, f.savedAt = true, now.Add(cursorLease), now
	}
	// Attempt the events in order, 8 at once, starting none after
	// launchFor: those attempted are a prefix, which pos passes.
	// perEndpoint workers take the events in turn (a goroutine per event
	// would grow a fresh stack for every POST).
	out := make([]store.Attempt, len(evs))
	started, stopped := 0, false
	deadline := now.Add(launchFor)
	var mu sync.Mutex
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if stopped || started == len(evs) {
			return 0, false
		}
		if ctx.Err() != nil || e.now().After(deadline) {
			stopped = true // and so for every later event: a prefix is attempted
			return 0, false
		}
		started++
		return started - 1, true
	}
	var wg sync.WaitGroup
	for range min(perEndpoint, len(evs)) {
		wg.Go(func() {
			for i, ok := take(); ok; i, ok = take() {
				ev := evs[i]
				out[i] = e.attempt(ctx, domain.WebhookDelivery{Endpoint: f.ep.ID, CreatedAt: ev.Time, Event: ev})
			}
		})
	}
	wg.Wait()
	attempted := 0
	for i := range started {
		if out[i].Release {
			break // cut by the shutdown: attempted again, under the same id
		}
		f.pos, attempted = evs[i].Seq, i+1
		if out[i].Error != "" || out[i].Failed {
			f.retries = append(f.retries, store.Retry{Seq: evs[i].Seq, EventAt: evs[i].Time, Attempt: out[i]})
		}
	}
	complete := attempted == len(evs)
	if complete && len(evs) < cursorBatch {
		f.pos = max(f.pos, latest) // past the events of other types too
	}
	if refresh || len(f.retries) >= cursorBatch {
		return complete && len(evs) == cursorBatch, f.save(ctx)
	}
	return complete && len(evs) == cursorBatch, f.saveIfDue(ctx, now)
}

// saveIfDue writes progress once saveEvery has passed since the last
// write.
func (f *follower) saveIfDue(ctx context.Context, now time.Time) error {
	if f.held && f.dirty() && now.Sub(f.savedAt) >= saveEvery {
		return f.save(ctx)
	}
	return nil
}

// save advances the cursor to pos with the retries, renewing the lease,
// in one transaction; if another replica took the cursor over meanwhile
// (this one's lease ran out), it sends those events again itself, and
// this replica forgets them.
func (f *follower) save(ctx context.Context) error {
	e := f.e
	// What was attempted is recorded even as Run ends.
	rec, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	now := e.now()
	moved, err := e.store.AdvanceCursor(rec, e.owner, f.ep.ID, f.saved, f.pos, cursorLease, f.retries)
	if err != nil {
		return err
	}
	if !moved {
		e.log.Warn("another replica took the webhook cursor over after its lease ran out; it sends the events since "+
			"the cursor again, under the same ids", "endpoint", f.ep.ID)
		f.held, f.pos, f.retries = false, f.saved, nil
		return nil
	}
	f.saved, f.savedAt, f.until, f.retries = f.pos, now, now.Add(cursorLease), nil
	return nil
}

// stop writes what is not yet written, as Run ends.
func (f *follower) stop(ctx context.Context) {
	if !f.held || !f.dirty() {
		return
	}
	if err := f.save(ctx); err != nil {
		f.e.log.Warn("recording webhook progress failed; the events since the cursor are sent again", "endpoint", f.ep.ID, "error", err)
	}
}
