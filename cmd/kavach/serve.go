package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/app"
	"github.com/kavach-dev/kavach/config"
)

var configFlag = &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "YAML config file", EnvVars: []string{"KAVACH_CONFIG"}}

var databaseFlag = &cli.StringFlag{Name: "database", Usage: "SQLite file path, :memory:, or a postgres:// or mysql:// URL (default " + config.DefaultDatabase + ")", EnvVars: []string{"KAVACH_DATABASE_URL"}}

var policyDirFlag = &cli.StringFlag{Name: "policy-dir", Usage: "policy extensions (package kavach.ext): a directory of .rego files or a bundle file", EnvVars: []string{"KAVACH_POLICY_DIR"}}

var databaseTimeoutFlag = &cli.StringFlag{Name: "database-timeout", Usage: "bound of every database call, from 100ms to 1m (default 5s): past it a decision is 503 audit_unavailable", EnvVars: []string{"KAVACH_DATABASE_TIMEOUT"}}

var skipMigrationsFlag = &cli.BoolFlag{Name: "skip-migrations", Usage: "do not create or upgrade the schema", EnvVars: []string{"KAVACH_SKIP_MIGRATIONS"}}

// serveEnv are the settings serve reads from the environment only, never
// from a flag (which ps and shell history would show): its help lists them.
var serveEnv = [][2]string{
	{"KAVACH_ADMIN_KEY", "an admin credential (32+ characters), accepted as given and never stored; with it, no bootstrap key is made"},
	{"KAVACH_SECRET", "overrides secret (32+ characters): signs audit checkpoints, encrypts private keys at rest"},
	{"KAVACH_SECRET_PREVIOUS", "overrides previousSecret: the secret before a rotation"},
	{"KAVACH_MCP_SIGNING_SECRET", "overrides mcp.signingSecret"},
}

func serveDescription() string {
	var b strings.Builder
	b.WriteString("Settings come from the config file (-c), then flags and their environment variables. Read from the environment only:\n")
	for _, e := range serveEnv {
		fmt.Fprintf(&b, "\n   $%s\n      %s", e[0], e[1])
	}
	return b.String()
}

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:        "serve",
		Usage:       "run the sidecar",
		Description: serveDescription(),
		Flags: []cli.Flag{
			configFlag, databaseFlag, databaseTimeoutFlag, skipMigrationsFlag,
			&cli.StringFlag{Name: "addr", Usage: "listen address (default " + config.DefaultAddress + ")", EnvVars: []string{"KAVACH_ADDR"}},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", EnvVars: []string{"KAVACH_LOG_LEVEL"}},
			policyDirFlag,
			&cli.StringFlag{Name: "public-url", Usage: "base URL humans reach the approval pages and dashboard at, e.g. https://kavach.example.com (server.publicUrl)", EnvVars: []string{"KAVACH_PUBLIC_URL"}},
			&cli.StringFlag{Name: "public-addr", Usage: "second listener serving only the approval pages, the dashboard and (mcp.enabled) the OAuth endpoints, never the API", EnvVars: []string{"KAVACH_PUBLIC_ADDR"}},
			&cli.StringFlag{Name: "diagnostic-addr", Usage: "TCP listener serving only /health, /ready and /metrics, without a credential, for probes and Prometheus (e.g. 0.0.0.0:9400)", EnvVars: []string{"KAVACH_DIAGNOSTIC_ADDR"}},
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
	if v := c.String("database-timeout"); v != "" {
		cfg.Database.Timeout = config.Duration(v)
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
	for flag, dst := range map[string]*string{"public-url": &cfg.Server.PublicURL, "public-addr": &cfg.Server.PublicAddress, "diagnostic-addr": &cfg.Server.DiagnosticAddress, "tls-cert": &cfg.Server.TLSCert,
		"tls-key": &cfg.Server.TLSKey, "socket-group": &cfg.Server.SocketGroup, "admin-key-file": &cfg.Server.AdminKeyFile} {
		if v := c.String(flag); v != "" {
			*dst = v
		}
	}
	// A secret is better kept out of the file.
	if v := os.Getenv("KAVACH_MCP_SIGNING_SECRET"); v != "" {
		cfg.MCP.SigningSecret = v
	}
	if v := os.Getenv("KAVACH_SECRET"); v != "" {
		cfg.Secret = v
	}
	if v := os.Getenv("KAVACH_SECRET_PREVIOUS"); v != "" {
		cfg.PreviousSecret = v
	}
	return cfg, cfg.Validate()
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config; empty is info
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l, ReplaceAttr: app.LogTimes}))
}

func serve(c *cli.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	fi, statErr := os.Stdout.Stat()
	terminal := statErr == nil && fi.Mode()&os.ModeCharDevice != 0
	a, err := app.New(c.Context, cfg, app.Options{Version: version, AdminKey: os.Getenv("KAVACH_ADMIN_KEY"),
		Logger: newLogger(cfg.Log.Level), Terminal: terminal})
	var ce *app.ConfigError
	if errors.As(err, &ce) {
		return cli.Exit(ce.Error(), 2)
	}
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(c.Context)
}
