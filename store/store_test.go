package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/internal/pgtest"
)

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

// backends runs fn, the contract every backend keeps, against a SQLite
// file, SQLite :memory: and the real PostgreSQL server.
func backends(t *testing.T, fn func(t *testing.T, s *Store, c *clock)) {
	for _, name := range []string{"sqlite-file", "sqlite-memory", "postgres"} {
		t.Run(name, func(t *testing.T) {
			var url string
			switch name {
			case "sqlite-file":
				url = filepath.Join(t.TempDir(), "kavach.db")
			case "sqlite-memory":
				url = ":memory:"
			case "postgres":
				url = pgtest.URL(t)
			}
			c := newClock()
			s, err := Open(t.Context(), Options{URL: url, Now: c.Now})
			if err != nil {
				t.Fatalf("Open(%s) = %v", url, err)
			}
			t.Cleanup(func() { _ = s.Close() })
			fn(t, s, c)
		})
	}
}

func newAgent(owner, hash string, perms ...Permission) Agent {
	return Agent{OwnerID: owner, Name: "agent-" + hash, Type: "autonomous", TokenHash: hash, Permissions: perms}
}

func TestMigrationsAreIdempotentAndUseWAL(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kavach.db")
	for i := range 3 {
		s, err := Open(ctx, Options{URL: path})
		if err != nil {
			t.Fatalf("Open #%d = %v", i, err)
		}
		ms, _ := readMigrations(s.dialect.migrations())
		v, err := s.SchemaVersion(ctx)
		// Versions need not be contiguous: the latest is the last one's number.
		if latest := ms[len(ms)-1].version; err != nil || v != latest || v < 2 {
			t.Errorf("SchemaVersion #%d = %d, %v; want %d", i, v, err, latest)
		}
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
			t.Errorf("schema_migrations rows = %d, %v; want %d", n, err, len(ms))
		}
		var mode string
		if err := s.r.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v; want wal", mode, err)
		}
		_ = s.Close()
	}
}

func TestSkipMigrationsLeavesSchemaAlone(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, Options{URL: filepath.Join(t.TempDir(), "kavach.db"), SkipMigrations: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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

func TestNewerSchemaIsRefused(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kavach.db")
	s, err := Open(ctx, Options{URL: path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if _, err := Open(ctx, Options{URL: path}); err == nil {
		t.Fatal("Open of a database from a newer version succeeded; want an error")
	}
}

func TestAgentLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, c *clock) {
		ctx := t.Context()
		perms := []Permission{
			{Resource: "mcp:github:*", Actions: []string{"read"}},
			{Resource: "mcp:deploy:production", Actions: []string{"execute"}, Constraints: map[string]any{"requireApproval": true}},
		}
		a := newAgent("user-1", "h1", perms...)
		a.Metadata = map[string]any{"team": "infra"}
		created, err := s.CreateAgent(ctx, a, 10)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.GetAgent(ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != StatusActive || got.TokenHash != "h1" || got.Metadata["team"] != "infra" ||
			len(got.Permissions) != 2 || got.Permissions[1].Constraints["requireApproval"] != true ||
			!slices.Equal(got.Permissions[0].Actions, []string{"read"}) {
			t.Fatalf("GetAgent = %+v; want the created agent", got)
		}

		name := "renamed"
		newPerms := []Permission{{Resource: "*", Actions: []string{"read"}}}
		exp := c.Now().Add(time.Hour)
		upd, err := s.UpdateAgent(ctx, created.ID, AgentUpdate{Name: &name, Permissions: &newPerms, ExpiresAt: &exp})
		if err != nil {
			t.Fatal(err)
		}
		if upd.Name != name || len(upd.Permissions) != 1 || upd.ExpiresAt == nil || !upd.ExpiresAt.Equal(exp) {
			t.Fatalf("UpdateAgent = %+v", upd)
		}
		upd, err = s.UpdateAgent(ctx, created.ID, AgentUpdate{ClearExpiry: true})
		if err != nil || upd.ExpiresAt != nil {
			t.Fatalf("UpdateAgent(ClearExpiry) = %+v, %v", upd, err)
		}

		rot, err := s.RotateToken(ctx, created.ID, "h2")
		if err != nil || rot.TokenHash != "h2" {
			t.Fatalf("RotateToken = %+v, %v", rot, err)
		}
		rev, err := s.RevokeAgent(ctx, created.ID)
		if err != nil || rev.Status != StatusRevoked || rev.RevokedAt == nil {
			t.Fatalf("RevokeAgent = %+v, %v", rev, err)
		}
		again, err := s.RevokeAgent(ctx, created.ID)
		if err != nil || !again.RevokedAt.Equal(*rev.RevokedAt) {
			t.Fatalf("second RevokeAgent = %+v, %v; want unchanged", again, err)
		}
		if _, err := s.RotateToken(ctx, created.ID, "h3"); !errors.Is(err, ErrRevoked) {
			t.Errorf("RotateToken(revoked) = %v; want ErrRevoked", err)
		}
		if _, err := s.UpdateAgent(ctx, created.ID, AgentUpdate{Name: &name}); !errors.Is(err, ErrRevoked) {
			t.Errorf("UpdateAgent(revoked) = %v; want ErrRevoked", err)
		}
		for _, op := range []func() error{
			func() error { _, err := s.GetAgent(ctx, "agt_missing"); return err },
			func() error { _, err := s.RevokeAgent(ctx, "agt_missing"); return err },
			func() error { _, err := s.RotateToken(ctx, "agt_missing", "x"); return err },
			func() error { _, err := s.UpdateAgent(ctx, "agt_missing", AgentUpdate{Name: &name}); return err },
		} {
			if err := op(); !errors.Is(err, ErrNotFound) {
				t.Errorf("operation on a missing agent = %v; want ErrNotFound", err)
			}
		}
	})
}

func TestDuplicateTokenHashIsAConflictAndWritesNothing(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, _ *clock) {
		ctx := t.Context()
		if _, err := s.CreateAgent(ctx, newAgent("u", "same", Permission{Resource: "a", Actions: []string{"r"}}), 0); err != nil {
			t.Fatal(err)
		}
		_, err := s.CreateAgent(ctx, newAgent("u", "same", Permission{Resource: "b", Actions: []string{"r"}}), 0)
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("CreateAgent(duplicate hash) = %v; want ErrConflict", err)
		}
		var perms int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM permissions`).Scan(&perms); err != nil || perms != 1 {
			t.Errorf("permissions rows = %d, %v; want 1 (no half-written agent)", perms, err)
		}
	})
}

func TestMaxActiveCountsActiveAgentsOnly(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, c *clock) {
		ctx := t.Context()
		var ids []string
		for i := range 3 {
			a := newAgent("owner", fmt.Sprint("h", i))
			if i == 2 {
				exp := c.Now().Add(time.Minute)
				a.ExpiresAt = &exp
			}
			got, err := s.CreateAgent(ctx, a, 3)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, got.ID)
		}
		if _, err := s.CreateAgent(ctx, newAgent("owner", "h3"), 3); !errors.Is(err, ErrLimitReached) {
			t.Fatalf("4th CreateAgent = %v; want ErrLimitReached", err)
		}
		if _, err := s.CreateAgent(ctx, newAgent("someone-else", "h4"), 3); err != nil {
			t.Fatalf("another owner's CreateAgent = %v", err)
		}
		if _, err := s.RevokeAgent(ctx, ids[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateAgent(ctx, newAgent("owner", "h5"), 3); err != nil {
			t.Fatalf("CreateAgent after a revoke = %v; want a free slot", err)
		}
		c.Add(2 * time.Minute) // ids[2] expires
		if _, err := s.CreateAgent(ctx, newAgent("owner", "h6"), 3); err != nil {
			t.Fatalf("CreateAgent after an expiry = %v; want a free slot", err)
		}
		for status, want := range map[string]int{StatusActive: 3, StatusRevoked: 1, StatusExpired: 1, "": 5} {
			got, err := s.ListAgents(ctx, AgentFilter{OwnerID: "owner", Status: status})
			if err != nil || len(got) != want {
				t.Errorf("ListAgents(owner, %q) = %d agents, %v; want %d", status, len(got), err, want)
			}
			for _, a := range got {
				if status != "" && a.Status != status {
					t.Errorf("ListAgents(%q) returned an agent with status %q", status, a.Status)
				}
			}
		}
	})
}

func TestEachAgentStreamsAllWithPermissions(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, _ *clock) {
		ctx := t.Context()
		want := map[string]int{}
		for i := range 50 {
			var perms []Permission
			for j := range i % 4 {
				perms = append(perms, Permission{Resource: fmt.Sprintf("r:%d", j), Actions: []string{"a"}})
			}
			a, err := s.CreateAgent(ctx, newAgent(fmt.Sprint("o", i), fmt.Sprint("h", i), perms...), 0)
			if err != nil {
				t.Fatal(err)
			}
			want[a.ID] = len(perms)
		}
		got := map[string]int{}
		err := s.EachAgent(ctx, func(a Agent) error {
			got[a.ID] = len(a.Permissions)
			for j, p := range a.Permissions {
				if p.Resource != fmt.Sprintf("r:%d", j) {
					t.Errorf("agent %s permission %d = %s; want stored order", a.ID, j, p.Resource)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("EachAgent = %v; want %v", got, want)
		}
	})
}

func TestIDsArePrefixedUniqueAndSortedByCreation(t *testing.T) {
	var g idGen
	base := time.Now()
	var ids []string
	for i := range 5000 {
		ids = append(ids, g.next("aud_", base.Add(time.Duration(i/100)*time.Millisecond)))
	}
	if !slices.IsSorted(ids) {
		t.Error("IDs do not sort in creation order")
	}
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Error("IDs are not unique")
	}
	if len(ids[0]) != len("aud_")+26 || ids[0][:4] != "aud_" {
		t.Errorf("ID %q: want aud_ and 26 characters", ids[0])
	}
	// Two generators (two processes) in the same millisecond still differ.
	var g2 idGen
	if a, b := g.next("x_", base), g2.next("x_", base); a == b {
		t.Errorf("two generators made the same ID %s", a)
	}
	// Consecutive IDs share no more than their time and sequence: the last
	// 13 characters (65 of the 68 random bits) differ between neighbours.
	for i := 1; i < len(ids); i++ {
		if ids[i][len(ids[i])-13:] == ids[i-1][len(ids[i-1])-13:] {
			t.Fatalf("neighbouring IDs %s and %s share their random part", ids[i-1], ids[i])
		}
	}
	// More than 4096 IDs in one millisecond still sort.
	var g3 idGen
	burst := make([]string, 10000)
	for i := range burst {
		burst[i] = g3.next("x_", base)
	}
	if !slices.IsSorted(burst) {
		t.Error("a burst of 10,000 IDs in one millisecond does not sort")
	}
}

func TestAuditQueryAndExport(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, c *clock) {
		ctx := t.Context()
		var ids []string
		for i := range 25 {
			e := AuditEntry{AgentID: fmt.Sprint("agt_", i%3), OwnerID: fmt.Sprint("user-", i%2), Action: "read",
				Resource: "r", Result: ResultAllowed, Code: "allowed", Reason: "ok", DurationUS: int64(i)}
			if i%5 == 0 {
				e.Result, e.Code = ResultDenied, "no_permission"
				e.Arguments = []byte(`{"path":"a,\"b\"\nc"}`)
			}
			got, err := s.InsertAudit(ctx, e, Consumption{})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, got.ID)
			c.Add(time.Second)
		}
		// Paging newest first visits every row once.
		var seen []string
		cursor := ""
		for pages := 0; ; pages++ {
			entries, next, err := s.QueryAudit(ctx, AuditFilter{Limit: 10, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				seen = append(seen, e.ID)
			}
			if next == "" {
				if pages != 2 {
					t.Errorf("pages = %d; want 3", pages+1)
				}
				break
			}
			cursor = next
		}
		rev := slices.Clone(ids)
		slices.Reverse(rev)
		if !slices.Equal(seen, rev) {
			t.Errorf("paged IDs = %v; want %v", seen, rev)
		}
		start := fromMillis(toMillis(newClock().Now()))
		for _, tt := range []struct {
			f    AuditFilter
			want int
		}{
			{AuditFilter{AgentID: "agt_0"}, 9},
			{AuditFilter{OwnerID: "user-1"}, 12},
			{AuditFilter{Result: ResultDenied}, 5},
			{AuditFilter{Result: ResultDenied, AgentID: "agt_0"}, 2},
			{AuditFilter{Since: start.Add(10 * time.Second)}, 15},
			{AuditFilter{Since: start.Add(10 * time.Second), Until: start.Add(12 * time.Second)}, 2},
		} {
			tt.f.Limit = 100
			entries, _, err := s.QueryAudit(ctx, tt.f)
			if err != nil || len(entries) != tt.want {
				t.Errorf("QueryAudit(%+v) = %d rows, %v; want %d", tt.f, len(entries), err, tt.want)
			}
		}
		var exported []string
		err := s.ExportAudit(ctx, AuditFilter{Limit: 1}, func(e AuditEntry) error {
			exported = append(exported, e.ID)
			if e.Result == ResultDenied && string(e.Arguments) != `{"path":"a,\"b\"\nc"}` {
				t.Errorf("arguments = %s; want them back verbatim", e.Arguments)
			}
			return nil
		})
		if err != nil || !slices.Equal(exported, ids) {
			t.Errorf("ExportAudit = %d rows, %v; want all %d oldest first", len(exported), err, len(ids))
		}
		stop := errors.New("stop")
		if err := s.ExportAudit(ctx, AuditFilter{}, func(AuditEntry) error { return stop }); !errors.Is(err, stop) {
			t.Errorf("ExportAudit callback error = %v; want it returned", err)
		}
	})
}

func TestConcurrentAuditWritesAllCommit(t *testing.T) {
	backends(t, func(t *testing.T, s *Store, _ *clock) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for range 100 {
			wg.Go(func() {
				_, err := s.InsertAudit(ctx, AuditEntry{Action: "a", Resource: "r", Result: ResultDenied, Code: "c", Reason: "r"}, Consumption{})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log`).Scan(&n); err != nil || n != 100 {
			t.Errorf("audit rows = %d, %v; want 100", n, err)
		}
	})
}

func TestTwoStoresOnOneFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kavach.db")
	a, err := Open(ctx, Options{URL: path})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, Options{URL: path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	for i := range 40 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			if _, err := s.InsertAudit(ctx, AuditEntry{Action: "a", Resource: "r", Result: ResultAllowed, Code: "c", Reason: "r"}, Consumption{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	entries, _, err := b.QueryAudit(ctx, AuditFilter{Limit: 100})
	if err != nil || len(entries) != 40 {
		t.Errorf("rows seen by the second store = %d, %v; want 40", len(entries), err)
	}
}
