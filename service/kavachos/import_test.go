package kavachos

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/internal/kavachostest"
	"github.com/kavach-dev/kavach/store"
)

// TestImportDelegationChain imports a chain of two delegations, the
// second cut from the first, and the rows the import cannot take: the
// grants are bound to what covers them up the chain, with the constraints
// KavachOS dropped, and every row it leaves out is reported.
func TestImportDelegationChain(t *testing.T) {
	ctx := t.Context()
	src := kavachostest.New(t, kavachostest.SQLite)
	now := time.Now().UTC().Truncate(time.Second)
	if err := src.User(ctx, "user-1", now); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, a := range []kavachostest.Agent{
		{Name: "root", Type: "autonomous", Status: "active", TenantID: "", Permissions: []kavachostest.Permission{
			{Resource: "mcp:files:*", Actions: []string{"read", "write"}, Constraints: map[string]any{"maxCallsPerHour": 10}}}},
		{Name: "mid", Type: "delegated", Status: "active"},
		{Name: "leaf", Type: "delegated", Status: "active"},
		{Name: "odd", Type: "robot", Status: "active"},
	} {
		a.ID, a.OwnerID, a.CreatedAt = kavachostest.NewID(), "user-1", now.Add(-time.Hour)
		if _, err := src.Agent(ctx, a); err != nil {
			t.Fatal(err)
		}
		ids[a.Name] = a.ID
	}
	d1, d2, d3 := kavachostest.NewID(), kavachostest.NewID(), kavachostest.NewID()
	files := []kavachostest.Permission{{Resource: "mcp:files:reports", Actions: []string{"read", "write"}}}
	for _, d := range []struct {
		id, from, to string
		perms        []kavachostest.Permission
		depth        int
	}{
		{d1, "root", "mid", files, 1},
		{d2, "mid", "leaf", []kavachostest.Permission{{Resource: "mcp:files:reports", Actions: []string{"read"}}}, 2},
		{d3, "root", "odd", files, 1},
	} {
		if err := src.Delegation(ctx, d.id, ids[d.from], ids[d.to], d.perms, d.depth, 1, "active", now.Add(time.Hour), now.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Approval(ctx, kavachostest.NewID(), ids["root"], "user-1", "read", "mcp:files:*", "pending", now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	source, err := OpenSource(ctx, src.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer source.Close()
	st, err := store.Open(ctx, store.Options{URL: filepath.Join(t.TempDir(), "kavach.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var findings bytes.Buffer
	r, err := Import(ctx, source, st, "test", Options{Findings: &findings, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Agents != (Count{Read: 4, Added: 3, NotImported: 1}) || r.Delegs != (Count{Read: 3, Added: 2, NotImported: 1}) ||
		r.Approvals != (Count{Read: 1, NotImported: 1}) {
		t.Errorf("counts: agents %+v, delegations %+v, approvals %+v", r.Agents, r.Delegs, r.Approvals)
	}
	for _, kind := range []string{"agent_not_imported", "delegation_not_imported", "approval_not_imported", "delegation_constraints"} {
		if r.Findings[kind] == 0 {
			t.Errorf("no %s finding: %v", kind, r.Findings)
		}
	}
	var doc struct {
		Findings []Finding `json:"findings"`
		Report   Report    `json:"report"`
	}
	if err := json.Unmarshal(findings.Bytes(), &doc); err != nil || int64(len(doc.Findings)) != sum(r.Findings) || doc.Report.Agents != r.Agents {
		t.Errorf("the JSON report holds %d findings (want %d), %v:\n%s", len(doc.Findings), sum(r.Findings), err, findings.String())
	}

	mid, leaf := delegation(t, st, ids["mid"]), delegation(t, st, ids["leaf"])
	rootKey := engine.PermissionKey("mcp:files:*", []string{"read", "write"})
	if g := mid.Permissions[0]; g.CoveredBy != rootKey || len(g.Chain) != 0 || mid.Depth != 1 {
		t.Errorf("first delegation's grant = %+v (depth %d); want it covered by the root's permission", g, mid.Depth)
	}
	midKey := engine.PermissionKey("mcp:files:reports", []string{"read", "write"})
	g := leaf.Permissions[0]
	if g.CoveredBy != midKey || !slices.Equal(g.Chain, []domain.Link{{DelegationID: mid.ID, Index: 0}}) || leaf.Depth != 2 || leaf.MaxDepth != 2 {
		t.Errorf("second delegation = %+v, grant %+v; want it chained to %s, depth 2, maxDepth raised to 2", leaf, g, mid.ID)
	}
	if r.IDs[d1] != mid.ID || r.IDs[d2] != leaf.ID {
		t.Errorf("report IDs = %v; want %s → %s, %s → %s", r.IDs, d1, mid.ID, d2, leaf.ID)
	}

	// Again: nothing added.
	r, err = Import(ctx, source, st, "test", Options{})
	if err != nil || r.Agents.Added+r.Delegs.Added+r.Audit.Added != 0 || r.Agents.Skipped != 3 || r.Delegs.Skipped != 2 {
		t.Errorf("second import: agents %+v, delegations %+v, %v", r.Agents, r.Delegs, err)
	}
}

func delegation(t *testing.T, st *store.Store, to string) domain.Delegation {
	t.Helper()
	a, err := st.GetAgent(t.Context(), to)
	if err != nil || len(a.Incoming) != 1 {
		t.Fatalf("GetAgent(%s) = %+v, %v; want one incoming delegation", to, a, err)
	}
	d, err := st.GetDelegation(t.Context(), a.Incoming[0])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
