package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kavach-dev/kavach/domain"
)

// The contract of the schema: migrations apply once and in order, a store
// that skips them leaves the schema alone, a schema newer than the binary
// is refused, and a database of the previous release upgrades in place.
func schemaTests() []storeTest {
	return []storeTest{
		{name: "MigrationsAreIdempotent", opens: testMigrationsAreIdempotent},
		{name: "SkipMigrationsLeavesSchemaAlone", opens: testSkipMigrationsLeavesSchemaAlone},
		{name: "NewerSchemaIsRefused", opens: testNewerSchemaIsRefused},
		{name: "UpgradeFromSchema4", opens: testUpgradeFromSchema4},
	}
}

// restart is what starting again on s's database gives: where stores share
// a database, s closed and a new store opened on url (which migrates);
// else (":memory:", a database per store) s itself, migrated again.
func (b backend) restart(t *testing.T, s *Store, url string) (*Store, error) {
	t.Helper()
	if !b.shared {
		return s, s.Migrate(t.Context())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), Options{URL: url})
	if err == nil {
		t.Cleanup(func() { _ = s.Close() })
	}
	return s, err
}

func testMigrationsAreIdempotent(t *testing.T, b backend) {
	ctx := t.Context()
	url := b.url(t)
	s := openStore(t, Options{URL: url})
	ms, err := readMigrations(s.dialect.migrations())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if i > 0 {
			if s, err = b.restart(t, s, url); err != nil {
				t.Fatalf("start #%d = %v", i, err)
			}
		}
		v, err := s.SchemaVersion(ctx)
		// Versions need not be contiguous: the latest is the last one's number.
		if latest := ms[len(ms)-1].version; err != nil || v != latest || v < 2 {
			t.Errorf("SchemaVersion #%d = %d, %v; want %d", i, v, err, latest)
		}
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
			t.Errorf("schema_migrations rows = %d, %v; want %d", n, err, len(ms))
		}
	}
}

func testSkipMigrationsLeavesSchemaAlone(t *testing.T, b backend) {
	ctx := t.Context()
	s := openStore(t, Options{URL: b.url(t), SkipMigrations: true})
	if _, err := s.GetAgent(ctx, "agt_x"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("GetAgent on an unmigrated database = %v; want a missing-table error", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAgent(ctx, "agt_x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetAgent after Migrate = %v; want ErrNotFound", err)
	}
}

func testNewerSchemaIsRefused(t *testing.T, b backend) {
	ctx := t.Context()
	url := b.url(t)
	s := openStore(t, Options{URL: url})
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.restart(t, s, url); err == nil {
		t.Fatal("starting on a database from a newer version succeeded; want an error")
	}
}

// A database made by the previous release (migrations 1 to 4, with data)
// upgrades in place: old audit rows are decisions, and the change feed's
// sequence carries on past every number it ever handed out, so a replica
// never sees one twice.
func testUpgradeFromSchema4(t *testing.T, b backend) {
	url := b.url(t)
	// The previous release's database, written through a store that
	// leaves the schema alone.
	old := openStore(t, Options{URL: url, SkipMigrations: true})
	ms, err := readMigrations(old.dialect.migrations())
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := old.w.ExecContext(t.Context(), q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`)
	for _, m := range ms[:4] {
		exec(m.sql)
		exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)`, m.version, m.name)
	}
	exec(`INSERT INTO audit_log (id, agent_id, owner_id, action, resource, result, code, reason, duration_us, created_at)
		VALUES ('aud_old', 'agt_a', 'u', 'read', 'r', 'allowed', 'allowed', 'r', 1, 1)`)
	for i := range 3 {
		exec(`INSERT INTO changes (kind, entity_id, at) VALUES ('agent', ?, 1)`, fmt.Sprint("agt_", i))
	}
	exec(`DELETE FROM changes`) // pruned: only the sequence remembers 3

	s, err := b.restart(t, old, url)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.SchemaVersion(t.Context()); v != ms[len(ms)-1].version {
		t.Errorf("schema version = %d; want %d", v, ms[len(ms)-1].version)
	}
	page, _, err := s.QueryAudit(t.Context(), AuditFilter{Kind: domain.KindDecision, Limit: 10})
	if err != nil || len(page) != 1 || page[0].ID != "aud_old" {
		t.Errorf("old rows as decisions = %+v, %v; want aud_old", page, err)
	}
	if _, err := s.CreateKey(t.Context(), domain.APIKey{Name: "k", Roles: []string{"admin"}, Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	changes, err := s.ChangesSince(t.Context(), 0, 10)
	if err != nil || len(changes) != 1 || changes[0].Seq <= 3 || changes[0].Kind != ChangeKey {
		t.Errorf("changes after the upgrade = %+v, %v; want one key change numbered after 3", changes, err)
	}
}
