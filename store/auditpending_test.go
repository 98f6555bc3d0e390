package store

import (
	"path/filepath"
	"testing"

	"github.com/kavach-dev/kavach/domain"
)

// pending is outside the row's hash: someone with write access to the
// file who sets it to any value (2, -1, a BLOB) must not hide the row from
// queries, exports and anomaly evidence by agent or owner, which `kavach
// audit verify` would not notice. The query's two parts split every row
// (pending <> 0, pending = 0), and the indexer takes any non-zero row.
func TestAuditPendingOfAnyValueHidesNoRow(t *testing.T) {
	s := openStore(t, Options{URL: filepath.Join(t.TempDir(), "kavach.db"), Secret: testSecret})
	ids := writeTrail(t, s, 6)
	if err := s.Seal(t.Context()); err != nil {
		t.Fatal(err)
	}
	var agent string
	if err := s.r.QueryRowContext(t.Context(), `SELECT agent_id FROM audit_log WHERE id = ?`, ids[2]).Scan(&agent); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(t.Context(), `UPDATE audit_log SET pending = 2 WHERE id = ?`, ids[2]); err != nil {
		t.Fatal(err)
	}
	found := false
	page, _, err := s.QueryAudit(t.Context(), AuditFilter{AgentID: agent, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range page {
		found = found || e.ID == ids[2]
	}
	r := verify(t, s, chainKeys(t, testSecret))
	if !found && r.OK() {
		t.Errorf("row %s hidden from the query by agent (%d rows found) and verify reports OK: %+v", ids[2], len(page), r)
	}
	_ = domain.ResultAllowed
}
