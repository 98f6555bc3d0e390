// Package mysqltest gives each test its own database on the real MySQL or
// MariaDB server, so tests run in parallel and leave nothing behind. A
// test that cannot reach the server fails: CI must not pass by skipping.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DefaultURL is the machine's MariaDB (user root, no password).
const DefaultURL = "mysql://root@127.0.0.1:3306/"

// ServerURL is the server to test against: KAVACH_TEST_MYSQL_URL or
// DefaultURL (its database, if any, is ignored).
func ServerURL() string {
	if u := os.Getenv("KAVACH_TEST_MYSQL_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// URL creates a fresh database (kavach_t_<random>) and returns the
// mysql:// URL of it; the database is dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	name := "kavach_t_" + random()
	Exec(t, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	t.Cleanup(func() { Exec(t, "DROP DATABASE IF EXISTS "+name) })
	u := server(t)
	u.Path = "/" + name
	return u.String()
}

// Exec runs statements on the server as its administrator, outside any
// test database.
func Exec(t testing.TB, statements ...string) {
	t.Helper()
	u := server(t)
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr = "tcp", u.Host
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Timeout = 10 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatalf("MySQL at %s: %v", u.Redacted(), err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("MySQL/MariaDB at %s is not reachable (start it with: service mariadb start): %v", u.Redacted(), err)
	}
	for _, s := range statements {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// server is ServerURL parsed, with a port.
func server(t testing.TB) *url.URL {
	t.Helper()
	u, err := url.Parse(ServerURL())
	if err != nil || u.Scheme != "mysql" || u.Host == "" {
		t.Fatalf("KAVACH_TEST_MYSQL_URL is not a mysql://user:password@host:port/ URL")
	}
	if u.Port() == "" {
		u.Host += ":3306"
	}
	return u
}

func random() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
