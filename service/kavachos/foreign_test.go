package kavachos

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/internal/kavachostest"
	"github.com/kavach-dev/kavach/store"
)

// TestImportForeignAgents: a hostile source names agents of the target
// it did not bring over: one whose ID a Kavach agent already has (with
// another token), one it has no row for, one whose ID is not a UUID.
// No delegation, approval or audit row is written for them, so that the
// source cannot hand an attacker's agent a Kavach agent's permission,
// nor forge approvals and history; a second run still adds nothing.
func TestImportForeignAgents(t *testing.T) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	at := now.Add(-time.Hour)
	st, err := store.Open(ctx, store.Options{URL: filepath.Join(t.TempDir(), "kavach.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The victims, in Kavach: one with a UUID, one with a Kavach-made ID.
	victim, other, kavachID := kavachostest.NewID(), kavachostest.NewID(), "agt_0123456789abcdef0123456789abcdef"
	files := []domain.Permission{{Resource: "mcp:files:*", Actions: []string{"read", "write"}}}
	var target []domain.Agent
	for i, id := range []string{victim, other, kavachID} {
		sum := sha256.Sum256([]byte{byte(i)})
		target = append(target, domain.Agent{ID: id, OwnerID: "owner", Name: "victim", Type: "autonomous", Status: domain.StatusActive,
			TokenHash: hex.EncodeToString(sum[:]), Metadata: map[string]any{}, CreatedAt: at, UpdatedAt: at, Permissions: files})
	}
	if res, err := st.ImportAgents(ctx, target, false); err != nil || res.Added != 3 {
		t.Fatalf("seed the target: %+v, %v", res, err)
	}

	src := kavachostest.New(t, kavachostest.SQLite)
	if err := src.User(ctx, "user-1", now); err != nil {
		t.Fatal(err)
	}
	perm := []kavachostest.Permission{{Resource: "mcp:files:*", Actions: []string{"read", "write"}}}
	attacker := kavachostest.NewID()
	for _, a := range []kavachostest.Agent{
		{ID: victim, Name: "victim's ID, attacker's token", Permissions: perm},
		{ID: attacker, Name: "attacker"},
		{ID: kavachID, Name: "Kavach-made ID", Permissions: perm},
	} {
		a.OwnerID, a.Type, a.Status, a.CreatedAt = "user-1", "autonomous", "active", at
		if _, err := src.Agent(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// other has no agent row in the source, only permissions (the
	// source's foreign keys are not enforced: it is not trusted).
	db, err := sql.Open("sqlite", src.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(ctx, `INSERT INTO kavach_permissions (id, agent_id, resource, actions, constraints, created_at)
		VALUES (?, ?, 'mcp:files:*', '["read","write"]', NULL, ?)`, kavachostest.NewID(), other, at.Unix())
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	grant := []kavachostest.Permission{{Resource: "mcp:files:reports", Actions: []string{"read", "write"}}}
	for _, from := range []string{victim, other, kavachID} {
		if err := src.Delegation(ctx, kavachostest.NewID(), from, attacker, grant, 1, 1, "active", now.Add(time.Hour), at); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{victim, other, attacker} {
		if err := src.Approval(ctx, kavachostest.NewID(), id, "user-1", "read", "mcp:files:reports", "pending", now.Add(time.Hour), at); err != nil {
			t.Fatal(err)
		}
		if err := src.Audit(ctx, kavachostest.NewID(), id, "user-1", "read", "mcp:files:reports", "allowed", "", at); err != nil {
			t.Fatal(err)
		}
	}
	source, err := OpenSource(ctx, src.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer source.Close()

	for run := 1; run <= 2; run++ {
		// The source as named, passwords and all: neither the report nor
		// the audit event keeps them.
		r, err := Import(ctx, source, st, "postgres://kos:s3cret@db/kos?sslpassword=s3cret", Options{Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		if r.Source != "postgres://kos:xxxxx@db/kos" {
			t.Errorf("run %d: report source = %q", run, r.Source)
		}
		agents := Count{Read: 3, Added: 1, NotImported: 2}
		approvals, audit := Count{Read: 3, Added: 1, NotImported: 2}, Count{Read: 3, Added: 1, NotImported: 2}
		if run == 2 {
			agents, approvals, audit = Count{Read: 3, Skipped: 1, NotImported: 2}, Count{Read: 3, Skipped: 1, NotImported: 2}, Count{Read: 3, Skipped: 1, NotImported: 2}
		}
		if r.Agents != agents || r.Delegs != (Count{Read: 3, NotImported: 3}) || r.Approvals != approvals || r.Audit != audit {
			t.Errorf("run %d: agents %+v, delegations %+v, approvals %+v, audit %+v", run, r.Agents, r.Delegs, r.Approvals, r.Audit)
		}
		// victim (not imported): its audit row is foreign; other: all three.
		if r.Findings["agent_id_taken"] != 1 || r.Findings["agent_not_imported"] != 1 || r.Findings["foreign_agent"] != 4 || r.Findings["delegation_not_imported"] != 2 || r.Findings["approval_not_imported"] != 1 {
			t.Errorf("run %d: findings %v; want agent_id_taken 1, agent_not_imported 1 (the agt_ ID), foreign_agent 4, delegation_not_imported 2, approval_not_imported 1", run, r.Findings)
		}
	}
	events, _, err := st.QueryAudit(ctx, store.AuditFilter{Kind: domain.KindEvent, Action: "import.kavachos", Limit: 10})
	if err != nil || len(events) != 1 || events[0].Resource != "postgres://kos:xxxxx@db/kos" || strings.Contains(string(events[0].Changes), "s3cret") {
		t.Errorf("import events = %+v, %v; want one, naming the source without its passwords", events, err)
	}
	a, err := st.GetAgent(ctx, attacker)
	if err != nil || len(a.Incoming) != 0 {
		t.Errorf("the attacker's agent = %+v, %v; want it imported, with no delegation", a, err)
	}
	for _, id := range []string{victim, other, kavachID} {
		if aps, _, err := st.ListApprovals(ctx, store.ApprovalFilter{AgentID: id}, store.Page{Limit: 10}); err != nil || len(aps) != 0 {
			t.Errorf("approvals of %s = %v, %v; want none", id, aps, err)
		}
		if rows, _, err := st.QueryAudit(ctx, store.AuditFilter{AgentID: id, Kind: domain.KindDecision, Limit: 10}); err != nil || len(rows) != 0 {
			t.Errorf("audit of %s = %v, %v; want none", id, rows, err)
		}
	}
}

// TestImportAgentSet: the set of agents brought over tells IDs apart as
// Kavach does, byte for byte, whether kept as 16 bytes or as strings.
func TestImportAgentSet(t *testing.T) {
	s := newAgentSet()
	lower, upper := "0b5f3a9e-6c3b-4f7e-9d1a-2b3c4d5e6f70", "0B5F3A9E-6C3B-4F7E-9D1A-2B3C4D5E6F70"
	s.add(lower)
	s.add("agt_x")
	if !s.has(lower) || s.has(upper) || !s.has("agt_x") || s.has("agt_y") || s.has("0b5f3a9e-6c3b-4f7e-9d1a-2b3c4d5e6f71") {
		t.Errorf("set with %s and agt_x: wrong membership", lower)
	}
	if len(s.uuids) != 1 || len(s.other) != 1 {
		t.Errorf("uuids %d, other %d; want the UUID as bytes", len(s.uuids), len(s.other))
	}
	s.add(upper)
	if !s.has(upper) || len(s.other) != 2 {
		t.Errorf("an upper-case UUID is kept as its string")
	}
}
