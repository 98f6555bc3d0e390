package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kavach-dev/kavach/store"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "create or upgrade the database schema, then exit",
		Flags: []cli.Flag{configFlag, databaseFlag},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			st, err := store.Open(c.Context, store.Options{URL: cfg.Database.URL, MaxConns: 2, Secret: currentSecret(cfg), Timeout: cfg.DatabaseTimeout()})
			if err != nil {
				return err
			}
			defer st.Close()
			v, err := st.SchemaVersion(c.Context)
			if err != nil {
				return err
			}
			fmt.Printf("schema of %s is at version %d\n", store.Redact(cfg.Database.URL), v)
			return nil
		},
	}
}

// existingDatabase refuses a SQLite path where no database is, for the
// commands that read one (audit verify, bundle build): opening it would
// create an empty database and report on nothing, as if all were well.
func existingDatabase(url string) error {
	if store.IsPostgres(url) || store.IsMySQL(url) || url == ":memory:" || strings.HasPrefix(url, "file:") {
		return nil
	}
	if _, err := os.Stat(url); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no database at %s: give the sidecar's with --database (or KAVACH_DATABASE_URL)", url)
	}
	return nil
}
