// Package mysqltest gives each test its own database on the real MySQL or
// MariaDB server, so tests run in parallel and leave nothing behind. A
// test that cannot reach the server fails: CI must not pass by skipping.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strconv"
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
	db := admin(t)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range statements {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// KillConnections ends every session on the database of dbURL (a URL from
// URL), as a server restart would, and returns how many it ended.
func KillConnections(t testing.TB, dbURL string) int {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return killWhere(t, func(_, db string) bool { return db == u.Path[1:] })
}

// killWhere ends the sessions of the server's process list whose user
// and database match, and returns how many it ended.
func killWhere(t testing.TB, match func(user, db string) bool) int {
	t.Helper()
	db := admin(t)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := sessions(ctx, t, db, match)
	killed := 0
	for _, id := range ids {
		_, err := db.ExecContext(ctx, `KILL `+strconv.FormatInt(id, 10))
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1094 { // ER_NO_SUCH_THREAD: it ended meanwhile
			continue
		}
		if err != nil {
			t.Fatalf("kill connection %d: %v", id, err)
		}
		killed++
	}
	return killed
}

// sessions are the IDs of the server's sessions whose user and database
// match.
func sessions(ctx context.Context, t testing.TB, db *sql.DB, match func(user, db string) bool) []int64 {
	t.Helper()
	rows, err := db.QueryContext(ctx, `SELECT ID, USER, COALESCE(DB, '') FROM information_schema.PROCESSLIST`)
	if err != nil {
		t.Fatalf("list connections: %v", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		var user, name string
		if err := rows.Scan(&id, &user, &name); err != nil {
			t.Fatalf("list connections: %v", err)
		}
		if match(user, name) {
			ids = append(ids, id)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("list connections: %v", err)
	}
	return ids
}

// admin connects to the server as its administrator.
func admin(t testing.TB) *sql.DB {
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		t.Fatalf("MySQL/MariaDB at %s is not reachable (start it with: service mariadb start): %v", u.Redacted(), err)
	}
	return db
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

// User is a login of a test's own on its database: the test can make the
// database unreachable for it, as an outage would, without touching the
// shared server or anyone else's connections.
type User struct {
	name string
}

// NewUser creates a user with every privilege on the database of dbURL (a
// URL from URL) and returns it with the URL connecting as it. The user is
// dropped when the test ends.
func NewUser(t testing.TB, dbURL string) (*User, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	usr := &User{name: "kavach_u_" + random()}
	Exec(t, "CREATE USER '"+usr.name+"'@'%' IDENTIFIED BY 'pw'",
		"GRANT ALL ON "+u.Path[1:]+".* TO '"+usr.name+"'@'%'")
	t.Cleanup(func() {
		usr.kill(t)
		Exec(t, "DROP USER IF EXISTS '"+usr.name+"'@'%'")
	})
	u.User = url.UserPassword(usr.name, "pw")
	return usr, u.String()
}

// SetReachable refuses the user's connections (or lets them in again), as
// a server that is down would: the account is locked and its open
// connections are ended.
func (u *User) SetReachable(t testing.TB, on bool) {
	t.Helper()
	if on {
		Exec(t, "ALTER USER '"+u.name+"'@'%' ACCOUNT UNLOCK")
		return
	}
	Exec(t, "ALTER USER '"+u.name+"'@'%' ACCOUNT LOCK")
	u.kill(t)
}

// kill ends the user's open connections.
func (u *User) kill(t testing.TB) {
	t.Helper()
	killWhere(t, func(user, _ string) bool { return user == u.name })
}

// DSN is go-sql-driver/mysql's DSN of dbURL (a URL from URL), for a test
// that reads the database with database/sql itself.
func DSN(t testing.TB, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Host, u.Path[1:]
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	return cfg.FormatDSN()
}
