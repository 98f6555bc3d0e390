package tests

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
)

// within reports whether got is want give or take a second.
func within(got, want time.Duration) bool {
	return got >= want-time.Second && got <= want+time.Second
}

// approval.ttl takes a unit: `ttl: 5m` opens approval requests that expire
// five minutes after they were created, as the API reports them. The CLI's
// --expires-in flags read durations the same way (with d and w), and a bad
// duration in the file, a flag or an environment variable stops the
// command with exit code 2 and a message naming the setting.
func TestDurationsTakeUnits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kavach.yaml")
	writeFile(t, cfg, "approval:\n  ttl: 5m\n")
	s := start(t, "--database", filepath.Join(dir, "kavach.db"), "--config", cfg)
	cl := s.adminClient()
	ctx := t.Context()

	a := mustCreate(t, cl, constrained("mcp:deploy:production", map[string]any{"requireApproval": true}, "execute"))
	res := authz(t, cl, api.AuthorizeRequest{AgentID: a.ID, Action: "execute", Resource: "mcp:deploy:production"})
	if res.Code != "approval_required" || res.ApprovalID == "" {
		t.Fatalf("authorize = %+v; want approval_required with an approvalId", res)
	}
	ap, err := cl.GetApproval(ctx, res.ApprovalID)
	if err != nil {
		t.Fatal(err)
	}
	if got := ap.ExpiresAt.Sub(ap.CreatedAt.Time); !within(got, 5*time.Minute) {
		t.Errorf("approval expiresAt - createdAt = %v (%v - %v); want 5m (approval.ttl: 5m)", got, ap.ExpiresAt, ap.CreatedAt)
	}

	srv := "--server=" + s.URL
	out, errOut, code := cli(t, nil, "agent", "create", srv, "--owner", "u", "--name", "n", "--expires-in", "1h30m")
	if ag := decodeJSON[api.AgentWithToken](t, out); code != 0 || ag.ExpiresAt == nil || !within(ag.ExpiresAt.Sub(ag.CreatedAt.Time), 90*time.Minute) {
		t.Errorf("agent create --expires-in 1h30m: exit %d, %s %s; want an agent expiring 90m after creation", code, out, errOut)
	}
	out, errOut, code = cli(t, nil, "keys", "create", srv, "--name", "k", "--role", "decider", "--expires-in", "30d")
	if k := decodeJSON[api.KeyWithSecret](t, out); code != 0 || k.ExpiresAt == nil || !within(k.ExpiresAt.Sub(k.CreatedAt.Time), 30*24*time.Hour) {
		t.Errorf("keys create --expires-in 30d: exit %d, %s %s; want a key expiring 30 days after creation", code, out, errOut)
	}
	sub := mustCreate(t, cl)
	out, errOut, code = cli(t, nil, "delegate", srv, "--from", a.ID, "--to", sub.ID, "-p", "mcp:deploy:production=execute", "--expires-in", "2w")
	if d := decodeJSON[api.Delegation](t, out); code != 0 || !within(time.Until(d.ExpiresAt.Time), 14*24*time.Hour) {
		t.Errorf("delegate --expires-in 2w: exit %d, %s %s; want a delegation expiring in 14 days", code, out, errOut)
	}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"delegate, bad unit", nil, []string{"delegate", srv, "--from", a.ID, "--to", sub.ID, "-p", "mcp:deploy:production=execute", "--expires-in", "5x"},
			`--expires-in: "5x" is not a duration: use a number with a unit (90m, 24h, 7d)`},
		{"agent create, no unit", nil, []string{"agent", "create", srv, "--owner", "u", "--name", "n", "--expires-in", "3600"},
			`--expires-in: "3600" has no unit`},
		{"keys create, negative", nil, []string{"keys", "create", srv, "--name", "k", "--role", "decider", "--expires-in", "-1h"},
			`--expires-in: "-1h" is out of range: use from 1s to 36500d`},
		{"bench, bad duration", nil, []string{"bench", srv, "--duration", "10"}, `--duration: "10" has no unit`},
		{"serve, file", nil, []string{"serve", "--addr", "127.0.0.1:0", "--database", filepath.Join(dir, "x.db"), "--config", writeConfig(t, dir, "approval:\n  ttl: 5x\n")},
			`approval.ttl: "5x" is not a duration: use seconds (300) or a number with a unit (5m, 1h, 7d)`},
		{"serve, env", []string{"KAVACH_DATABASE_TIMEOUT=5"}, []string{"serve", "--addr", "127.0.0.1:0", "--database", filepath.Join(dir, "x.db")},
			`database.timeout (--database-timeout, KAVACH_DATABASE_TIMEOUT): "5" has no unit: use a number with a unit (500ms, 5s, 1m)`},
		{"serve, flag", nil, []string{"serve", "--addr", "127.0.0.1:0", "--database", filepath.Join(dir, "x.db"), "--database-timeout", "2m"},
			`database.timeout (--database-timeout, KAVACH_DATABASE_TIMEOUT): "2m" is out of range: use from 100ms to 1m`},
	} {
		_, errOut, code := cli(t, tc.env, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q", tc.name, code, errOut, tc.want)
		}
	}
}

// writeConfig writes a configuration file of its own under dir.
func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	f, err := filepath.Abs(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-bad.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, f, body)
	return f
}
