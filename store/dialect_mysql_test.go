package store

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/internal/mysqltest"
)

// What is MySQL's own, beyond the conformance suite (TestMySQL).

// A mysql:// URL becomes the driver's configuration with what the store
// needs forced, whatever the URL says; a bad URL is an error that never
// repeats the password.
func TestMySQLConfig(t *testing.T) {
	t.Parallel()
	cfg, err := mysqlConfig("mysql://kavach:p%40ss%2Fw0rd@db.internal/kavach?tls=skip-verify&multiStatements=false&clientFoundRows=false&parseTime=true&allowAllFiles=true", 2500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for what, ok := range map[string]bool{
		"user": cfg.User == "kavach", "password decoded": cfg.Passwd == "p@ss/w0rd",
		"default port": cfg.Addr == "db.internal:3306", "database": cfg.DBName == "kavach", "tcp": cfg.Net == "tcp",
		"tls from the URL":     cfg.TLSConfig == "skip-verify",
		"multiStatements":      cfg.MultiStatements,
		"clientFoundRows":      cfg.ClientFoundRows,
		"parseTime off":        !cfg.ParseTime,
		"allowAllFiles off":    !cfg.AllowAllFiles,
		"utf8mb4_bin":          cfg.Collation == "utf8mb4_bin",
		"strict sql_mode":      strings.Contains(cfg.Params["sql_mode"], "TRADITIONAL"),
		"lock wait 3s":         cfg.Params["innodb_lock_wait_timeout"] == "3",
		"connect timeout 10 s": cfg.Timeout == 10*time.Second,
	} {
		if !ok {
			t.Errorf("mysqlConfig: %s not as wanted: %+v", what, cfg)
		}
	}
	for _, bad := range []string{"mysql://u:s3cret@/db", "mysql://u:s3cret@h:3306", "mysql://u:s3cret@h/a/b", "mysql://u:s3cret@h/db?timeout=x"} {
		_, err := mysqlConfig(bad, time.Second)
		if err == nil {
			t.Errorf("mysqlConfig(%q) = nil; want an error", bad)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("mysqlConfig(%q) = %v: repeats the password", bad, err)
		}
	}
	if _, err := Open(t.Context(), Options{URL: "mysql://u:s3cret@h/a/b"}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open(a bad mysql:// URL) = %v; want an error that does not repeat the password", err)
	}
}

// Every connection of the pool runs READ COMMITTED with the strict
// sql_mode, and the store has no file and nothing to listen to.
func TestMySQLSessions(t *testing.T) {
	t.Parallel()
	s := openStore(t, Options{URL: mysqltest.URL(t)})
	if p := s.Path(); p != "" || s.CanListen() {
		t.Errorf("Path() = %q, CanListen() = %v on MySQL; want \"\", false", p, s.CanListen())
	}
	// Several connections at once, so that more than the first is asked.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			tx, err := s.r.BeginTx(t.Context(), nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer func() { _ = tx.Rollback() }()
			var name, isolation, mode string
			// MariaDB 10.11 says tx_isolation, MySQL 8 transaction_isolation.
			if err := tx.QueryRowContext(t.Context(), `SHOW SESSION VARIABLES WHERE Variable_name IN ('tx_isolation', 'transaction_isolation')`).Scan(&name, &isolation); err != nil {
				t.Error(err)
				return
			}
			if err := tx.QueryRowContext(t.Context(), `SELECT @@SESSION.sql_mode`).Scan(&mode); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(50 * time.Millisecond) // hold the connection: the others take their own
			if isolation != "READ-COMMITTED" || !strings.Contains(mode, "STRICT_ALL_TABLES") || !strings.Contains(mode, "ANSI_QUOTES") {
				t.Errorf("session: %s = %s, sql_mode = %s; want READ-COMMITTED, strict, ANSI_QUOTES", name, isolation, mode)
			}
		})
	}
	wg.Wait()
}

// Two stores migrating one fresh database at once migrate it once: the
// migrations' session lock (GET_LOCK) holds the second back until the
// first is done, and it then finds every migration applied.
func TestMySQLConcurrentMigrations(t *testing.T) {
	t.Parallel()
	url := mysqltest.URL(t)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			s, err := Open(t.Context(), Options{URL: url})
			if err != nil {
				t.Errorf("Open = %v", err)
				return
			}
			_ = s.Close()
		})
	}
	wg.Wait()
	s := openStore(t, Options{URL: url})
	var n, latest int
	if err := s.r.QueryRowContext(t.Context(), `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &latest); err != nil {
		t.Fatal(err)
	}
	ms, err := readMigrations(s.dialect.migrations())
	if err != nil {
		t.Fatal(err)
	}
	if want := ms[len(ms)-1].version; n != len(ms) || latest != want {
		t.Errorf("schema_migrations after three concurrent starts: %d rows up to version %d; want %d up to %d", n, latest, len(ms), want)
	}
}
