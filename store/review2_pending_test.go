package store

import (
	"path/filepath"
	"testing"

	"github.com/kavach-dev/kavach/domain"
)

// review2: pending is outside the hash, and auditQuery reads only
// pending = 1 and pending = 0. Someone with write access to the file who
// sets pending to any other value (2, -1, a BLOB) hides the row from every
// query, export and anomaly evidence by agent or owner, while `kavach
// audit verify` still reports the trail intact (the typeof check that
// catches the same trick on agent_id does not look at pending).
func TestReview2PendingOutOfRangeHidesRows(t *testing.T) {
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
