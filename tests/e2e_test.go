package tests

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
)

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, s)
	}
	return v
}

// TestQuickstartWithCLI walks the seeds' quickstart with the kavach CLI
// against the real binary on an embedded SQLite file.
func TestQuickstartWithCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, "--database", filepath.Join(dir, "kavach.db"))
	srv := "--server=" + s.URL

	if out, _, code := cli(t, nil, "status", "--ready", srv); code != 0 || !strings.Contains(out, "ready") {
		t.Errorf("kavach status --ready = %q, exit %d; want ready, 0", out, code)
	}
	if _, _, code := cli(t, nil, "status", "--ready", "--server", "http://127.0.0.1:1"); code != 1 {
		t.Errorf("kavach status --ready against nothing: exit %d; want 1", code)
	}
	out, errOut, code := cli(t, nil, "agent", "create", srv, "--owner", "user-123", "--name", "github-reader",
		"-p", "mcp:github:*=read", "-p", "mcp:github:issues=read,comment")
	if code != 0 {
		t.Fatalf("agent create exited %d: %s", code, errOut)
	}
	agent := decodeJSON[api.AgentWithToken](t, out)
	if !strings.HasPrefix(agent.Token, "kv_") || len(agent.Token) != 46 {
		t.Fatalf("token %q: want kv_ and 46 characters", agent.Token)
	}
	if strings.Contains(s.log(), agent.Token) || strings.Contains(s.log(), agent.Token[3:]) {
		t.Fatal("the sidecar logged the agent token")
	}

	authorize := func(env []string, args ...string) (api.AuthorizeResponse, int) {
		t.Helper()
		out, errOut, code := cli(t, env, append([]string{"authorize", srv}, args...)...)
		if code != 0 && code != 3 {
			t.Fatalf("authorize %v exited %d: %s", args, code, errOut)
		}
		return decodeJSON[api.AuthorizeResponse](t, out), code
	}
	if res, code := authorize(nil, "--agent", agent.ID, "--action", "read", "--resource", "mcp:github:repos"); !res.Allowed || code != 0 {
		t.Errorf("read repos by ID = %+v, exit %d; want allowed, 0", res, code)
	}
	if res, code := authorize(nil, "--agent", agent.ID, "--action", "write", "--resource", "mcp:github:repos"); res.Allowed || code != 3 || res.Code != "no_permission" {
		t.Errorf("write repos = %+v, exit %d; want no_permission, 3", res, code)
	}
	tokenEnv := []string{"KAVACH_AGENT_TOKEN=" + agent.Token}
	if res, _ := authorize(tokenEnv, "--action", "read", "--resource", "mcp:github:issues"); !res.Allowed {
		t.Errorf("read issues by token = %+v; want allowed", res)
	}

	out, errOut, code = cli(t, nil, "agent", "rotate", srv, agent.ID)
	if code != 0 {
		t.Fatalf("agent rotate exited %d: %s", code, errOut)
	}
	rotated := decodeJSON[api.AgentWithToken](t, out)
	if res, _ := authorize(tokenEnv, "--action", "read", "--resource", "mcp:github:issues"); res.Code != "invalid_token" {
		t.Errorf("old token after rotate = %+v; want invalid_token", res)
	}
	if res, _ := authorize([]string{"KAVACH_AGENT_TOKEN=" + rotated.Token}, "--action", "read", "--resource", "mcp:github:issues"); !res.Allowed {
		t.Errorf("new token = %+v; want allowed", res)
	}

	out, _, code = cli(t, nil, "audit", "query", srv, "--agent", agent.ID, "--result", "denied")
	if page := decodeJSON[api.AuditPage](t, out); code != 0 || len(page.Entries) != 1 || page.Entries[0].Code != "no_permission" {
		t.Errorf("audit query denied = %+v (exit %d); want the one no_permission row", page, code)
	}
	csvPath := filepath.Join(dir, "audit.csv")
	if _, errOut, code := cli(t, nil, "audit", "export", srv, "--format", "csv", "-o", csvPath); code != 0 {
		t.Fatalf("audit export exited %d: %s", code, errOut)
	}
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) == 0 {
		t.Fatalf("CSV export = %d rows, %v; want a header and rows", len(rows), err)
	}
	wantHeader := []string{"id", "timestamp", "agentId", "ownerId", "action", "resource", "arguments", "result", "code", "reason",
		"ip", "userAgent", "durationUs", "approvalId", "kind", "actorType", "actorId", "actorName", "onBehalfOf", "changes", "chainId", "chainSeq", "prevHash", "hash"}
	if !slices.Equal(rows[0], wantHeader) {
		t.Fatalf("CSV header = %v; want %v", rows[0], wantHeader)
	}
	// Oldest first: the 5 decisions, and the CLI's two changes of state
	// made with KAVACH_ADMIN_KEY.
	decisions := 0
	var events []string
	for _, r := range rows[1:] {
		switch r[14] {
		case "decision":
			decisions++
		case "event":
			events = append(events, r[4])
			if r[2] != agent.ID || r[15] != "admin_env" || r[16] != "KAVACH_ADMIN_KEY" {
				t.Errorf("CSV event row %v; want agent %s changed by KAVACH_ADMIN_KEY (admin_env)", r, agent.ID)
			}
		default:
			t.Errorf("CSV row of kind %q: %v", r[14], r)
		}
	}
	if decisions != 5 || !slices.Equal(events, []string{"agent.create", "agent.rotate"}) {
		t.Errorf("CSV export = %d decisions and events %v; want 5 decisions and [agent.create agent.rotate]", decisions, events)
	}

	out, _, _ = cli(t, nil, "agent", "list", srv, "--owner", "user-123")
	if list := decodeJSON[api.AgentList](t, out); len(list.Agents) != 1 || strings.Contains(out, rotated.Token) {
		t.Errorf("agent list = %s; want one agent and no token", out)
	}
	if _, errOut, code := cli(t, nil, "agent", "revoke", srv, agent.ID); code != 0 {
		t.Fatalf("agent revoke exited %d: %s", code, errOut)
	}
	if res, _ := authorize(nil, "--agent", agent.ID, "--action", "read", "--resource", "mcp:github:repos"); res.Code != "agent_revoked" {
		t.Errorf("after revoke = %+v; want agent_revoked", res)
	}
	out, _, _ = cli(t, nil, "agent", "get", srv, agent.ID)
	if got := decodeJSON[api.Agent](t, out); got.Status != "revoked" {
		t.Errorf("agent get after revoke: status %q; want revoked", got.Status)
	}
	_, errOut, code = cli(t, nil, "agent", "get", srv, "agt_missing")
	if code != 1 || !strings.Contains(errOut, "agent_not_found") {
		t.Errorf("agent get of a missing agent: exit %d, %q; want 1 and agent_not_found", code, errOut)
	}
}

// TestDataSurvivesRestart checks that agents and audit rows are durable and
// reloaded into OPA on start.
func TestDataSurvivesRestart(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "kavach.db")
	s := start(t, "--database", db)
	cl := s.adminClient()
	ctx := t.Context()
	a, err := cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "n",
		Permissions: []api.Permission{{Resource: "admin:*:delete", Actions: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := cl.CreateAgent(ctx, api.CreateAgentRequest{OwnerID: "u", Name: "r", Permissions: []api.Permission{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.RevokeAgent(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	res, err := cl.Authorize(ctx, api.AuthorizeRequest{Action: "purge", Resource: "admin:projects:delete"}, a.Token)
	if err != nil || !res.Allowed {
		t.Fatalf("before restart: %+v, %v", res, err)
	}
	s.stop(t)

	s2 := start(t, "--database", db)
	cl2 := s2.adminClient()
	res2, err := cl2.Authorize(ctx, api.AuthorizeRequest{Action: "purge", Resource: "admin:projects:delete"}, a.Token)
	if err != nil || !res2.Allowed {
		t.Errorf("after restart, by token: %+v, %v; want allowed", res2, err)
	}
	res3, err := cl2.Authorize(ctx, api.AuthorizeRequest{Action: "read", Resource: "x"}, revoked.Token)
	if err != nil || res3.Code != "agent_revoked" {
		t.Errorf("after restart, revoked agent: %+v, %v; want agent_revoked", res3, err)
	}
	page, err := cl2.QueryAudit(ctx, client.AuditFilter{Kind: "decision"})
	if err != nil || len(page.Entries) != 3 || page.Entries[2].ID != res.AuditID {
		t.Errorf("audit after restart = %+v, %v; want the 3 decisions", page.Entries, err)
	}
}

func TestConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "kavach.yaml")
	err := os.WriteFile(good, []byte(`
database:
  provider: sqlite
  url: `+filepath.Join(dir, "cfg.db")+`
agents:
  enabled: true
  maxPerUser: 1
  auditAll: true
  tokenExpiry: 7d
  defaultPermissions:
    - resource: "docs:*"
      actions: [read]
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, "--config", good)
	cl := s.adminClient()
	a, err := cl.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "u", Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ExpiresAt == nil || a.ExpiresAt.Sub(a.CreatedAt.Time).Hours() != 7*24 || len(a.Permissions) != 1 {
		t.Errorf("agent = %+v; want a 7d expiry and the default permissions", a)
	}
	_, err = cl.CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "u", Name: "n2"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != "agent_limit_reached" {
		t.Errorf("second agent with maxPerUser 1 = %v; want agent_limit_reached", err)
	}

	for name, tc := range map[string]struct{ yaml, want string }{
		"bad expiry":     {"agents:\n  tokenExpiry: 7x\n", "agents.tokenExpiry"},
		"unknown key":    {"agents:\n  maxPerUsr: 3\n", "maxPerUsr"},
		"bad permission": {"agents:\n  defaultPermissions:\n    - resource: 'a::b'\n      actions: [read]\n", "a::b"},
		"bad provider":   {"database:\n  provider: mysql\n", "mysql"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := cli(t, nil, "serve", "--addr", "127.0.0.1:0", "--database", filepath.Join(dir, "x.db"), "--config", path)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Errorf("serve with %s: exit %d, stderr %q; want exit 2 naming %q", name, code, errOut, tc.want)
			}
		})
	}
}

func TestMigrateAndSkipMigrations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "m.db")
	want := fmt.Sprintf("version %d", latestMigration(t))
	for range 2 {
		out, errOut, code := cli(t, nil, "migrate", "--database", db)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("migrate: exit %d, %q %q; want %s", code, out, errOut, want)
		}
	}
	// An unmigrated database with --skip-migrations fails at start, clearly.
	_, err := startErr(t, "--database", filepath.Join(dir, "empty.db"), "--skip-migrations")
	if err == nil || !strings.Contains(err.Error(), "no such table") {
		t.Errorf("serve --skip-migrations on an empty database = %v; want a start-up failure naming the missing table", err)
	}
	// On a migrated one it serves.
	start(t, "--database", db, "--skip-migrations")
}

// latestMigration is the number of the newest SQLite migration in the
// source tree: the schema version a fresh database migrates to.
func latestMigration(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("..", "store", "migrations", "sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	latest := 0
	for _, e := range entries {
		num, _, _ := strings.Cut(e.Name(), "_")
		if v, err := strconv.Atoi(num); err == nil {
			latest = max(latest, v)
		}
	}
	return latest
}
