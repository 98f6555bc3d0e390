// Package pgtest gives each test its own schema on the real PostgreSQL
// server, so tests run in parallel and leave nothing behind. A test that
// cannot reach the server fails: CI must not pass by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the machine's PostgreSQL (trust auth, database test).
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// ServerURL is the server to test against: KAVACH_TEST_POSTGRES_URL or DefaultURL.
func ServerURL() string {
	if u := os.Getenv("KAVACH_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// URL creates a fresh schema and returns a connection URL whose
// search_path points at it; the schema is dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	base := ServerURL()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL at %s is not reachable (start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): %v", base, err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "kavach_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Role is a login role of a test's own on its schema: the test can make
// the database read-only or unreachable for it, as an outage would,
// without touching the shared server or anyone else's connections.
type Role struct {
	name string
}

// NewRole creates a role that may use the schema of schemaURL (a URL from
// URL) and returns it with the URL connecting as it. The role and what it
// owns are dropped when the test ends.
func NewRole(t testing.TB, schemaURL string) (*Role, string) {
	t.Helper()
	u, err := url.Parse(schemaURL)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	var b [6]byte
	_, _ = rand.Read(b[:])
	r := &Role{name: "kavach_role_" + hex.EncodeToString(b[:])}
	exec(t, "CREATE ROLE "+r.name+" LOGIN", "GRANT ALL ON SCHEMA "+schema+" TO "+r.name)
	t.Cleanup(func() {
		r.terminate(t)
		exec(t, "DROP OWNED BY "+r.name+" CASCADE", "DROP ROLE "+r.name)
	})
	u.User = url.User(r.name)
	return r, u.String()
}

// SetReadOnly makes the role's transactions read-only (or writable again),
// as a database switched to read-only would be: its open connections are
// ended, and new ones start with default_transaction_read_only.
func (r *Role) SetReadOnly(t testing.TB, on bool) {
	t.Helper()
	if on {
		exec(t, "ALTER ROLE "+r.name+" SET default_transaction_read_only = on")
	} else {
		exec(t, "ALTER ROLE "+r.name+" RESET default_transaction_read_only")
	}
	r.terminate(t)
}

// SetReachable refuses the role's connections (or lets them in again), as
// a server that is down would: its open connections are ended and new
// ones refused at login.
func (r *Role) SetReachable(t testing.TB, on bool) {
	t.Helper()
	if on {
		exec(t, "ALTER ROLE "+r.name+" LOGIN")
	} else {
		exec(t, "ALTER ROLE "+r.name+" NOLOGIN")
		r.terminate(t)
	}
}

// terminate ends the role's open connections.
func (r *Role) terminate(t testing.TB) {
	t.Helper()
	exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '"+r.name+"'")
}

// exec runs statements on the server as its administrator.
func exec(t testing.TB, statements ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		t.Fatalf("PostgreSQL at %s: %v", ServerURL(), err)
	}
	defer conn.Close(context.Background())
	for _, s := range statements {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}
