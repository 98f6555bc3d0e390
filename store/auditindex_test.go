package store

import (
	"path/filepath"
	"testing"

	"github.com/kavach-dev/kavach/domain"
)

// On SQLite the group commit's rows join the indexes by agent and owner
// later: queries by agent or owner find them before they are indexed,
// after, and half and half, the same rows in the same order.
func TestDeferredAuditIndexes(t *testing.T) {
	s, err := Open(t.Context(), Options{URL: filepath.Join(t.TempDir(), "kavach.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.deferredAuditIndexes() {
		t.Fatal("SQLite at schema 13 defers the audit indexes")
	}
	// The test indexes by itself: stop the indexer.
	s.indexerOnce.Do(func() { close(s.stopIndexer); <-s.indexerDone })
	insert := func(n int) {
		for i := range n {
			agent := []string{"agt_a", "agt_b"}[i%2]
			if _, err := s.InsertAudit(t.Context(), domain.AuditEntry{AgentID: agent, OwnerID: "own_" + agent, Action: "read",
				Resource: "r", Result: domain.ResultAllowed, Code: "allowed", Reason: "r"}, Consumption{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pending := func() int {
		var n int
		if err := s.r.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM audit_log WHERE pending = 1`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	query := func(f AuditFilter) []string {
		var ids []string
		for {
			page, next, err := s.QueryAudit(t.Context(), f)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				ids = append(ids, e.ID)
			}
			if next == "" {
				return ids
			}
			f.Cursor = next
		}
	}
	export := func(f AuditFilter) []string {
		var ids []string
		if err := s.ExportAudit(t.Context(), f, func(e domain.AuditEntry) error { ids = append(ids, e.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	filters := []AuditFilter{{AgentID: "agt_a", Limit: 3}, {OwnerID: "own_agt_b", Limit: 4}, {AgentID: "agt_b", Kind: domain.KindDecision, Limit: 100}}
	insert(10)
	if got := pending(); got != 10 {
		t.Fatalf("%d rows pending after the group commit; want 10", got)
	}
	check := func(when string) {
		t.Helper()
		for _, f := range filters {
			ids, all := query(f), export(f)
			if len(ids) != 5 || len(all) != 5 {
				t.Errorf("%s: %+v found %d rows, exported %d; want 5", when, f, len(ids), len(all))
			}
			for i := range ids {
				if i > 0 && ids[i] >= ids[i-1] {
					t.Errorf("%s: %+v: rows out of order: %v", when, f, ids)
				}
				if all[len(all)-1-i] != ids[i] {
					t.Errorf("%s: %+v: export %v is not the query %v reversed", when, f, all, ids)
				}
			}
		}
	}
	check("pending")
	if n, err := s.IndexAudit(t.Context()); err != nil || n != 10 {
		t.Fatalf("IndexAudit = %d, %v; want 10", n, err)
	}
	check("indexed")
	// Half indexed, half pending: 10 more rows, the filters' 10 each.
	insert(10)
	for i := range filters {
		filters[i].Limit = 3
	}
	check2 := func() {
		for _, f := range filters {
			if ids := query(f); len(ids) != 10 {
				t.Errorf("half pending: %+v found %d rows; want 10", f, len(ids))
			}
		}
	}
	check2()
	if n, err := s.IndexAudit(t.Context()); err != nil || n != 10 {
		t.Fatalf("IndexAudit = %d, %v; want 10", n, err)
	}
	if n, err := s.IndexAudit(t.Context()); err != nil || n != 0 {
		t.Fatalf("IndexAudit with nothing pending = %d, %v; want 0", n, err)
	}
	check2()
}
