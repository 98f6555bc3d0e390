package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/service/kavachos"
	"github.com/kavach-dev/kavach/store"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "bring another system's agents, tokens, permissions and audit history into the database, then exit",
		Description: "kavach import --kavachos kavach.db --database kavach-new.db\n\n" +
			"reads a KavachOS v0.2.1 database and writes its agents (with their IDs and token hashes, so that every\n" +
			"issued token keeps working), permissions and constraints, delegations, pending approvals and audit history\n" +
			"into the Kavach database, migrating it first. Running it again adds nothing. Where Kavach decides\n" +
			"differently, it translates exactly when it can and otherwise keeps Kavach's stricter meaning; every such\n" +
			"permission is listed (--report FILE writes them all as JSON). See docs/import.md.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "kavachos", Usage: "the KavachOS database: a SQLite file path, a postgres:// URL or a mysql://user:password@host:port/database URL", Required: true},
			configFlag, databaseFlag,
			&cli.BoolFlag{Name: "dry-run", Usage: "write nothing: report what the import would do"},
			&cli.StringFlag{Name: "report", Usage: "write the report, with every difference found, to this file as JSON"},
			&cli.StringFlag{Name: "timezone", Usage: "the IANA time zone the KavachOS server ran in, which its time windows were read in (default UTC)"},
			&cli.IntFlag{Name: "batch", Usage: "agents per transaction (audit rows: five times as many)", Value: 5000},
		},
		Action: importAction,
	}
}

func importAction(c *cli.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	src, err := kavachos.OpenSource(c.Context, c.String("kavachos"))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer src.Close()
	dryRun := c.Bool("dry-run")
	// A batch is one transaction: it may take longer than a request's
	// call to the database (database.timeout).
	opts := store.Options{URL: cfg.Database.URL, MaxConns: 4, Secret: currentSecret(cfg), Timeout: max(cfg.DatabaseTimeout(), time.Minute),
		TrustThresholds: cfg.TrustThresholds()}
	if dryRun {
		if opts, err = dryRunTarget(c.Context, opts); err != nil {
			return err
		}
	}
	st, err := store.Open(c.Context, opts)
	if err != nil {
		return err
	}
	defer st.Close()
	var findings *os.File
	if path := c.String("report"); path != "" {
		if findings, err = os.Create(path); err != nil { //nolint:gosec // G304: the file the user named
			return err
		}
		defer findings.Close()
	}
	fi, statErr := os.Stderr.Stat()
	tty := statErr == nil && fi.Mode()&os.ModeCharDevice != 0
	iopts := kavachos.Options{DryRun: dryRun, BatchSize: c.Int("batch"), TimeZone: c.String("timezone"),
		Progress: kavachos.NewProgress(os.Stderr, tty)}
	if findings != nil {
		iopts.Findings = findings
	}
	report, err := kavachos.Import(c.Context, src, st, store.Redact(c.String("kavachos")), iopts)
	if report != nil {
		report.Print(os.Stdout)
	}
	if err != nil {
		return err
	}
	if findings != nil {
		return findings.Close()
	}
	return nil
}

// dryRunTarget is where a dry run imports: the database itself, read
// only, when it has Kavach's schema; otherwise (it does not exist yet, or
// was never migrated) an empty database in memory, since a dry run
// changes no schema.
func dryRunTarget(ctx context.Context, opts store.Options) (store.Options, error) {
	if _, err := os.Stat(opts.URL); !store.IsPostgres(opts.URL) && errors.Is(err, fs.ErrNotExist) {
		opts.URL = ":memory:"
		return opts, nil
	}
	probe := opts
	probe.Verify = true
	st, err := store.Open(ctx, probe)
	if err != nil {
		return opts, err
	}
	v, verr := st.SchemaVersion(ctx)
	if err := st.Close(); err != nil {
		return opts, err
	}
	if verr != nil || v == 0 {
		opts.URL = ":memory:"
		return opts, nil
	}
	opts.SkipMigrations = true
	return opts, nil
}
