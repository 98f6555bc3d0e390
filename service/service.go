// Package service is Kavach's application layer: it validates requests,
// writes the store, keeps the decision engine in sync with it and audits
// every decision. It knows nothing of HTTP.
package service

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/domain"

	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/store"
)

// Store is what the service needs from persistence.
type Store interface {
	CreateAgent(ctx context.Context, a domain.Agent, maxActive int) (domain.Agent, error)
	GetAgent(ctx context.Context, id string) (domain.Agent, error)
	ListAgents(ctx context.Context, f store.AgentFilter) ([]domain.Agent, error)
	EachAgent(ctx context.Context, fn func(domain.Agent) error) error
	UpdateAgent(ctx context.Context, id string, u store.AgentUpdate) (domain.Agent, error)
	RotateToken(ctx context.Context, id, tokenHash string) (domain.Agent, error)
	RevokeAgent(ctx context.Context, id string) (domain.Agent, error)
	InsertAudit(ctx context.Context, e domain.AuditEntry, use store.Consumption) (domain.AuditEntry, error)
	QueryAudit(ctx context.Context, f store.AuditFilter) ([]domain.AuditEntry, string, error)
	ExportAudit(ctx context.Context, f store.AuditFilter, fn func(domain.AuditEntry) error) error
	Ping(ctx context.Context) error
	SchemaVersion(ctx context.Context) (int, error)

	CreateDelegation(ctx context.Context, d domain.Delegation) (domain.Delegation, error)
	GetDelegation(ctx context.Context, id string) (domain.Delegation, error)
	ListDelegations(ctx context.Context, agentID string) ([]domain.Delegation, error)
	RevokeDelegation(ctx context.Context, id string) (domain.Delegation, error)
	EachDelegation(ctx context.Context, fn func(domain.Delegation) error) error

	PendingApproval(ctx context.Context, agentID, action, resource string) (domain.Approval, error)
	CreateApproval(ctx context.Context, a domain.Approval) (domain.Approval, error)
	GetApproval(ctx context.Context, id string) (domain.Approval, error)
	ListApprovals(ctx context.Context, f store.ApprovalFilter) ([]domain.Approval, error)
	ResolveApproval(ctx context.Context, id, status, note string) (domain.Approval, error)
	EachApproval(ctx context.Context, keep time.Duration, fn func(domain.Approval) error) error

	CountCalls(ctx context.Context, agentID, resource string, since time.Time) (map[string]int, error)
	PruneRateEvents(ctx context.Context, before time.Time) (int64, error)

	LatestChange(ctx context.Context) (int64, error)
	ChangesSince(ctx context.Context, after int64, limit int) ([]store.Change, error)
	PruneChanges(ctx context.Context, before time.Time) (int64, error)
	CanListen() bool
	Listen(ctx context.Context, notify func(), onError func(error))
	AuditStats() store.AuditStats

	AgentByTokenHash(ctx context.Context, hash string) (domain.Agent, error)
	CreateKey(ctx context.Context, k domain.APIKey) (domain.APIKey, error)
	BootstrapKey(ctx context.Context, k domain.APIKey) (domain.APIKey, bool, error)
	GetKey(ctx context.Context, id string) (domain.APIKey, error)
	KeyByHash(ctx context.Context, hash string) (domain.APIKey, error)
	ListKeys(ctx context.Context) ([]domain.APIKey, error)
	RevokeKey(ctx context.Context, id string) (domain.APIKey, error)
	RecordEvent(ctx context.Context, e store.Event) (domain.AuditEntry, error)
}

var _ Store = (*store.Store)(nil)

// DefaultApprovalTTL is the seeds' default approval lifetime.
const DefaultApprovalTTL = 300 * time.Second

// Options configures the agent lifecycle (the seeds' `agents` options).
type Options struct {
	// MaxPerUser caps an owner's active agents; 0 means no cap.
	MaxPerUser int
	// TokenExpiry is the default lifetime of a new agent; 0 means none.
	TokenExpiry time.Duration
	// DefaultPermissions apply when a create request has no permissions field.
	DefaultPermissions []api.Permission
	// ApprovalTTL is how long an approval request stays open and, once
	// approved, usable; 0 means DefaultApprovalTTL.
	ApprovalTTL time.Duration
	// WebhookURL, if set, receives a POST for every new approval request.
	WebhookURL string
	// PollInterval bounds how stale this replica's view of other replicas'
	// writes can get when no notification arrives; 0 means 1s.
	PollInterval time.Duration
	// ExtensionsPath is the directory or bundle the engine's extensions were
	// read from; Run watches it and reloads on change.
	ExtensionsPath string
	// AdminKey, if set, is an admin credential accepted as given and never
	// stored (KAVACH_ADMIN_KEY).
	AdminKey string
	// Roles are the roles an API key may hold: those the API policy
	// declares (access.Policy.Roles).
	Roles []string
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service is safe for concurrent use.
type Service struct {
	// defaultPerms are Options.DefaultPermissions, checked and typed.
	defaultPerms []domain.Permission
	store        Store
	engine       *engine.Engine
	opts         Options
	log          *slog.Logger
	now          func() time.Time

	// writeMu orders "write the store, then sync the engine" so that two
	// concurrent writes to one agent reach OPA in commit order.
	writeMu sync.Mutex
	ready   atomic.Bool // the engine holds the store's data

	// agentLocks serialise, per agent, the decisions that consume something
	// (rate-limit quota, an approval): count, decide and record happen as one
	// step, so N concurrent calls under a limit of N get exactly N allows.
	agentLocks [64]sync.Mutex
	webhook    *webhook

	ext extensionState

	// tokens verifies MCP OAuth access tokens (nil: MCP is off); grantMu
	// serialises the creation of grant agents.
	tokens    AccessTokens
	scopeKeys map[string][]string // scope → permission keys
	grantMu   sync.Mutex

	keys         keyCache
	adminKeyHash []byte // SHA-256 of Options.AdminKey; nil if none
	refusals     *refusals

	applied   atomic.Int64 // last change-feed sequence applied to OPA
	lastSync  atomic.Int64 // Unix ms of the last change-feed read
	listening atomic.Bool
}

// New returns a service; call Load before serving decisions.
func New(st Store, eng *engine.Engine, opts Options) (*Service, error) {
	defaults, err := checkPermissions(opts.DefaultPermissions)
	if err != nil {
		return nil, fmt.Errorf("agents.defaultPermissions: %w", err)
	}
	s := &Service{store: st, engine: eng, opts: opts, log: opts.Logger, now: opts.Now, defaultPerms: defaults}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.opts.PollInterval <= 0 {
		s.opts.PollInterval = time.Second
	}
	if s.opts.ApprovalTTL <= 0 {
		s.opts.ApprovalTTL = DefaultApprovalTTL
	}
	if opts.WebhookURL != "" {
		s.webhook = newWebhook(opts.WebhookURL, s.log)
	}
	if opts.AdminKey != "" {
		if len(opts.AdminKey) < MinAdminKeyLen {
			return nil, fmt.Errorf("KAVACH_ADMIN_KEY must be at least %d characters", MinAdminKeyLen)
		}
		sum := sha256.Sum256([]byte(opts.AdminKey))
		s.adminKeyHash = sum[:]
		s.opts.AdminKey = "" // not kept in memory longer than needed
	}
	s.refusals = newRefusals(st, s.log, func(ctx context.Context, token string) (string, error) {
		id, _, err := s.agentOfAccessToken(ctx, token)
		return id, err
	})
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
	if err := s.keys.loadKeys(ctx, s.store); err != nil {
		return err
	}
	s.applied.Store(seq)
	s.lastSync.Store(s.now().UnixMilli())
	s.ready.Store(true)
	s.log.Info("data loaded into OPA", "agents", n.Agents, "delegations", n.Delegations, "approvals", n.Approvals,
		"duration", time.Since(start).String())
	return nil
}

// Ready reports whether the engine holds the store's data.
func (s *Service) Ready() bool { return s.ready.Load() }

// errNotReady refuses decisions and writes until the engine holds the
// store's data: a decision on a half-loaded store would deny (and audit)
// agents that exist.
var errNotReady = &apperr.Error{Kind: apperr.Unavailable, Code: "not_ready",
	Message: "agent data is not loaded into OPA yet; retry shortly (GET /ready says when)"}

func (s *Service) checkReady() error {
	if !s.ready.Load() {
		return errNotReady
	}
	return nil
}

// write runs a store write and syncs the agent it returns into the engine
// before returning, so the caller's response reflects the new state.
func (s *Service) write(ctx context.Context, fn func() (domain.Agent, error)) (domain.Agent, error) {
	if err := s.checkReady(); err != nil {
		return domain.Agent{}, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	a, err := fn()
	if err != nil {
		return domain.Agent{}, storeError(err)
	}
	return a, s.syncLocked(ctx, engine.Changes{Agents: []domain.Agent{a}})
}

// syncLocked applies committed changes to the engine; writeMu must be held.
func (s *Service) syncLocked(ctx context.Context, c engine.Changes) error {
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

// changeRetention is how long the change feed keeps entries; a replica
// further behind reloads everything when it starts.
const changeRetention = 24 * time.Hour

// Run does background work until ctx ends: it follows the change feed,
// prunes rate-limit events older than the window and old feed entries, and
// delivers approval webhooks.
func (s *Service) Run(ctx context.Context) {
	if s.webhook != nil {
		go s.webhook.run(ctx)
	}
	go s.follow(ctx)
	go s.refusals.run(ctx)
	if s.opts.ExtensionsPath != "" {
		go s.watchExtensions(ctx)
	}
	tick := time.NewTicker(5 * time.Minute)
	defer tick.Stop()
	for {
		if n, err := s.store.PruneRateEvents(ctx, s.now().Add(-store.RateWindow)); err != nil && ctx.Err() == nil {
			s.log.Warn("pruning rate-limit events failed", "error", err)
		} else if n > 0 {
			s.log.Debug("pruned rate-limit events", "rows", n)
		}
		if _, err := s.store.PruneChanges(ctx, s.now().Add(-changeRetention)); err != nil && ctx.Err() == nil {
			s.log.Warn("pruning the change feed failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Health pings the database and reads the schema version (0 when it cannot
// be read, e.g. a schema managed externally without schema_migrations).
func (s *Service) Health(ctx context.Context) (schemaVersion int, err error) {
	if err := s.store.Ping(ctx); err != nil {
		return 0, err
	}
	v, err := s.store.SchemaVersion(ctx)
	if err != nil {
		s.log.Debug("schema version unknown", "error", err)
		return 0, nil
	}
	return v, nil
}

// AuditStats reports the audit writer's counters.
func (s *Service) AuditStats() store.AuditStats { return s.store.AuditStats() }
