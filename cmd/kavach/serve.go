package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/access"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/config"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/oauth"
	"github.com/kavach-dev/kavach/service"
	"github.com/kavach-dev/kavach/sidecar"
	"github.com/kavach-dev/kavach/store"
)

var configFlag = &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML config file", EnvVars: []string{"KAVACH_CONFIG"}}

var databaseFlag = &cli.StringFlag{Name: "database", Usage: "SQLite file path, :memory:, or a postgres:// URL (default " + config.DefaultDatabase + ")", EnvVars: []string{"KAVACH_DATABASE_URL"}}

var policyDirFlag = &cli.StringFlag{Name: "policy-dir", Usage: "policy extensions (package kavach.ext): a directory of .rego files or a bundle file", EnvVars: []string{"KAVACH_POLICY_DIR"}}

var skipMigrationsFlag = &cli.BoolFlag{Name: "skip-migrations", Usage: "do not create or upgrade the schema", EnvVars: []string{"KAVACH_SKIP_MIGRATIONS"}}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the sidecar",
		Flags: []cli.Flag{
			configFlag, databaseFlag, skipMigrationsFlag,
			&cli.StringFlag{Name: "addr", Usage: "listen address (default " + config.DefaultAddress + ")", EnvVars: []string{"KAVACH_ADDR"}},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", EnvVars: []string{"KAVACH_LOG_LEVEL"}},
			policyDirFlag,
			&cli.StringFlag{Name: "public-addr", Usage: "second listener serving only the OAuth endpoints MCP clients reach (mcp.enabled)", EnvVars: []string{"KAVACH_PUBLIC_ADDR"}},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate: serve HTTPS on the public listener, or on --addr if there is none", EnvVars: []string{"KAVACH_TLS_CERT"}},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM private key for --tls-cert", EnvVars: []string{"KAVACH_TLS_KEY"}},
			&cli.StringFlag{Name: "socket-group", Usage: "group (name or ID) of the Unix socket, with --addr unix:///path", EnvVars: []string{"KAVACH_SOCKET_GROUP"}},
			&cli.StringFlag{Name: "admin-key-file", Usage: "where the first start writes the bootstrap admin key (default ~/.config/kavach/admin-key)", EnvVars: []string{"KAVACH_ADMIN_KEY_FILE"}},
			&cli.StringSliceFlag{Name: "allowed-host", Usage: "a host name requests may carry in Host, besides localhost and IP addresses (repeatable)", EnvVars: []string{"KAVACH_ALLOWED_HOSTS"}},
		},
		Action: serve,
	}
}

// loadConfig reads the config file, then lets flags and env vars override it.
func loadConfig(c *cli.Context) (config.Config, error) {
	cfg := config.Default()
	if path := c.String("config"); path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return cfg, err
		}
	}
	// An empty env var (KAVACH_DATABASE_URL=) counts as unset.
	if v := c.String("database"); v != "" {
		cfg.Database.URL = v
	}
	if c.IsSet("skip-migrations") {
		cfg.Database.SkipMigrations = c.Bool("skip-migrations")
	}
	if v := c.String("addr"); v != "" {
		cfg.Server.Address = v
	}
	if v := c.String("log-level"); v != "" {
		cfg.Log.Level = v
	}
	if v := c.String("policy-dir"); v != "" {
		cfg.Policies.Extensions = v
	}
	if v := c.StringSlice("allowed-host"); len(v) > 0 {
		// The app disables urfave's own splitting (for -p r=read,write), so
		// KAVACH_ALLOWED_HOSTS=a,b is split here.
		cfg.Server.AllowedHosts = nil
		for _, h := range v {
			for _, part := range strings.Split(h, ",") {
				if part = strings.TrimSpace(part); part != "" {
					cfg.Server.AllowedHosts = append(cfg.Server.AllowedHosts, part)
				}
			}
		}
	}
	for flag, dst := range map[string]*string{"public-addr": &cfg.Server.PublicAddress, "tls-cert": &cfg.Server.TLSCert,
		"tls-key": &cfg.Server.TLSKey, "socket-group": &cfg.Server.SocketGroup, "admin-key-file": &cfg.Server.AdminKeyFile} {
		if v := c.String(flag); v != "" {
			*dst = v
		}
	}
	// A secret is better kept out of the file.
	if v := os.Getenv("KAVACH_MCP_SIGNING_SECRET"); v != "" {
		cfg.MCP.SigningSecret = v
	}
	return cfg, cfg.Validate()
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config; empty is info
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func serve(c *cli.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if cfg.Server.PublicAddress != "" && !cfg.MCP.Enabled {
		return cli.Exit("--public-addr serves the OAuth endpoints: it needs mcp.enabled", 2)
	}
	var cert *tls.Certificate
	if cfg.Server.TLSCert != "" {
		// Read now: a missing or bad file stops the sidecar before it
		// listens anywhere, as any other bad setting does.
		pair, err := tls.LoadX509KeyPair(cfg.Server.TLSCert, cfg.Server.TLSKey)
		if err != nil {
			return cli.Exit(fmt.Sprintf("server.tlsCert and server.tlsKey (--tls-cert, --tls-key): %v", err), 2)
		}
		cert = &pair
	}
	if g := cfg.Server.SocketGroup; g != "" {
		if _, err := sidecar.GroupID(g); err != nil {
			return cli.Exit(fmt.Sprintf("server.socketGroup (--socket-group): %v", err), 2)
		}
	}
	adminKey := os.Getenv("KAVACH_ADMIN_KEY")
	if adminKey != "" && len(adminKey) < service.MinAdminKeyLen {
		return cli.Exit(fmt.Sprintf("KAVACH_ADMIN_KEY must be at least %d characters", service.MinAdminKeyLen), 2)
	}
	pol, err := access.New(c.Context)
	if err != nil {
		return fmt.Errorf("policies/api: %w", err)
	}
	expiry, _ := config.ParseExpiry(cfg.Agents.TokenExpiry)  // validated above
	poll, _ := time.ParseDuration(cfg.Database.PollInterval) // validated above; "" is 0: the default
	log := newLogger(cfg.Log.Level)
	ctx := c.Context

	if sidecar.AuthOff {
		log.Warn("this build has authentication OFF (-tags kavach_noauth): every route is open; it exists only to measure what authentication costs")
	}
	async := cfg.Audit.Mode == "async"
	if async {
		log.Warn("audit.mode is async: decisions are answered before their audit rows commit, and a crash loses the rows still queued")
	}
	st, err := store.Open(ctx, store.Options{URL: cfg.Database.URL, SkipMigrations: cfg.Database.SkipMigrations,
		MaxConns: cfg.Database.MaxConns, ApplicationName: cfg.Database.ApplicationName, AuditAsync: async,
		OnAsyncAuditError: func(err error) { log.Error("audit row lost (audit.mode async)", "error", err) }})
	if err != nil {
		return err
	}
	defer st.Close()
	exts, err := readExtensions(cfg)
	if err != nil {
		return err
	}
	eng, err := engine.New(ctx, exts)
	if err != nil {
		// A broken extension stops the sidecar at start, loudly.
		return cli.Exit(fmt.Sprintf("policies: %v", err), 2)
	}
	svc, err := service.New(st, eng, service.Options{
		MaxPerUser: cfg.MaxPerUser(), TokenExpiry: expiry,
		DefaultPermissions: cfg.Agents.DefaultPermissions, Logger: log,
		ApprovalTTL: time.Duration(cfg.Approval.TTL) * time.Second, WebhookURL: cfg.Approval.WebhookURL,
		PollInterval: poll, ExtensionsPath: cfg.Policies.Extensions,
		AdminKey: adminKey, Roles: pol.Roles(),
	})
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if adminKey == "" {
		if err := bootstrapAdminKey(ctx, svc, cfg.Server.AdminKeyFile, log); err != nil {
			return err
		}
	}
	var as *oauth.Server
	if cfg.MCP.Enabled {
		if err := service.CheckScopes(cfg.MCP.Scopes); err != nil {
			return cli.Exit(err.Error(), 2)
		}
		if as, err = oauth.New(ctx, cfg.MCP.OAuth(), st, svc, oauth.Options{Logger: log}); err != nil {
			return fmt.Errorf("mcp: %w", err)
		}
		svc.UseAccessTokens(as, cfg.MCP.Scopes)
	}
	srv, err := sidecar.New(svc, sidecar.Options{MaxBodyBytes: cfg.Server.MaxBodyBytes, Version: version, Logger: log, OAuth: as,
		Access: pol, AllowedHosts: cfg.Server.AllowedHosts})
	if err != nil {
		return err
	}
	apiL := sidecar.Listener{Addr: cfg.Server.Address, SocketGroup: cfg.Server.SocketGroup}
	public := sidecar.Listener{Addr: cfg.Server.PublicAddress, Certificate: cert, Handler: srv.PublicHandler()}
	if public.Addr == "" {
		apiL.Certificate = cert
	}
	// Listen first so /health answers while the data loads; /ready says
	// when decisions are trustworthy. A failed load stops the sidecar, so an
	// orchestrator restarts it rather than routing to a sidecar never ready.
	// Everything started here is waited for before the store closes: the
	// public listener's requests, the loader and the janitors.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	loadErr := make(chan error, 1)
	publicErr := make(chan error, 1)
	err = srv.ListenAndServe(ctx, apiL, func(addr net.Addr) {
		log.Info("listening", "addr", addr.String(), "tls", apiL.Certificate != nil, "database", store.Redact(cfg.Database.URL), "version", version)
		wg.Go(func() {
			if err := svc.Load(ctx); err != nil {
				loadErr <- err
				cancel()
				return
			}
			svc.Run(ctx)
		})
		if as != nil {
			wg.Go(func() { purgeOAuth(ctx, as, log) })
		}
		if public.Addr != "" {
			wg.Go(func() {
				publicErr <- srv.ListenAndServe(ctx, public, func(addr net.Addr) {
					log.Info("listening for MCP clients", "addr", addr.String(), "tls", public.Certificate != nil)
				})
				cancel()
			})
		}
	})
	cancel()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	select {
	case err := <-publicErr:
		if err != nil {
			return fmt.Errorf("serve public: %w", err)
		}
	default:
	}
	select {
	case err := <-loadErr:
		return fmt.Errorf("load agents: %w", err)
	default:
	}
	log.Info("stopped")
	return nil
}

// bootstrapAdminKey makes a fresh sidecar closed yet usable: when the
// database holds no API key, it creates an admin key and writes it to a
// 0600 file that the CLI reads by default (as Vault's dev server does with
// ~/.vault-token). The key is shown on stdout only when stdout is a
// terminal: a container's stdout is its log, and keys are never logged.
// With neither a terminal nor a writable file, the sidecar refuses to start
// rather than make a key nobody can read.
func bootstrapAdminKey(ctx context.Context, svc *service.Service, file string, log *slog.Logger) error {
	if keys, err := svc.ListKeys(ctx); err != nil {
		return fmt.Errorf("bootstrap admin key: %w", err)
	} else if len(keys) > 0 {
		return nil
	}
	if file == "" {
		file = client.AdminKeyFile()
	}
	fi, err := os.Stdout.Stat()
	terminal := err == nil && fi.Mode()&os.ModeCharDevice != 0
	if werr := canWrite(file); werr != nil && !terminal {
		return cli.Exit(fmt.Sprintf("no admin credential: set KAVACH_ADMIN_KEY (32+ characters), or let the first start write "+
			"its admin key to KAVACH_ADMIN_KEY_FILE (%q: %v)", file, werr), 2)
	}
	secret, k, err := svc.BootstrapAdminKey(ctx)
	if err != nil {
		return fmt.Errorf("bootstrap admin key: %w", err)
	}
	if secret == "" {
		return nil // another replica made it meanwhile
	}
	written := ""
	if err := writeSecretFile(file, secret); err != nil {
		log.Error("bootstrap admin key not written to its file", "file", file, "error", err)
	} else {
		written = file
	}
	log.Info("bootstrap admin key created", "key", k.ID, "file", written)
	switch {
	case terminal:
		fmt.Printf("Kavach created an admin API key. It is shown once and stored only as a hash:\n\n    %s\n\n", secret)
		if written != "" {
			fmt.Printf("It is also in %s (mode 0600), where the kavach CLI finds it.\n", written)
		}
	case written != "":
		fmt.Printf("Kavach created an admin API key in %s (mode 0600), where the kavach CLI finds it.\n"+
			"It is not printed here: this output is not a terminal, and may be kept in logs.\n", written)
	default:
		fmt.Printf("Kavach created an admin API key, but could not write it to %s: set KAVACH_ADMIN_KEY and restart to get in.\n", file)
	}
	fmt.Printf("Create keys with less power with: kavach keys create --name my-app --role decider\n")
	return nil
}

// canWrite reports whether a secret file can be written at path.
func canWrite(path string) error {
	if path == "" {
		return errors.New("no home directory")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".kavach-probe-*")
	if err != nil {
		return err
	}
	_ = f.Close()
	return os.Remove(f.Name())
}

// writeSecretFile writes secret to a new file only its owner can read. A
// file already there (another database's key) is kept beside it as
// <path>.old-<unix time>, never lost.
func writeSecretFile(path, secret string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		if err := os.Rename(path, fmt.Sprintf("%s.old-%d", path, time.Now().Unix())); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // G304: beside the admin key file the operator configured
	if err != nil {
		return err
	}
	_, err = f.WriteString(secret + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
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

// readExtensions reads the configured policy extensions, if any; a bad one
// is a configuration error (exit 2).
func readExtensions(cfg config.Config) (map[string]string, error) {
	if cfg.Policies.Extensions == "" {
		return nil, nil
	}
	exts, err := service.ReadExtensions(cfg.Policies.Extensions)
	if err != nil {
		return nil, cli.Exit(err.Error(), 2)
	}
	return exts, nil
}
