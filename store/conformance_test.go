package store

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/internal/mysqltest"
	"github.com/kavach-dev/kavach/internal/pgtest"
)

// The storage conformance suite: the contract every backend keeps,
// organised by concern (as OpenFGA's storage test.RunAllTests). Each
// concern lives in the test file beside its code (agents_test.go for
// agents.go, …) as a list of storeTests; RunAllTests runs them all on one
// backend, and TestSQLiteFile, TestSQLiteMemory, TestPostgres and
// TestMySQL run it on each. Every test opens its own database (a SQLite
// file in t.TempDir(), a PostgreSQL schema from pgtest, a MySQL database
// from mysqltest), so all run in parallel, and its own clock, which moves
// only with c.Add.

func TestSQLiteFile(t *testing.T) {
	t.Parallel()
	RunAllTests(t, backend{name: "sqlite-file", shared: true,
		url: func(t *testing.T) string { return filepath.Join(t.TempDir(), "kavach.db") }})
}

func TestSQLiteMemory(t *testing.T) {
	t.Parallel()
	RunAllTests(t, backend{name: "sqlite-memory", url: func(*testing.T) string { return ":memory:" }})
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	RunAllTests(t, backend{name: "postgres", shared: true, url: func(t *testing.T) string { return pgtest.URL(t) }})
}

func TestMySQL(t *testing.T) {
	t.Parallel()
	RunAllTests(t, backend{name: "mysql", shared: true, polls: true, url: func(t *testing.T) string { return mysqltest.URL(t) }})
}

// RunAllTests runs the storage contract on b, one subtest per concern and
// one per test within it.
func RunAllTests(t *testing.T, b backend) {
	for _, concern := range []struct {
		name  string
		tests []storeTest
	}{
		{"Schema", schemaTests()},
		{"Agents", agentTests()},
		{"Delegations", delegationTests()},
		{"Approvals", approvalTests()},
		{"RateEvents", rateEventTests()},
		{"Audit", auditTests()},
		{"Events", eventTests()},
		{"Keys", keyTests()},
		{"Paging", pagingTests()},
		{"ChangeFeed", changeFeedTests()},
		{"OAuth", oauthTests()},
		{"Chain", chainTests()},
		{"Anomalies", anomalyTests()},
		{"Outbox", outboxTests()},
		{"Import", importTests()},
		{"PolicyData", policyDataTests()},
	} {
		t.Run(concern.name, func(t *testing.T) {
			t.Parallel()
			for _, st := range concern.tests {
				if st.replicas && !b.shared {
					continue // a database per store: nothing to share
				}
				t.Run(st.name, func(t *testing.T) {
					t.Parallel()
					if st.opens != nil {
						st.opens(t, b)
						return
					}
					s, c := b.open(t)
					st.fn(t, s, c)
				})
			}
		})
	}
}

// storeTest is one test of the contract: fn runs on a fresh store and its
// clock, or opens (instead of fn) opens stores itself with b: with options
// of its own, or several on one database as replicas do (then replicas is
// set, and the test runs only where b.shared).
type storeTest struct {
	name     string
	fn       func(t *testing.T, s *Store, c *clock)
	opens    func(t *testing.T, b backend)
	replicas bool
}

// backend is one kind of database the suite runs on.
type backend struct {
	name string
	// url makes a fresh, empty database for the test and returns its URL.
	url func(t *testing.T) string
	// shared: stores opened on one URL share the database, as replicas do
	// (not so ":memory:", a database per store).
	shared bool
	// polls: the engine pushes no notifications (MySQL): replicas poll.
	polls bool
}

// open opens a store on a fresh database, with a clock of its own.
func (b backend) open(t *testing.T) (*Store, *clock) {
	t.Helper()
	c := newClock()
	return openStore(t, Options{URL: b.url(t), Now: c.Now}), c
}

// replicas opens n stores on one fresh database, on the real clock, as n
// replicas would.
func (b backend) replicas(t *testing.T, n int) []*Store {
	t.Helper()
	url := b.url(t)
	out := make([]*Store, n)
	for i := range out {
		out[i] = openStore(t, Options{URL: url, Timeout: replicaTimeout})
	}
	return out
}

// replicaTimeout bounds the database calls of stores that share one
// database and race for it. SQLite's busy handler is not fair: on a loaded
// machine (the whole suite under -race on two cores) a writer can lose the
// lock for longer than DefaultTimeout's half while the others loop, and
// these tests are about who wins, not how fast.
const replicaTimeout = time.Minute

// pair opens two stores on one database.
func (b backend) pair(t *testing.T) (*Store, *Store) {
	t.Helper()
	s := b.replicas(t, 2)
	return s[0], s[1]
}

// openStore opens a store, closed when the test ends.
func openStore(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v", opts.URL, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// --- helpers shared by the concerns ---------------------------------------

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)} }

func newAgent(owner, hash string, perms ...domain.Permission) domain.Agent {
	return domain.Agent{OwnerID: owner, Name: "agent-" + hash, Type: "autonomous", TokenHash: hash, Permissions: perms}
}

// contractAgents creates n agents of one owner and returns them.
func contractAgents(t *testing.T, s *Store, owner string, n int) []domain.Agent {
	t.Helper()
	out := make([]domain.Agent, n)
	for i := range out {
		a, err := s.CreateAgent(t.Context(), newAgent(owner, fmt.Sprintf("%s-%d", owner, i)), 0)
		if err != nil {
			t.Fatalf("CreateAgent(%s #%d) = %v", owner, i, err)
		}
		out[i] = a
	}
	return out
}

// js renders v as JSON, to compare whole records and print them.
func js(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%T) = %v", v, err)
	}
	return string(b)
}

// labelled names IDs by the labels a test gave them, for readable failures.
func labelled(names map[string]string, ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if n, ok := names[id]; ok {
			out[i] = n
		} else {
			out[i] = id
		}
	}
	return "[" + strings.Join(out, " ") + "]"
}

// events returns the audit events (Kind event), oldest first.
func events(t *testing.T, s *Store) []domain.AuditEntry {
	t.Helper()
	var out []domain.AuditEntry
	if err := s.ExportAudit(t.Context(), AuditFilter{Kind: domain.KindEvent}, func(e domain.AuditEntry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("ExportAudit(events) = %v", err)
	}
	return out
}

// yes is true, for constraints that take a *bool.
var yes = true
