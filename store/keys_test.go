package store

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/internal/pgtest"
)

func TestKeysContract(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, c *clock) {
		ctx := WithActor(t.Context(), Actor{Type: ActorAdminEnv, ID: "KAVACH_ADMIN_KEY"})
		exp := c.Now().Add(time.Hour)
		k, err := s.CreateKey(ctx, APIKey{Name: "app", Roles: []string{"decider"}, Hash: "h1", ExpiresAt: &exp})
		if err != nil {
			t.Fatal(err)
		}
		if k.CreatedBy != "KAVACH_ADMIN_KEY" || k.Status != StatusActive {
			t.Errorf("CreateKey = %+v; want createdBy the actor, active", k)
		}
		if _, err := s.CreateKey(ctx, APIKey{Name: "dup", Roles: []string{"admin"}, Hash: "h1"}); !errors.Is(err, ErrConflict) {
			t.Errorf("CreateKey with a hash taken = %v; want ErrConflict", err)
		}
		got, err := s.KeyByHash(t.Context(), "h1")
		if err != nil || got.ID != k.ID || len(got.Roles) != 1 || got.Roles[0] != "decider" {
			t.Errorf("KeyByHash = %+v, %v; want the key", got, err)
		}
		if _, err := s.KeyByHash(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("KeyByHash(unknown) = %v; want ErrNotFound", err)
		}
		c.Add(time.Hour)
		if got, _ := s.GetKey(t.Context(), k.ID); got.Status != StatusExpired {
			t.Errorf("status past expiry = %s; want expired", got.Status)
		}
		revoked, err := s.RevokeKey(ctx, k.ID)
		if err != nil || revoked.Status != StatusRevoked || revoked.RevokedAt == nil {
			t.Errorf("RevokeKey = %+v, %v; want revoked", revoked, err)
		}
		if _, err := s.RevokeKey(ctx, k.ID); err != nil {
			t.Errorf("second RevokeKey = %v; want harmless", err)
		}
		if _, err := s.RevokeKey(ctx, "key_nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("RevokeKey(unknown) = %v; want ErrNotFound", err)
		}
		var events []AuditEntry
		_ = s.ExportAudit(t.Context(), AuditFilter{Kind: KindEvent}, func(e AuditEntry) error { events = append(events, e); return nil })
		if len(events) != 2 || events[0].Action != "key.create" || events[1].Action != "key.revoke" || events[1].Actor.ID != "KAVACH_ADMIN_KEY" {
			t.Errorf("events = %+v; want key.create and one key.revoke, by the actor", events)
		}
		// A decision asked with the revoked key commits nothing, through the
		// group commit or with a consumption.
		row := AuditEntry{AgentID: "agt_x", Action: "read", Resource: "r", Result: ResultAllowed, Code: "allowed", Reason: "r",
			Actor: Actor{Type: ActorKey, ID: k.ID}}
		if _, err := s.InsertAudit(t.Context(), row, Consumption{}); !errors.Is(err, ErrKeyRevoked) {
			t.Errorf("InsertAudit with a revoked key = %v; want ErrKeyRevoked", err)
		}
		if _, err := s.InsertAudit(t.Context(), row, Consumption{Rates: []RateEvent{{AgentID: "agt_x", PermKey: "p", Resource: "r", Limit: 5}}}); !errors.Is(err, ErrKeyRevoked) {
			t.Errorf("InsertAudit with a revoked key and a rate = %v; want ErrKeyRevoked", err)
		}
		n := 0
		_ = s.ExportAudit(t.Context(), AuditFilter{Kind: KindDecision}, func(AuditEntry) error { n++; return nil })
		if n != 0 {
			t.Errorf("decision rows = %d; want 0", n)
		}
	})
}

// Replicas starting at once on an empty database make one bootstrap key
// between them.
func TestBootstrapKeyOnceAcrossStores(t *testing.T) {
	for _, name := range []string{"sqlite-file", "postgres"} {
		t.Run(name, func(t *testing.T) {
			url := filepath.Join(t.TempDir(), "kavach.db")
			if name == "postgres" {
				url = pgtest.URL(t)
			}
			var stores []*Store
			for range 3 {
				s, err := Open(t.Context(), Options{URL: url})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				stores = append(stores, s)
			}
			var wg sync.WaitGroup
			created := make([]bool, len(stores))
			for i, s := range stores {
				wg.Go(func() {
					_, ok, err := s.BootstrapKey(t.Context(), APIKey{Name: "bootstrap-admin", Roles: []string{"admin"}, Hash: "boot" + string(rune('a'+i))})
					if err != nil {
						t.Error(err)
					}
					created[i] = ok
				})
			}
			wg.Wait()
			n := 0
			for _, ok := range created {
				if ok {
					n++
				}
			}
			keys, err := stores[0].ListKeys(t.Context())
			if n != 1 || err != nil || len(keys) != 1 {
				t.Errorf("bootstraps = %d, keys = %d (%v); want exactly one", n, len(keys), err)
			}
		})
	}
}

// A database made by the previous release (migrations 1 to 4, with data)
// upgrades in place: old audit rows are decisions, and the change feed's
// sequence carries on past every number it ever handed out, so a replica
// never sees one twice.
func TestUpgradeFromSchema4(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			url, driver := filepath.Join(t.TempDir(), "kavach.db"), "sqlite"
			if name == "postgres" {
				url, driver = pgtest.URL(t), "pgx"
			}
			db, err := sql.Open(driver, url)
			if err != nil {
				t.Fatal(err)
			}
			d := dialectFor(Options{URL: url})
			ms, err := readMigrations(d.migrations())
			if err != nil {
				t.Fatal(err)
			}
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.ExecContext(t.Context(), d.rebind(q), args...); err != nil {
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
			_ = db.Close()

			s, err := Open(t.Context(), Options{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if v, _ := s.SchemaVersion(t.Context()); v != ms[len(ms)-1].version {
				t.Errorf("schema version = %d; want %d", v, ms[len(ms)-1].version)
			}
			page, _, err := s.QueryAudit(t.Context(), AuditFilter{Kind: KindDecision, Limit: 10})
			if err != nil || len(page) != 1 || page[0].ID != "aud_old" {
				t.Errorf("old rows as decisions = %+v, %v; want aud_old", page, err)
			}
			if _, err := s.CreateKey(t.Context(), APIKey{Name: "k", Roles: []string{"admin"}, Hash: "h"}); err != nil {
				t.Fatal(err)
			}
			changes, err := s.ChangesSince(t.Context(), 0, 10)
			if err != nil || len(changes) != 1 || changes[0].Seq <= 3 || changes[0].Kind != ChangeKey {
				t.Errorf("changes after the upgrade = %+v, %v; want one key change numbered after 3", changes, err)
			}
		})
	}
}
