package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kavach-dev/kavach/internal/pgtest"
)

// What is PostgreSQL's own, beyond the conformance suite (TestPostgres).

func TestPostgresStoreHasNoFile(t *testing.T) {
	t.Parallel()
	s := openStore(t, Options{URL: pgtest.URL(t)})
	if p := s.Path(); p != "" {
		t.Errorf("Path() on PostgreSQL = %q; want \"\"", p)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping() = %v", err)
	}
	if !s.CanListen() {
		t.Error("CanListen() on PostgreSQL = false; want true")
	}
}

// The listener reports commits, and after its connection is killed it
// reconnects and reports again.
func TestListenSurvivesAKilledConnection(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	app := uniqueApp()
	s, err := Open(t.Context(), Options{URL: url, ApplicationName: app})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	notes := make(chan struct{}, 100)
	var failures atomic.Int32
	go s.Listen(ctx, func() { notes <- struct{}{} }, func(error) { failures.Add(1) })
	wait := func(what string) {
		t.Helper()
		select {
		case <-notes:
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification %s", what)
		}
	}
	wait("on connect")
	if _, err := s.CreateAgent(t.Context(), newAgent("u", "h1"), 0); err != nil {
		t.Fatal(err)
	}
	wait("after a write")

	conn, err := pgx.Connect(t.Context(), pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed int
	if err := conn.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1`, app+"-listener").Scan(&killed); err != nil || killed == 0 {
		t.Fatalf("terminated %d listener connections: %v", killed, err)
	}
	wait("on reconnect")
	if failures.Load() == 0 {
		t.Error("the broken connection was not reported")
	}
	if _, err := s.CreateAgent(t.Context(), newAgent("u", "h2"), 0); err != nil {
		t.Fatal(err)
	}
	wait("after a write on the new connection")
}

// Connections pooled while the server ended their sessions (a restart, a
// failover, an administrator's pg_terminate_backend) cost no write: the
// transaction that draws one begins again on the next connection, within
// the second in which neither pool pings a connection before reuse.
func TestPostgresWritesSurviveEndedSessions(t *testing.T) {
	t.Parallel()
	app := uniqueApp()
	s := openStore(t, Options{URL: pgtest.URL(t), ApplicationName: app, MaxConns: 4})
	fill := func() {
		t.Helper()
		var held []*sql.Conn
		for range 4 {
			c, err := s.w.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if err := c.PingContext(t.Context()); err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
		}
		for _, c := range held {
			_ = c.Close()
		}
	}
	admin, err := pgx.Connect(t.Context(), pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	for round := range 3 {
		fill()
		var ended int
		if err := admin.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1`, app).Scan(&ended); err != nil || ended == 0 {
			t.Fatalf("ended %d sessions: %v", ended, err)
		}
		time.Sleep(50 * time.Millisecond) // the server has closed them
		for i := range 4 {
			if _, err := s.CreateAgent(t.Context(), newAgent("u", fmt.Sprintf("r%d-%d", round, i)), 0); err != nil {
				t.Fatalf("round %d, write %d after %d sessions ended: %v", round, i, ended, err)
			}
		}
	}
}

// uniqueApp is an application_name no other test (of any process) uses,
// so that ending its sessions ends no one else's. (t.TempDir's base name,
// used before, is "001" in every test.)
func uniqueApp() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "kavach-test-" + hex.EncodeToString(b[:])
}
