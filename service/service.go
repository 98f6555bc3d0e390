// Package service is Kavach's application layer: it validates requests,
// writes the store, keeps the decision engine in sync with it and audits
// every decision. It knows nothing of HTTP.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/store"
)

// Store is what the service needs from persistence.
type Store interface {
	CreateAgent(ctx context.Context, a store.Agent, maxActive int) (store.Agent, error)
	GetAgent(ctx context.Context, id string) (store.Agent, error)
	ListAgents(ctx context.Context, f store.AgentFilter) ([]store.Agent, error)
	EachAgent(ctx context.Context, fn func(store.Agent) error) error
	UpdateAgent(ctx context.Context, id string, u store.AgentUpdate) (store.Agent, error)
	RotateToken(ctx context.Context, id, tokenHash string) (store.Agent, error)
	RevokeAgent(ctx context.Context, id string) (store.Agent, error)
	InsertAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error)
	QueryAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, string, error)
	ExportAudit(ctx context.Context, f store.AuditFilter, fn func(store.AuditEntry) error) error
	Ping(ctx context.Context) error
	SchemaVersion(ctx context.Context) (int, error)
}

var _ Store = (*store.Store)(nil)

// Options configures the agent lifecycle (the seeds' `agents` options).
type Options struct {
	// MaxPerUser caps an owner's active agents; 0 means no cap.
	MaxPerUser int
	// TokenExpiry is the default lifetime of a new agent; 0 means none.
	TokenExpiry time.Duration
	// DefaultPermissions apply when a create request has no permissions field.
	DefaultPermissions []store.Permission
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service is safe for concurrent use.
type Service struct {
	store  Store
	engine *engine.Engine
	opts   Options
	log    *slog.Logger
	now    func() time.Time

	// writeMu orders "write the store, then sync the engine" so that two
	// concurrent writes to one agent reach OPA in commit order.
	writeMu sync.Mutex
	ready   atomic.Bool // the engine holds the store's data
}

// New returns a service; call Load before serving decisions.
func New(st Store, eng *engine.Engine, opts Options) (*Service, error) {
	for i, p := range opts.DefaultPermissions {
		if err := validatePermission(p); err != nil {
			return nil, fmt.Errorf("agents.defaultPermissions[%d]: %w", i, err)
		}
	}
	s := &Service{store: st, engine: eng, opts: opts, log: opts.Logger, now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Load copies every agent from the store into the engine.
func (s *Service) Load(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.loadLocked(ctx)
}

func (s *Service) loadLocked(ctx context.Context) error {
	start := time.Now()
	n, err := s.engine.Load(ctx, func(fn func(store.Agent) error) error {
		return s.store.EachAgent(ctx, fn)
	})
	if err != nil {
		return err
	}
	s.ready.Store(true)
	s.log.Info("agents loaded into OPA", "agents", n, "duration", time.Since(start).String())
	return nil
}

// Ready reports whether the engine holds the store's data.
func (s *Service) Ready() bool { return s.ready.Load() }

// write runs a store write and syncs the agent it returns into the engine
// before returning, so the caller's response reflects the new state.
func (s *Service) write(ctx context.Context, fn func() (store.Agent, error)) (store.Agent, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	a, err := fn()
	if err != nil {
		return store.Agent{}, storeError(err)
	}
	if err := s.engine.Put(ctx, a); err != nil {
		// The store committed but OPA did not take it: rebuild OPA from the
		// store rather than decide on stale data.
		s.log.Error("engine sync failed; reloading", "agent", a.ID, "error", err)
		if lerr := s.loadLocked(ctx); lerr != nil {
			return store.Agent{}, fmt.Errorf("sync agent %s: %w", a.ID, errors.Join(err, lerr))
		}
	}
	return a, nil
}

// Health checks the database.
func (s *Service) Health(ctx context.Context) (schemaVersion int, err error) {
	if err := s.store.Ping(ctx); err != nil {
		return 0, err
	}
	return s.store.SchemaVersion(ctx)
}
