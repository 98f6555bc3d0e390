// Package replica keeps this sidecar's decision engine in step with the
// database: the first full load, write-through of this replica's own
// writes, and the change feed that brings other replicas' writes.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/store"
)

// Store is what a replica reads: the change feed, each kind of entity by
// ID, and everything at once (engine.Source) for a full load.
type Store interface {
	engine.Source
	LatestChange(ctx context.Context) (int64, error)
	ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error)
	CanListen() bool
	Listen(ctx context.Context, notify func(), onError func(error))
	GetAgent(ctx context.Context, id string) (domain.Agent, error)
	GetDelegation(ctx context.Context, id string) (domain.Delegation, error)
	GetApproval(ctx context.Context, id string) (domain.Approval, error)
	GetKey(ctx context.Context, id string) (domain.APIKey, error)
}

// Keys is the API key cache a replica keeps current beside the engine.
type Keys interface {
	// LoadKeys replaces the cache with every key in the store.
	LoadKeys(ctx context.Context) error
	// Put adds or replaces one key.
	Put(k domain.APIKey)
}

// Replica is safe for concurrent use.
type Replica struct {
	store  Store
	engine *engine.Engine
	keys   Keys
	log    *slog.Logger
	now    func() time.Time
	poll   time.Duration

	// writeMu orders "write the store, then sync the engine" so that two
	// concurrent writes to one agent reach OPA in commit order.
	writeMu sync.Mutex
	ready   atomic.Bool // the engine holds the store's data

	applied   atomic.Int64 // last change-feed sequence applied to OPA
	seen      atomic.Int64 // newest change-feed sequence read from the database
	lastSync  atomic.Int64 // Unix ms of the last change-feed read
	listening atomic.Bool
}

// New returns a replica that is not ready until Load. poll bounds how
// stale this replica's view of other replicas' writes can get when no
// notification arrives.
func New(st Store, eng *engine.Engine, keys Keys, poll time.Duration, now func() time.Time, log *slog.Logger) *Replica {
	return &Replica{store: st, engine: eng, keys: keys, poll: poll, now: now, log: log}
}

// Update runs fn, which writes the store, and applies the changes it
// returns to the engine before returning, ordered with every other write
// of this replica and with the change feed.
func (s *Replica) Update(ctx context.Context, fn func() (engine.Changes, error)) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	c, err := fn()
	if err != nil {
		return err
	}
	if len(c.Agents) == 0 && len(c.Delegations) == 0 && len(c.Approvals) == 0 {
		return nil // nothing written
	}
	return s.syncLocked(ctx, c)
}

// Load copies every agent from the store into the engine.
func (s *Replica) Load(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.loadLocked(ctx)
}

func (s *Replica) loadLocked(ctx context.Context) error {
	start := time.Now()
	// Read the feed's position first: changes committed during the load are
	// applied again afterwards, which is harmless (applying is idempotent).
	seq, err := s.store.LatestChange(ctx)
	if err != nil {
		return err
	}
	n, err := s.engine.Load(ctx, s.store)
	if err != nil {
		return err
	}
	if err := s.keys.LoadKeys(ctx); err != nil {
		return err
	}
	s.applied.Store(seq)
	s.saw(seq)
	s.lastSync.Store(s.now().UnixMilli())
	s.ready.Store(true)
	if n.OnDemand {
		s.log.Info("policy data ready: agents are read from the database when first decided on", "duration", time.Since(start).String())
	} else {
		s.log.Info("data loaded into OPA", "agents", n.Agents, "delegations", n.Delegations, "approvals", n.Approvals,
			"duration", time.Since(start).String())
	}
	return nil
}

// Ready reports whether the engine holds the store's data.
func (s *Replica) Ready() bool { return s.ready.Load() }

// errNotReady refuses decisions and writes until the engine holds the
// store's data: a decision on a half-loaded store would deny (and audit)
// agents that exist.
var errNotReady = &apperr.Error{Kind: apperr.Unavailable, Code: "not_ready",
	Message: "agent data is not loaded into OPA yet; retry shortly (GET /ready says when)"}

// CheckReady is errNotReady until the engine holds the store's data.
func (s *Replica) CheckReady() error {
	if !s.ready.Load() {
		return errNotReady
	}
	return nil
}

// WriteAgent runs a store write and syncs the agent it returns into the engine
// before returning, so the caller's response reflects the new state.
func (s *Replica) WriteAgent(ctx context.Context, fn func() (domain.Agent, error)) (domain.Agent, error) {
	if err := s.CheckReady(); err != nil {
		return domain.Agent{}, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	a, err := fn()
	if err != nil {
		return domain.Agent{}, core.StoreError(err)
	}
	return a, s.syncLocked(ctx, engine.Changes{Agents: []domain.Agent{a}})
}

// syncLocked applies committed changes to the engine; writeMu must be held.
func (s *Replica) syncLocked(ctx context.Context, c engine.Changes) error {
	if err := s.engine.Apply(ctx, c); err != nil {
		// The store committed but OPA did not take it: rebuild OPA from the
		// store rather than decide on stale data.
		s.log.Error("engine sync failed; reloading", "error", err)
		if lerr := s.loadLocked(ctx); lerr != nil {
			s.ready.Store(false)
			return fmt.Errorf("sync into OPA: %w", errors.Join(err, lerr))
		}
	}
	return nil
}

// DataCache reports the counters of the engine's bounded policy data
// store; false when every agent is held in memory (policies.loadAll).
func (s *Replica) DataCache() (engine.CacheStats, bool) { return s.engine.DataCache() }
