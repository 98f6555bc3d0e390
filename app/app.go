// Package app is Kavach's composition root: New builds every part of a
// sidecar from its configuration (store, decision engine, application
// layer, MCP authorization server, HTTP server) and Run serves it until its
// context ends. The serve command only reads flags and calls the two.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kavach-dev/kavach/access"
	"github.com/kavach-dev/kavach/config"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/oauth"
	"github.com/kavach-dev/kavach/secret"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/store"
	"github.com/kavach-dev/kavach/telemetry"
	"github.com/kavach-dev/kavach/webui"
)

// ConfigError is a setting that stops the sidecar before it starts: the
// serve command exits 2 on it, as on any bad flag.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }

func configErr(format string, args ...any) error {
	return &ConfigError{Err: fmt.Errorf(format, args...)}
}

// Options are what the configuration file does not hold.
type Options struct {
	// Version is reported by /health and logged at start.
	Version string
	// AdminKey is KAVACH_ADMIN_KEY: an admin credential never stored.
	AdminKey string
	// Logger receives the structured log; nil means JSON on stderr.
	Logger *slog.Logger
	// Stdout is where a bootstrap admin key is announced (printed only
	// when Terminal is true); nil means os.Stdout.
	Stdout   io.Writer
	Terminal bool
}

// App is one sidecar, built and ready to Run.
type App struct {
	cfg    config.Config
	opts   Options
	log    *slog.Logger
	store  *store.Store
	svc    *service.Service
	oauth  *oauth.Server // nil when mcp.enabled is false
	server *sidecar.Server
	api    sidecar.Listener
	public sidecar.Listener // Addr "" when there is no public listener
	diag   sidecar.Listener // Addr "" when there is no diagnostic listener
	// tracing is OpenTelemetry's provider, off unless configured.
	tracing *telemetry.Tracing
	// links sign approval links; pages are the approval page and
	// dashboard (webui).
	links *webui.Links
	pages *webui.Options
}

// New builds a sidecar from a validated configuration. On error nothing is
// left open. A *ConfigError is a bad setting.
func New(ctx context.Context, cfg config.Config, opts Options) (_ *App, err error) {
	a := &App{cfg: cfg, opts: opts, log: opts.Logger}
	if a.log == nil {
		a.log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{ReplaceAttr: LogTimes}))
	}
	if a.opts.Stdout == nil {
		a.opts.Stdout = os.Stdout
	}
	if current, _ := cfg.Secrets(); cfg.MCP.Enabled && !current.Set() {
		return nil, configErr("mcp.enabled needs a secret to seal the OAuth signing keys in the database: "+
			"set KAVACH_SECRET (or secret in the file) to a random value of at least %d characters", secret.MinLength)
	}
	var cert *tls.Certificate
	if cfg.Server.TLSCert != "" {
		// Read now: a missing or bad file stops the sidecar before it
		// listens anywhere, as any other bad setting does.
		pair, err := tls.LoadX509KeyPair(cfg.Server.TLSCert, cfg.Server.TLSKey)
		if err != nil {
			return nil, configErr("server.tlsCert and server.tlsKey (--tls-cert, --tls-key): %v", err)
		}
		cert = &pair
	}
	if g := cfg.Server.SocketGroup; g != "" {
		if _, err := sidecar.GroupID(g); err != nil {
			return nil, configErr("server.socketGroup (--socket-group): %v", err)
		}
	}
	if k := opts.AdminKey; k != "" && len(k) < service.MinAdminKeyLen {
		return nil, configErr("KAVACH_ADMIN_KEY must be at least %d characters", service.MinAdminKeyLen)
	}
	if a.tracing, a.log, err = startTracing(ctx, cfg, opts.Version, a.log); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			a.stopTracing()
		}
	}()
	pol, err := access.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("policies/api: %w", err)
	}
	if sidecar.AuthOff {
		a.log.Warn("this build has authentication OFF (-tags kavach_noauth): every route is open; it exists only to measure what authentication costs")
	}
	async := cfg.Audit.Mode == "async"
	if async {
		a.log.Warn("audit.mode is async: decisions are answered before their audit rows commit, and a crash loses the rows still queued")
	}
	if cfg.Agents.TokenExpiry == "" {
		// The default changed (it was none): say so where operators look.
		a.log.Info("agents.tokenExpiry is not set: new agents expire 24h after creation, KavachOS's default; " +
			"set agents.tokenExpiry (0 for none) to choose")
	}
	current, previous := cfg.Secrets()
	if !current.Set() {
		a.log.Warn("no secret (KAVACH_SECRET): audit checkpoints are unsigned, so someone who can write to the database " +
			"could rewrite the trail and its checkpoints unseen; set a secret of 32+ characters")
	}
	if a.links, err = webui.NewLinks(cfg.Server.PublicURL, current, previous); err != nil {
		return nil, err
	}
	a.store, err = store.Open(ctx, store.Options{URL: cfg.Database.URL, SkipMigrations: cfg.Database.SkipMigrations,
		MaxConns: cfg.Database.MaxConns, ApplicationName: cfg.Database.ApplicationName, Timeout: cfg.DatabaseTimeout(), AuditAsync: async,
		Secret: current, PreviousSecret: previous, Retention: cfg.Retention(), Logger: a.log,
		OnAsyncAuditError: func(err error) { a.log.Error("audit row lost (audit.mode async)", "error", err) },
		TrustThresholds:   cfg.TrustThresholds(), DecisionTap: decisionTap(cfg),
		Subscriptions: subscriptions(cfg), DecisionEvents: cfg.Events.Decisions})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = a.store.Close()
		}
	}()
	var exts map[string]string
	if cfg.Policies.Extensions != "" {
		if exts, err = service.ReadExtensions(cfg.Policies.Extensions); err != nil {
			return nil, &ConfigError{Err: err}
		}
	}
	data := engine.MemoryData()
	if !cfg.Policies.LoadAll {
		data = engine.CachedData(replica.Lookup(a.store), cfg.CachedAgents())
	}
	eng, err := engine.NewWithData(ctx, data, exts)
	if err != nil {
		// A broken extension stops the sidecar at start, loudly.
		return nil, configErr("policies: %v", err)
	}
	a.svc, err = service.New(a.store, eng, service.Options{
		MaxPerUser: cfg.MaxPerUser(), TokenExpiry: cfg.TokenExpiry(), MaxMetadataBytes: cfg.MaxMetadataBytes(),
		DefaultPermissions: cfg.Agents.DefaultPermissions, Logger: a.log,
		ApprovalTTL: cfg.ApprovalTTL(), Events: eventOptions(cfg, a.links),
		PollInterval: cfg.PollInterval(), ExtensionsPath: cfg.Policies.Extensions,
		AdminKey: opts.AdminKey, Roles: pol.Roles(), Anomalies: anomalyOptions(cfg),
	})
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	a.svc.TraceArguments(cfg.Telemetry.IncludeArguments)
	if opts.AdminKey == "" {
		if err := a.bootstrapAdminKey(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.MCP.Enabled {
		if err := service.CheckScopes(cfg.MCP.Scopes); err != nil {
			return nil, &ConfigError{Err: err}
		}
		oc := cfg.MCP.OAuth()
		oc.Secret, oc.PreviousSecret = cfg.Secrets()
		if key, timeout, ok := cfg.MCP.ClaimsKey(); ok {
			hook := &claimsWebhook{url: cfg.MCP.ClaimsWebhook.URL, key: key, timeout: timeout, now: time.Now,
				// A redirect is an answer, not a place to send the signed request.
				http: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
			oc.ClaimsHook = hook.claims
		}
		if a.oauth, err = oauth.New(ctx, oc, a.store, a.svc, oauth.Options{Logger: a.log}); err != nil {
			if errors.Is(err, oauth.ErrKeyUnreadable) {
				// The wrong secret, or a rotation without previousSecret.
				return nil, &ConfigError{Err: fmt.Errorf("mcp: %w", err)}
			}
			return nil, fmt.Errorf("mcp: %w", err)
		}
		a.svc.UseAccessTokens(a.oauth, cfg.MCP.Scopes)
	}
	if a.pages, err = a.pageOptions(pol); err != nil {
		return nil, err
	}
	a.server, err = sidecar.New(a.svc, sidecar.Options{MaxBodyBytes: cfg.BodyLimit(), Version: opts.Version,
		Logger: a.log, OAuth: a.oauth, Access: pol, AllowedHosts: cfg.Server.AllowedHosts, Tracer: a.tracing.Provider(),
		Pages: a.pages, PagesOnPublic: cfg.Server.PublicAddress != ""})
	if err != nil {
		return nil, err
	}
	a.api = sidecar.Listener{Addr: cfg.Server.Address, SocketGroup: cfg.Server.SocketGroup}
	a.public = sidecar.Listener{Addr: cfg.Server.PublicAddress, Certificate: cert, Handler: a.server.PublicHandler()}
	if a.public.Addr == "" {
		a.api.Certificate = cert
	}
	// Plain HTTP always: the kubelet's probes and Prometheus on the pod
	// network, with nothing secret to carry.
	a.diag = sidecar.Listener{Addr: cfg.Server.DiagnosticAddress, Handler: a.server.DiagnosticHandler()}
	return a, nil
}

// pageOptions are the pages' options: links signed with a key derived
// from the secret (none without one), CSRF tokens keyed likewise.
func (a *App) pageOptions(pol *access.Policy) (*webui.Options, error) {
	current, _ := a.cfg.Secrets()
	var err error
	var csrf []byte
	if current.Set() {
		if csrf, err = current.Key("kavach ui csrf"); err != nil {
			return nil, err
		}
	} else {
		a.log.Warn("no secret (KAVACH_SECRET): approvals have no signed link, and the approval page refuses every link")
	}
	return &webui.Options{Service: a.svc, Access: pol, Links: a.links, CSRFKey: csrf, Logger: a.log}, nil
}

// pagesAt tells the links where the pages listen, when server.publicUrl
// does not say.
func (a *App) pagesAt(addr net.Addr, tls bool) {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	a.pages.Links.SetDefaultBase(scheme, addr)
	if a.pages.Links.Base() == "" {
		a.log.Warn("the pages listen on a Unix socket and server.publicUrl is unset: approvals have no link; set server.publicUrl to where humans reach them")
		return
	}
	a.log.Info("pages", "dashboard", a.pages.Links.Base()+"/ui/", "approvalLinks", a.pages.Links.Enabled())
}

// errStopped ends the group when a part stops on its own.
var errStopped = errors.New("stopped")

// Run serves until ctx ends or a part fails, then waits for every part
// before it returns. The API listener comes first, so /health answers
// while the data loads (/ready says when decisions are trustworthy); then,
// in one errgroup, the loader and change-feed follower, the OAuth purge,
// the public listener and the diagnostic listener. A failed load stops the sidecar, so an
// orchestrator restarts it rather than route to a sidecar never ready.
func (a *App) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	// Every part's own error is kept, not only the first: a part that
	// stops because another failed must not hide that failure.
	var mu sync.Mutex
	var errs []error
	fail := func(err error) error {
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return err
	}
	g.Go(func() error {
		err := a.server.ListenAndServe(ctx, a.api, func(addr net.Addr) {
			a.log.Info("listening", "addr", addr.String(), "tls", a.api.Certificate != nil,
				"database", store.Redact(a.cfg.Database.URL), "version", a.opts.Version)
			if a.public.Addr == "" {
				a.pagesAt(addr, a.api.Certificate != nil)
			}
			g.Go(func() error {
				if err := a.svc.Load(ctx); err != nil {
					return fail(fmt.Errorf("load agents: %w", err))
				}
				a.svc.Run(ctx)
				return nil
			})
			if a.oauth != nil {
				g.Go(func() error { purgeOAuth(ctx, a.oauth, a.log); return nil })
			}
			if a.public.Addr != "" {
				g.Go(func() error {
					err := a.server.ListenAndServe(ctx, a.public, func(addr net.Addr) {
						msg := "listening for MCP clients"
						if a.oauth == nil {
							msg = "listening for browsers"
						}
						a.log.Info(msg, "addr", addr.String(), "tls", a.public.Certificate != nil, "pages", true)
						a.pagesAt(addr, a.public.Certificate != nil)
					})
					if err != nil {
						return fail(fmt.Errorf("serve public: %w", err))
					}
					return stopped(ctx)
				})
			}
			if a.diag.Addr != "" {
				g.Go(func() error {
					err := a.server.ListenAndServe(ctx, a.diag, func(addr net.Addr) {
						a.log.Info("listening for diagnostics", "addr", addr.String(), "paths", "/health /ready /metrics")
					})
					if err != nil {
						return fail(fmt.Errorf("serve diagnostic: %w", err))
					}
					return stopped(ctx)
				})
			}
		})
		if err != nil {
			return fail(fmt.Errorf("serve: %w", err))
		}
		return stopped(ctx)
	})
	_ = g.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	a.log.Info("stopped")
	return nil
}

// stopped is what a listener that returned without error reports: nil when
// the sidecar is stopping anyway, errStopped to stop the rest otherwise.
func stopped(ctx context.Context) error {
	if ctx.Err() != nil {
		return nil
	}
	return errStopped
}

// Close releases the store, then exports the spans still queued (the
// store's last audit batches among them); call it after Run returns.
func (a *App) Close() error {
	err := a.store.Close()
	a.stopTracing()
	return err
}

// purgeOAuth deletes expired OAuth requests, codes and tokens hourly; any
// replica may, and more than one doing so is harmless.
func purgeOAuth(ctx context.Context, as *oauth.Server, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := as.Purge(ctx); err != nil && ctx.Err() == nil {
			log.Warn("oauth purge failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// decisionTap is the store's tap of committed decisions: anomaly
// detection's, none when it is off.
func decisionTap(cfg config.Config) int {
	if !cfg.AnomalyEnabled() {
		return 0
	}
	return service.DecisionTap
}

// anomalyOptions are the anomaly and trust sections as the service takes
// them.
func anomalyOptions(cfg config.Config) service.AnomalyOptions {
	r := cfg.AnomalyRules()
	return service.AnomalyOptions{Enabled: cfg.AnomalyEnabled(), HighFrequency: r.HighFrequency, DenialRate: r.DenialRate,
		MinCalls: r.MinCalls, Probing: r.Probing, ExpectedHours: r.ExpectedHours, Location: r.Location, SuspendOn: r.SuspendOn,
		Thresholds: cfg.TrustThresholds(), Window: cfg.TrustWindow()}
}

// subscriptions are the webhook endpoints as the store keeps their
// cursors.
func subscriptions(cfg config.Config) []store.Subscription {
	var out []store.Subscription
	for _, ep := range cfg.WebhookEndpoints() {
		out = append(out, store.Subscription{Endpoint: ep.ID, Types: ep.Events})
	}
	return out
}

// eventOptions configure webhook delivery.
func eventOptions(cfg config.Config, links *webui.Links) service.EventOptions {
	o := service.EventOptions{Retention: cfg.EventRetention(), ApprovalURL: links.URL}
	for _, ep := range cfg.WebhookEndpoints() {
		o.Endpoints = append(o.Endpoints, service.WebhookEndpoint{ID: ep.ID, URL: ep.URL, Events: ep.Events, Keys: ep.Keys, Legacy: ep.Legacy})
	}
	return o
}
