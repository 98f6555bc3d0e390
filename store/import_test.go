package store

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

func importTests() []storeTest {
	return []storeTest{
		{name: "ImportKeepsIDsAndSkipsWhatIsPresent", opens: testImportIdempotent},
		{name: "ImportDryRunWritesNothing", fn: testImportDryRun},
	}
}

// importFixture is a foreign agent (a UUID, its own token hash and
// times), a delegation to it, an approval and an audit row.
func importFixture(now time.Time) ([]domain.Agent, []domain.Delegation, []domain.Approval, []domain.AuditEntry) {
	at := now.Add(-time.Hour).UTC().Truncate(time.Millisecond)
	exp := now.Add(time.Hour).UTC().Truncate(time.Millisecond)
	agents := []domain.Agent{
		{ID: "0b5f3a9e-6c3b-4f7e-9d1a-2b3c4d5e6f70", OwnerID: "user-1", Name: "orch", Type: "autonomous", Status: domain.StatusActive,
			TokenHash: tokenHash("kv_one"), Metadata: map[string]any{"k": "v"}, ExpiresAt: &exp, CreatedAt: at, UpdatedAt: at,
			Permissions: []domain.Permission{{Resource: "mcp:github:*", Actions: []string{"read"}}}},
		{ID: "1c6e4b0f-7d4c-4a8f-8e2b-3c4d5e6f7081", OwnerID: "user-1", Name: "sub", Type: "delegated", Status: domain.StatusRevoked,
			TokenHash: tokenHash("kv_two"), Metadata: map[string]any{}, CreatedAt: at, UpdatedAt: at, RevokedAt: &at,
			Permissions: []domain.Permission{}},
	}
	ds := []domain.Delegation{{ID: ImportedID("dlg_", at, "d1"), FromAgent: agents[0].ID, ToAgent: agents[1].ID, Depth: 1, MaxDepth: 2,
		Status: domain.StatusActive, ExpiresAt: exp, CreatedAt: at,
		Permissions: []domain.Grant{{Resource: "mcp:github:issues", Actions: []string{"read"}, Chain: []domain.Link{}, CoveredBy: "p_x"}}}}
	as := []domain.Approval{{ID: ImportedID("apr_", at, "a1"), AgentID: agents[0].ID, OwnerID: "user-1", Action: "execute",
		Resource: "mcp:deploy:production", Status: domain.ApprovalPending, ExpiresAt: exp, CreatedAt: at}}
	rows := []domain.AuditEntry{{ID: ImportedID("aud_", at, "r1"), Kind: domain.KindDecision, AgentID: agents[0].ID, OwnerID: "user-1",
		Action: "read", Resource: "mcp:github:repos", Result: domain.ResultAllowed, Code: "allowed", Reason: "imported",
		Timestamp: at, Actor: domain.Actor{Type: domain.ActorImport, ID: "kavachos"}}}
	return agents, ds, as, rows
}

// tokenHash is a token's SHA-256 in hex, as KavachOS and Kavach store it.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func testImportIdempotent(t *testing.T, b backend) {
	s := openStore(t, Options{URL: b.url(t), Secret: testSecret})
	ctx := t.Context()
	agents, ds, as, rows := importFixture(time.Now())
	for round, want := range []int{1, 0} {
		ra, err := s.ImportAgents(ctx, agents, false)
		if err != nil || ra.Added != 2*want || len(ra.Skipped) != 2*(1-want) {
			t.Fatalf("round %d: ImportAgents = %+v, %v", round, ra, err)
		}
		rd, err := s.ImportDelegations(ctx, ds, false)
		if err != nil || rd.Added != want {
			t.Fatalf("round %d: ImportDelegations = %+v, %v", round, rd, err)
		}
		rp, err := s.ImportApprovals(ctx, as, false)
		if err != nil || rp.Added != want {
			t.Fatalf("round %d: ImportApprovals = %+v, %v", round, rp, err)
		}
		rr, err := s.ImportAudit(ctx, rows, false)
		if err != nil || rr.Added != want {
			t.Fatalf("round %d: ImportAudit = %+v, %v", round, rr, err)
		}
	}
	got, err := s.GetAgent(ctx, agents[1].ID)
	if err != nil || got.Status != domain.StatusRevoked || got.TokenHash != agents[1].TokenHash || !slices.Equal(got.Incoming, []string{ds[0].ID}) {
		t.Errorf("GetAgent(imported) = %+v, %v", got, err)
	}
	byToken, err := s.AgentByTokenHash(ctx, agents[0].TokenHash)
	if err != nil || byToken.ID != agents[0].ID || !byToken.CreatedAt.Equal(agents[0].CreatedAt) {
		t.Errorf("AgentByTokenHash(imported) = %+v, %v", byToken, err)
	}
	// Another agent with a token hash already held conflicts.
	dup := agents[0]
	dup.ID = "2d7f5c10-8e5d-4b90-9f3c-4d5e6f708192"
	if res, err := s.ImportAgents(ctx, []domain.Agent{dup}, false); err != nil || !slices.Equal(res.Conflicts, []string{dup.ID}) {
		t.Errorf("ImportAgents(same token) = %+v, %v; want a conflict", res, err)
	}
	page, _, err := s.QueryAudit(ctx, AuditFilter{AgentID: agents[0].ID, Kind: domain.KindDecision, Limit: 10})
	if err != nil || len(page) != 1 || page[0].Actor.Type != domain.ActorImport || !page[0].Timestamp.Equal(rows[0].Timestamp) {
		t.Errorf("QueryAudit(imported) = %+v, %v", page, err)
	}
	if err := s.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if r := verify(t, s, chainKeys(t, testSecret)); !r.OK() {
		t.Errorf("the trail after an import does not verify: %+v", r)
	}
}

func testImportDryRun(t *testing.T, s *Store, c *clock) {
	ctx := t.Context()
	agents, ds, as, rows := importFixture(c.Now())
	if r, err := s.ImportAgents(ctx, agents, true); err != nil || r.Added != 2 {
		t.Fatalf("ImportAgents(dry run) = %+v, %v", r, err)
	}
	if r, err := s.ImportDelegations(ctx, ds, true); err != nil || r.Added != 1 {
		t.Fatalf("ImportDelegations(dry run) = %+v, %v", r, err)
	}
	if r, err := s.ImportApprovals(ctx, as, true); err != nil || r.Added != 1 {
		t.Fatalf("ImportApprovals(dry run) = %+v, %v", r, err)
	}
	if r, err := s.ImportAudit(ctx, rows, true); err != nil || r.Added != 1 {
		t.Fatalf("ImportAudit(dry run) = %+v, %v", r, err)
	}
	if _, err := s.GetAgent(ctx, agents[0].ID); err == nil {
		t.Errorf("a dry run wrote agent %s", agents[0].ID)
	}
	if page, _, err := s.QueryAudit(ctx, AuditFilter{Limit: 10}); err != nil || len(page) != 0 {
		t.Errorf("a dry run wrote audit rows: %+v, %v", page, err)
	}
}

func TestImportedID(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := ImportedID("aud_", at, "x"), ImportedID("aud_", at, "x")
	if a != b || !WellFormedID("aud_", a) {
		t.Errorf("ImportedID = %q, %q; want the same well-formed ID", a, b)
	}
	if ImportedID("aud_", at, "y") == a || ImportedID("aud_", at.Add(time.Millisecond), "x") <= a {
		t.Errorf("ImportedID does not tell rows apart, or does not sort by time")
	}
}

func TestWellFormedAgentID(t *testing.T) {
	for id, want := range map[string]bool{
		"0b5f3a9e-6c3b-4f7e-9d1a-2b3c4d5e6f70": true,
		"0B5F3A9E-6C3B-4F7E-9D1A-2B3C4D5E6F70": true,
		"agt_01JD3X0000000000000000000A":       true,
		"0b5f3a9e-6c3b-4f7e-9d1a-2b3c4d5e6f7":  false,
		"0b5f3a9e_6c3b-4f7e-9d1a-2b3c4d5e6f70": false,
		"0b5f3a9e-6c3b-4f7e-9d1a-2b3c4d5e6f7g": false,
		"apr_01JD3X0000000000000000000A":       false,
	} {
		if got := WellFormedAgentID(id); got != want {
			t.Errorf("WellFormedAgentID(%q) = %v; want %v", id, got, want)
		}
	}
}
