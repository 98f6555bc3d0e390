package tests

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/internal/kavachostest"
	"github.com/kavach-dev/kavach/internal/pgtest"
)

// TestImportKavachOS builds a KavachOS database (every agent type, a
// revoked, an expired and a rotated agent, a delegation, constrained
// permissions, approvals and audit rows) on each engine KavachOS runs on,
// imports it with kavach import, and then runs kavach serve on the result:
// every token KavachOS issued decides as KavachOS decided, or as the
// import reported where Kavach is stricter (looser only where an approval
// or a delegation by token is involved, as reported).
func TestImportKavachOS(t *testing.T) {
	for _, flavor := range []string{kavachostest.SQLite, kavachostest.Postgres, kavachostest.MySQL} {
		t.Run(flavor, func(t *testing.T) {
			t.Parallel()
			src := kavachostest.New(t, flavor)
			fx := buildKavachOS(t, src)
			target := filepath.Join(t.TempDir(), "kavach.db")
			if flavor == kavachostest.Postgres {
				target = pgtest.URL(t)
			}
			checkImport(t, src.URL, target, fx)
		})
	}
}

// kosFixture is what buildKavachOS wrote: the agents' IDs and tokens.
type kosFixture struct {
	orch, sub, svc, rotated, expired, lapsed string
	tokens                                   map[string]string // name → token
	decisions                                []importCase
}

// importCase is one call and what each side decides. finding names the
// report's kind that explains a difference ("" when they agree, or when a
// note that holds for every import explains it).
type importCase struct {
	name             string
	agent, token     string
	action, resource string
	args             string
	ip               string
	kavachos, kavach bool
	finding          string
}

func buildKavachOS(t *testing.T, db *kavachostest.DB) kosFixture {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.User(ctx, "user-1", now))
	fx := kosFixture{tokens: map[string]string{}}
	day := now.Add(24 * time.Hour)
	// A time window around now, in KavachOS's terms (HH:MM strings
	// compared as strings): if it crosses midnight, KavachOS never allows.
	hhmm := func(d time.Duration) string { return now.Add(d).Format("15:04") }
	inStart, inEnd := hhmm(-time.Hour), hhmm(time.Hour)
	inWindow := inStart <= inEnd
	agent := func(name, typ, status string, expires *time.Time, perms []kavachostest.Permission) (string, string) {
		t.Helper()
		id := kavachostest.NewID()
		tok, err := db.Agent(ctx, kavachostest.Agent{ID: id, OwnerID: "user-1", Name: name, Type: typ, Status: status,
			ExpiresAt: expires, CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-time.Minute), Permissions: perms})
		must(err)
		fx.tokens[name] = tok
		return id, tok
	}
	orch, orchTok := agent("orchestrator", "autonomous", "active", &day, []kavachostest.Permission{
		{Resource: "mcp:github:*", Actions: []string{"read"}},
		{Resource: "mcp:deploy:production", Actions: []string{"execute"}, Constraints: map[string]any{"requireApproval": true, "maxCallsPerHour": 5}},
		{Resource: "mcp:files:*", Actions: []string{"read"}, Constraints: map[string]any{"allowedArgPatterns": []string{"^/tmp/"}}},
		{Resource: "mcp:ops:*", Actions: []string{"run"}, Constraints: map[string]any{"timeWindow": map[string]any{"start": inStart, "end": inEnd}}},
		{Resource: "mcp:night:*", Actions: []string{"run"}, Constraints: map[string]any{"timeWindow": map[string]any{"start": hhmm(2 * time.Hour), "end": hhmm(3 * time.Hour)}}},
		{Resource: "admin:*:delete", Actions: []string{"write"}},
		{Resource: "mcp:slack:*", Actions: []string{"post"}, Constraints: map[string]any{"ipAllowlist": []string{"10.0.0.0/8"}}},
		// Covered by the constrained permission 2: KavachOS never reached
		// its execute, which the import removes.
		{Resource: "mcp:deploy:production", Actions: []string{"execute", "read"}},
		// Overlapping a constrained permission without covering it: not
		// imported, lest Kavach allow what KavachOS denied by the first
		// (stricter, reported).
		{Resource: "db:prod:users", Actions: []string{"query"}, Constraints: map[string]any{"requireApproval": true}},
		{Resource: "db:*", Actions: []string{"query"}},
	})
	sub, subTok := agent("sub", "delegated", "active", &day, nil)
	svc, svcTok := agent("svc", "service", "revoked", &day, []kavachostest.Permission{{Resource: "*", Actions: []string{"*"}}})
	rotated, oldTok := agent("rotated", "autonomous", "active", nil, []kavachostest.Permission{{Resource: "tool:search", Actions: []string{"call"}}})
	newTok, err := db.Rotate(ctx, rotated, now)
	must(err)
	past := now.Add(-2 * time.Hour)
	expired, expiredTok := agent("expired", "autonomous", "expired", &past, []kavachostest.Permission{{Resource: "tool:search", Actions: []string{"call"}}})
	lapsed, lapsedTok := agent("lapsed", "service", "active", &past, []kavachostest.Permission{{Resource: "tool:search", Actions: []string{"call"}}})
	fx.orch, fx.sub, fx.svc, fx.rotated, fx.expired, fx.lapsed = orch, sub, svc, rotated, expired, lapsed

	must(db.Delegation(ctx, kavachostest.NewID(), orch, sub, []kavachostest.Permission{{Resource: "mcp:files:reports", Actions: []string{"read"}}},
		1, 2, "active", now.Add(time.Hour), now.Add(-30*time.Minute)))
	must(db.Approval(ctx, kavachostest.NewID(), orch, "user-1", "execute", "mcp:deploy:production", "pending", now.Add(time.Hour), now.Add(-time.Minute)))
	must(db.Approval(ctx, kavachostest.NewID(), orch, "user-1", "execute", "mcp:deploy:production", "approved", now.Add(time.Hour), now.Add(-2*time.Minute)))
	for i, result := range []string{"allowed", "denied", "rate_limited"} {
		must(db.Audit(ctx, kavachostest.NewID(), orch, "user-1", "read", "mcp:github:repos", result, "", now.Add(time.Duration(i-10)*time.Minute)))
	}

	tmp, etc := `{"path":"/tmp/report.txt"}`, `{"path":"/etc/passwd"}`
	fx.decisions = []importCase{
		{name: "wildcard", token: orchTok, action: "read", resource: "mcp:github:repos", kavachos: true, kavach: true},
		{name: "wildcard other action", token: orchTok, action: "write", resource: "mcp:github:repos"},
		{name: "wildcard bare prefix", token: orchTok, action: "read", resource: "mcp:github", kavachos: true, finding: "wildcard_bare_prefix"},
		{name: "approval required", token: orchTok, action: "execute", resource: "mcp:deploy:production"},
		{name: "covered permission keeps its other action", token: orchTok, action: "read", resource: "mcp:deploy:production", kavachos: true, kavach: true},
		{name: "arg pattern kept", token: orchTok, action: "read", resource: "mcp:files:notes", args: tmp, kavachos: true, kavach: true},
		{name: "arg pattern refuses", token: orchTok, action: "read", resource: "mcp:files:notes", args: etc},
		{name: "nested argument", token: orchTok, action: "read", resource: "mcp:files:notes", args: `{"paths":["/etc/passwd"]}`, kavachos: true, finding: "arg_patterns_nested"},
		{name: "time window now", token: orchTok, action: "run", resource: "mcp:ops:restart", kavachos: inWindow, kavach: inWindow},
		{name: "time window later", token: orchTok, action: "run", resource: "mcp:night:restart"},
		{name: "mid-pattern wildcard as written", token: orchTok, action: "write", resource: "admin:users:delete", kavachos: true, kavach: true},
		{name: "mid-pattern wildcard remainder", token: orchTok, action: "write", resource: "admin:users:create", kavachos: true, finding: "wildcard_mid_pattern"},
		{name: "ip allowed", token: orchTok, action: "post", resource: "mcp:slack:general", ip: "10.1.2.3", kavachos: true, kavach: true},
		{name: "ip refused", token: orchTok, action: "post", resource: "mcp:slack:general", ip: "192.168.1.1"},
		{name: "first match overlap", token: orchTok, action: "query", resource: "db:prod:users"},
		{name: "first match overlap, elsewhere", token: orchTok, action: "query", resource: "db:test:users", kavachos: true, finding: "first_match_overlap"},
		{name: "by id", agent: orch, action: "read", resource: "mcp:github:repos", kavachos: true, kavach: true},
		{name: "delegated by id", agent: sub, action: "read", resource: "mcp:files:reports", args: tmp, kavachos: true, kavach: true},
		{name: "delegated by id, delegator's constraint", agent: sub, action: "read", resource: "mcp:files:reports", args: etc, kavachos: true, finding: "delegation_constraints"},
		// KavachOS's authorizeByToken ignored delegations (a note of every import).
		{name: "delegated by token", token: subTok, action: "read", resource: "mcp:files:reports", args: tmp, kavach: true},
		{name: "delegation is a subset", agent: sub, action: "read", resource: "mcp:files:secrets", args: tmp},
		{name: "revoked", token: svcTok, action: "read", resource: "anything"},
		{name: "rotated-away token", token: oldTok, action: "call", resource: "tool:search"},
		{name: "rotated token", token: newTok, action: "call", resource: "tool:search", kavachos: true, kavach: true},
		{name: "expired", token: expiredTok, action: "call", resource: "tool:search"},
		{name: "expiry passed", token: lapsedTok, action: "call", resource: "tool:search"},
	}
	return fx
}

func checkImport(t *testing.T, source, target string, fx kosFixture) {
	t.Helper()
	dbEnv := []string{"KAVACH_DATABASE_URL=" + target}
	reportFile := filepath.Join(t.TempDir(), "report.json")

	// A dry run writes nothing.
	out, errOut, code := cli(t, dbEnv, "import", "--kavachos", source, "--dry-run")
	if code != 0 || !strings.Contains(out, "agents       read 6, added 6, skipped (already present) 0") {
		t.Fatalf("import --dry-run = %d:\n%s\n%s", code, out, errOut)
	}
	out, errOut, code = cli(t, dbEnv, "import", "--kavachos", source, "--report", reportFile)
	if code != 0 || !strings.Contains(out, "agents       read 6, added 6") || !strings.Contains(out, "audit rows   read 3, added 3") ||
		!strings.Contains(out, "approvals    read 1, added 1") || !strings.Contains(out, "delegations  read 1, added 1") {
		t.Fatalf("import = %d:\n%s\n%s", code, out, errOut)
	}
	// Again: nothing added, everything already present.
	out, errOut, code = cli(t, dbEnv, "import", "--kavachos", source)
	if code != 0 || !strings.Contains(out, "agents       read 6, added 0, skipped (already present) 6") ||
		!strings.Contains(out, "audit rows   read 3, added 0, skipped (already present) 3") ||
		!strings.Contains(out, "delegations  read 1, added 0, skipped (already present) 1") {
		t.Fatalf("second import = %d:\n%s\n%s", code, out, errOut)
	}
	if out, errOut, code := cli(t, nil, "audit", "verify", "--database", target); code != 0 {
		t.Fatalf("audit verify after import = %d:\n%s\n%s", code, out, errOut)
	}
	found := reportKinds(t, reportFile)

	s := start(t, "--database", target)
	c := s.adminClient()
	ctx := t.Context()
	for _, tc := range fx.decisions {
		got := decide(ctx, t, c, tc)
		if got != tc.kavach {
			t.Errorf("%s: allowed = %v; want %v", tc.name, got, tc.kavach)
		}
		if tc.kavach != tc.kavachos && tc.finding != "" && !found[tc.finding] {
			t.Errorf("%s: Kavach decides %v where KavachOS decided %v, but the report has no %s", tc.name, tc.kavach, tc.kavachos, tc.finding)
		}
	}
	for _, kind := range []string{"shadowed_actions", "approval_flow"} {
		if !found[kind] {
			t.Errorf("report has no %s finding", kind)
		}
	}
	checkImportedAPI(ctx, t, c, fx)
}

// decide asks the sidecar for tc's decision: a refused credential (an
// unknown, revoked or expired token) counts as a denial.
func decide(ctx context.Context, t *testing.T, c *client.Client, tc importCase) bool {
	t.Helper()
	req := api.AuthorizeRequest{AgentID: tc.agent, Action: tc.action, Resource: tc.resource}
	if tc.args != "" {
		req.Arguments = json.RawMessage(tc.args)
	}
	if tc.ip != "" {
		req.Context = &api.RequestContext{IP: tc.ip}
	}
	resp, err := c.Authorize(ctx, req, tc.token)
	if err != nil {
		var ae *client.Error
		if tc.token == "" || !errors.As(err, &ae) || ae.Status >= 500 {
			t.Fatalf("%s: authorize: %v", tc.name, err)
		}
		return false
	}
	return resp.Allowed
}

func reportKinds(t *testing.T, path string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(path) //nolint:gosec // G304: the test's own file
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Findings []struct{ Kind string } `json:"findings"`
		Report   struct {
			Agents struct{ Added int } `json:"agents"`
		} `json:"report"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, raw)
	}
	if doc.Report.Agents.Added != 6 {
		t.Errorf("report's agents.added = %d; want 6", doc.Report.Agents.Added)
	}
	kinds := map[string]bool{}
	for _, f := range doc.Findings {
		kinds[f.Kind] = true
	}
	return kinds
}

// checkImportedAPI uses the imported agents, UUIDs, through the API: get,
// list (paged past them), delegations, approvals, audit, rotate, revoke.
func checkImportedAPI(ctx context.Context, t *testing.T, c *client.Client, fx kosFixture) {
	t.Helper()
	a, err := c.GetAgent(ctx, fx.orch)
	if err != nil || a.ID != fx.orch || len(a.Permissions) != 9 {
		t.Fatalf("GetAgent(%s) = %+v, %v; want it with 9 permissions", fx.orch, a, err)
	}
	seen := map[string]bool{}
	cursor := ""
	for range 10 {
		page, err := c.ListAgents(ctx, client.AgentFilter{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatalf("ListAgents(cursor %q): %v", cursor, err)
		}
		for _, ag := range page.Agents {
			seen[ag.ID] = true
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 6 {
		t.Errorf("paging the agents saw %d; want 6", len(seen))
	}
	dl, err := c.ListDelegations(ctx, fx.sub, client.Page{})
	if err != nil || len(dl.Delegations) != 1 || dl.Delegations[0].FromAgent != fx.orch {
		t.Errorf("ListDelegations(%s) = %+v, %v; want the one from %s", fx.sub, dl, err, fx.orch)
	}
	ap, err := c.ListApprovals(ctx, client.ApprovalFilter{AgentID: fx.orch, Status: "pending"})
	if err != nil || len(ap.Approvals) == 0 {
		t.Errorf("ListApprovals(%s pending) = %+v, %v; want the imported one", fx.orch, ap, err)
	}
	audit, err := c.QueryAudit(ctx, client.AuditFilter{AgentID: fx.orch, Kind: "decision", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	imported := 0
	for _, e := range audit.Entries {
		if e.Actor.Type == "import" {
			imported++
		}
	}
	if imported != 3 {
		t.Errorf("audit of %s holds %d imported rows; want 3", fx.orch, imported)
	}
	// One run added, the second did not: one event.
	if ev, err := c.QueryAudit(ctx, client.AuditFilter{Kind: "event", Action: "import.kavachos"}); err != nil || len(ev.Entries) != 1 ||
		ev.Entries[0].Actor.Type != "import" {
		t.Errorf("import.kavachos events = %+v, %v; want one, by the import", ev.Entries, err)
	}
	name := "orchestrator-renamed"
	if up, err := c.UpdateAgent(ctx, fx.orch, api.UpdateAgentRequest{Name: &name}); err != nil || up.Name != name || up.ID != fx.orch {
		t.Errorf("UpdateAgent(%s) = %+v, %v", fx.orch, up, err)
	}
	if eff, err := c.EffectivePermissions(ctx, fx.sub); err != nil || len(eff.Permissions) != 1 {
		t.Errorf("EffectivePermissions(%s) = %+v, %v; want the delegated one", fx.sub, eff, err)
	}
	// A delegation from an imported agent to one Kavach created.
	helper, err := c.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "user-1", Name: "helper", Permissions: []api.Permission{}})
	if err != nil {
		t.Fatal(err)
	}
	exp := api.NewTime(time.Now().Add(time.Hour))
	if _, err := c.Delegate(ctx, api.DelegateRequest{FromAgent: fx.orch, ToAgent: helper.ID, ExpiresAt: &exp,
		Permissions: []api.Permission{{Resource: "mcp:github:issues", Actions: []string{"read"}}}}); err != nil {
		t.Errorf("Delegate(from %s): %v", fx.orch, err)
	}
	rot, err := c.RotateAgent(ctx, fx.orch)
	if err != nil {
		t.Fatalf("RotateAgent(%s): %v", fx.orch, err)
	}
	read := importCase{name: "after rotation", action: "read", resource: "mcp:github:repos"}
	read.token = rot.Token
	if !decide(ctx, t, c, read) {
		t.Errorf("the token Kavach rotated to does not work")
	}
	read.token = fx.tokens["orchestrator"]
	if decide(ctx, t, c, read) {
		t.Errorf("the imported token still works after a rotation")
	}
	if _, err := c.RevokeAgent(ctx, fx.rotated); err != nil {
		t.Errorf("RevokeAgent(%s): %v", fx.rotated, err)
	}
}
