package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/store"
)

const (
	changeBatch = 1000
	// minCatchUpGap spaces the feed reads a SQLite file's notifications
	// cause: every audit commit writes the WAL and wakes the follower, and
	// each read of the feed opens a read transaction (about 60 µs here):
	// at 2 ms this cost 8% of a busy sidecar's CPU (kavach bench
	// --durable-floor, docs/performance.md). Another process's change on
	// the same file is applied within this much more.
	minCatchUpGap = 10 * time.Millisecond
)

// catchUp applies every change after the applied sequence. It holds writeMu
// so that it never applies an entity's state older than one this replica's
// own write has just applied.
func (s *Replica) catchUp(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if !s.ready.Load() {
		return nil // the first full load has not happened yet
	}
	for {
		changes, err := s.store.ChangesSince(ctx, s.applied.Load(), changeBatch)
		if err != nil {
			return err
		}
		if len(changes) == 0 {
			break
		}
		s.saw(changes[len(changes)-1].Seq)
		c, err := s.readChanged(ctx, changes)
		if err != nil {
			return err
		}
		if err := s.syncLocked(ctx, c); err != nil {
			return err
		}
		s.applied.Store(changes[len(changes)-1].Seq)
		if len(changes) < changeBatch {
			break
		}
	}
	s.lastSync.Store(s.now().UnixMilli())
	return nil
}

// readChanged reads the current state of every entity the changes name.
func (s *Replica) readChanged(ctx context.Context, changes []store.Change) (engine.Changes, error) {
	var c engine.Changes
	seen := map[store.Change]bool{}
	for _, ch := range changes {
		key := store.Change{Kind: ch.Kind, EntityID: ch.EntityID}
		if seen[key] {
			continue
		}
		seen[key] = true
		var err error
		switch ch.Kind {
		case store.ChangeAgent:
			var a domain.Agent
			if a, err = s.store.GetAgent(ctx, ch.EntityID); err == nil {
				c.Agents = append(c.Agents, a)
			}
		case store.ChangeDelegation:
			var d domain.Delegation
			if d, err = s.store.GetDelegation(ctx, ch.EntityID); err == nil {
				c.Delegations = append(c.Delegations, d)
			}
		case store.ChangeKey:
			var k domain.APIKey
			if k, err = s.store.GetKey(ctx, ch.EntityID); err == nil {
				s.keys.Put(k)
			}
		case store.ChangeApproval:
			var a domain.Approval
			if a, err = s.store.GetApproval(ctx, ch.EntityID); err == nil {
				c.Approvals = append(c.Approvals, a)
			}
		default:
			s.log.Warn("unknown change kind; skipped", "kind", ch.Kind, "seq", ch.Seq)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return c, fmt.Errorf("read %s %s: %w", ch.Kind, ch.EntityID, err)
		}
	}
	return c, nil
}

// Follow keeps this replica's OPA store in step with the change feed until
// ctx ends.
func (s *Replica) Follow(ctx context.Context) {
	wake := make(chan struct{}, 1)
	notify := func() {
		select {
		case wake <- struct{}{}:
		default: // a catch-up is already due
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait() // the listener stops with ctx
	if s.store.CanListen() {
		wg.Go(func() {
			s.store.Listen(ctx, func() {
				s.listening.Store(true)
				notify()
			}, func(err error) {
				s.listening.Store(false)
				s.log.Warn("change notifications interrupted; polling meanwhile", "error", err)
			})
		})
	}
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-tick.C:
		}
		// A SQLite file wakes us on every write, audit rows included:
		// coalesce bursts into one feed read every minCatchUpGap.
		if wait := minCatchUpGap - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		if err := s.catchUp(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("applying the change feed failed; retrying", "error", err)
		}
	}
}

// saw records that the feed has grown to at least seq.
func (s *Replica) saw(seq int64) {
	for {
		cur := s.seen.Load()
		if seq <= cur || s.seen.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// Sync reports the change feed's state for /health, from memory: the
// newest change this replica read from the feed (at most LastSyncAgeMs
// ago while the feed can be read) and how many of those it has not
// applied. It never asks the database, so that /health does not depend on
// it.
func (s *Replica) Sync() api.SyncStatus {
	st := api.SyncStatus{AppliedSeq: s.applied.Load(), LatestSeq: s.seen.Load(), Listening: s.listening.Load()}
	st.LatestSeq = max(st.LatestSeq, st.AppliedSeq)
	st.Lag = st.LatestSeq - st.AppliedSeq
	if last := s.lastSync.Load(); last > 0 {
		st.LastSyncAgeMs = s.now().UnixMilli() - last
	}
	return st
}
