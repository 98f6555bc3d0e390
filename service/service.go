// Package service is Kavach's application layer, split by use case into
// the packages below it: agents, delegations, approvals, decisions
// (authorize), credentials (keys and agent tokens), grants (MCP OAuth
// grant agents), audit (reading the trail, refused calls), policy
// (extensions and bundles) and replica (keeping the engine in step with
// the database). Each declares the few store methods it uses. Service
// composes them for the HTTP edge, which sees one value; it knows nothing
// of HTTP.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service/agents"
	"github.com/kavach-dev/kavach/service/anomalies"
	"github.com/kavach-dev/kavach/service/approvals"
	"github.com/kavach-dev/kavach/service/audit"
	"github.com/kavach-dev/kavach/service/credentials"
	"github.com/kavach-dev/kavach/service/decisions"
	"github.com/kavach-dev/kavach/service/delegations"
	"github.com/kavach-dev/kavach/service/events"
	"github.com/kavach-dev/kavach/service/grants"
	"github.com/kavach-dev/kavach/service/internal/core"
	"github.com/kavach-dev/kavach/service/policy"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/store"
)

// The names the HTTP edge and the composition root use.
type (
	// Principal is an authenticated caller.
	Principal = credentials.Principal
	// Refusal is one refused API call (401 or 403).
	Refusal = audit.Refusal
	// AuditQuery selects audit rows.
	AuditQuery = audit.Query
	// AnomalyQuery selects anomalies.
	AnomalyQuery = anomalies.Query
	// AnomalyOptions configure anomaly detection and trust scoring.
	AnomalyOptions = anomalies.Options
	// DeliveryQuery selects webhook deliveries.
	DeliveryQuery = events.DeliveryQuery
	// FeedQuery selects the live feed.
	FeedQuery = events.FeedQuery
	// Feed is an open live feed.
	Feed = events.Feed
	// WebhookEndpoint is one webhook endpoint.
	WebhookEndpoint = events.Endpoint
	// EventOptions configure webhook delivery.
	EventOptions = events.Options
	// PageQuery holds the paging parameters of a list (limit, cursor).
	PageQuery = core.PageQuery
)

// Anonymous is the principal of a request without credential.
var Anonymous = credentials.Anonymous

// Credential prefixes and limits.
const (
	KeyPrefix      = credentials.KeyPrefix
	MinAdminKeyLen = credentials.MinAdminKeyLen
)

// ReadExtensions reads user policy extensions from a directory or bundle.
func ReadExtensions(path string) (map[string]string, error) { return policy.ReadExtensions(path) }

// CheckScopes validates the permissions of the configured MCP scopes.
func CheckScopes(scopes map[string][]api.Permission) error { return grants.CheckScopes(scopes) }

// FeedBatch is the most events one read of a feed returns.
const FeedBatch = events.FeedBatch

// DecisionTap is the store's decision tap (store.Options.DecisionTap) that
// anomaly detection needs.
const DecisionTap = anomalies.TapSize

// DefaultApprovalTTL is the seeds' default approval lifetime.
const DefaultApprovalTTL = 300 * time.Second

// Options configures the application layer (the seeds' agents and approval
// options, and what the sidecar adds).
type Options struct {
	// MaxPerUser caps an owner's active agents; 0 means no cap.
	MaxPerUser int
	// TokenExpiry is the default lifetime of a new agent; 0 means none.
	TokenExpiry time.Duration
	// MaxMetadataBytes caps an agent's metadata as JSON; 0 means
	// agents.DefaultMaxMetadataBytes.
	MaxMetadataBytes int
	// DefaultPermissions apply when a create request has no permissions field.
	DefaultPermissions []api.Permission
	// ApprovalTTL is how long an approval request stays open and, once
	// approved, usable; 0 means DefaultApprovalTTL.
	ApprovalTTL time.Duration
	// Events configures webhook delivery and the event feed.
	Events events.Options
	// PollInterval bounds how stale this replica's view of other replicas'
	// writes can get when no notification arrives; 0 means 1s.
	PollInterval time.Duration
	// ProbeInterval is how often Run writes the store's probe row, so that
	// Readiness follows the database when nothing else writes; 0 means
	// DefaultProbeInterval.
	ProbeInterval time.Duration
	// ExtensionsPath is the directory or bundle the engine's extensions were
	// read from; Run watches it and reloads on change.
	ExtensionsPath string
	// AdminKey, if set, is an admin credential accepted as given and never
	// stored (KAVACH_ADMIN_KEY).
	AdminKey string
	// Roles are the roles an API key may hold: those the API policy
	// declares (access.Policy.Roles).
	Roles []string
	// Anomalies configures anomaly detection and trust scoring.
	Anomalies anomalies.Options
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service is the use cases composed; safe for concurrent use.
type Service struct {
	*replica.Replica
	*agents.Agents
	*delegations.Delegations
	*approvals.Approvals
	*decisions.Decisions
	*credentials.Credentials
	*grants.Grants
	*audit.Audit
	*policy.Policy
	*anomalies.Anomalies
	*events.Events

	store *store.Store
	now   func() time.Time
	log   *slog.Logger
	probe time.Duration
}

// New composes the use cases over st and eng; call Load before serving
// decisions.
func New(st *store.Store, eng *engine.Engine, opts Options) (*Service, error) {
	defaults, err := core.CheckPermissions(opts.DefaultPermissions)
	if err != nil {
		return nil, fmt.Errorf("agents.defaultPermissions: %w", err)
	}
	s := &Service{store: st, now: opts.Now, log: opts.Logger, probe: opts.ProbeInterval}
	if s.probe <= 0 {
		s.probe = DefaultProbeInterval
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.ApprovalTTL <= 0 {
		opts.ApprovalTTL = DefaultApprovalTTL
	}
	if s.Credentials, err = credentials.New(st, credentials.Options{AdminKey: opts.AdminKey, Roles: opts.Roles}, s.now, s.log); err != nil {
		return nil, err
	}
	s.Replica = replica.New(st, eng, s.Credentials, opts.PollInterval, s.now, s.log)
	validate := policy.NewValidator(eng, st, s.now, s.log)
	s.Agents = agents.New(st, s.Replica, validate, agents.Options{MaxPerUser: opts.MaxPerUser, TokenExpiry: opts.TokenExpiry, MaxMetadataBytes: opts.MaxMetadataBytes,
		DefaultPermissions: defaults}, s.now, s.log)
	s.Delegations = delegations.New(st, eng, s.Replica, validate, s.now, s.log)
	s.Approvals = approvals.New(st, s.Replica, opts.ApprovalTTL, s.now, s.log)
	s.Decisions = decisions.New(st, eng, s.Replica, s.Approvals, s.Credentials, s.now, s.log)
	s.Grants = grants.New(st, s.Replica, validate, opts.MaxPerUser, s.now, s.log)
	s.Audit = audit.New(st, func(ctx context.Context, token string) (string, error) {
		id, _, err := s.AgentOfAccessToken(ctx, token)
		return id, err
	}, s.now, s.log)
	s.Policy = policy.New(st, eng, opts.ExtensionsPath, s.now, s.log)
	s.Anomalies = anomalies.New(st, s.Replica, opts.Anomalies, s.now, s.log)
	s.Events = events.New(st, opts.Events, s.now, s.log)
	return s, nil
}

// changeRetention is how long the change feed keeps entries; a replica
// further behind reloads everything when it starts.
const changeRetention = 24 * time.Hour

// Run does background work until ctx ends: it follows the change feed,
// writes refused calls' rows, delivers webhooks, reloads changed
// extensions, detects anomalies and scores trust, and prunes rate-limit
// events older than the window and old feed entries.
//
// It returns only when everything it started has stopped, so the store
// can be closed after it.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.Events.Run(ctx) })
	wg.Go(func() { s.Follow(ctx) })
	wg.Go(func() { s.Audit.Run(ctx) })
	wg.Go(func() { s.Policy.Run(ctx) })
	wg.Go(func() { s.probeWrites(ctx) })
	wg.Go(func() { s.Anomalies.Run(ctx) })
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

// DefaultProbeInterval is how often Run writes the store's probe row by
// default: with the default database.timeout, /ready turns 503 within about
// 5 s of writes starting to fail even with no traffic, and 200 within 2 s
// of their working again.
const DefaultProbeInterval = 2 * time.Second

// probeWrites writes the probe row every probe interval until ctx ends,
// and logs when writes start failing and when they work again.
func (s *Service) probeWrites(ctx context.Context) {
	tick := time.NewTicker(s.probe)
	defer tick.Stop()
	var was error
	for {
		if err := s.store.Probe(ctx); err != nil && ctx.Err() == nil && !store.IsUnavailable(err) {
			// Not the database's state (a schema without the probe table,
			// managed externally): the probe says nothing.
			s.log.Debug("write probe failed", "error", err)
		}
		now := s.store.Writable()
		var u *store.UnavailableError
		switch {
		case errors.As(now, &u) && was == nil:
			s.log.Error("database writes fail: /ready is 503 and decisions 503 audit_unavailable until they succeed",
				"error", now, "cause", u.Err)
		case now == nil && was != nil:
			s.log.Info("database writes succeed again: ready")
		}
		was = now
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Health is what /health reports, from memory: whether this replica's
// writes to the database succeed (ok, or the reason they fail), the schema
// version read at start, and the change feed's position. It never asks the
// database: a liveness check must not fail because the database does.
func (s *Service) Health() api.Health {
	h := api.Health{Status: "ok", Database: "ok", SchemaVersion: s.store.SchemaVersionAtOpen()}
	var u *store.UnavailableError
	if errors.As(s.store.Writable(), &u) {
		h.Database = u.Reason
	}
	sync := s.Sync()
	h.Sync = &sync
	return h
}

// Readiness is nil when this replica can give decisions: its engine holds
// the data, and writes to the database (audit rows) succeed. Otherwise it
// is a 503: not_ready before the first load, database_unavailable while
// writes fail (and until one succeeds again).
func (s *Service) Readiness() error {
	if err := s.CheckReady(); err != nil {
		return err
	}
	if err := s.store.Writable(); err != nil {
		return &apperr.Error{Kind: apperr.Unavailable, Code: "database_unavailable",
			Message: err.Error() + "; decisions answer 503 audit_unavailable until a write succeeds", Err: err}
	}
	return nil
}

// AuditStats reports the audit writer's counters.
func (s *Service) AuditStats() store.AuditStats { return s.store.AuditStats() }
