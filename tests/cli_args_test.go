package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kavach-dev/kavach/api"
)

// Flags may follow the arguments, as the README's commands write them, and
// a bundle fetched from a running sidecar reports what it holds.
func TestCLIFlagsAfterArgumentsAndBundleCounts(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	a, err := s.adminClient().CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "alice", Name: "bot",
		Permissions: []api.Permission{{Resource: "mcp:github:*", Actions: []string{"read"}}}})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cli(t, nil, "agent", "get", a.ID, "--server", s.URL)
	if code != 0 || !strings.Contains(out, a.ID) {
		t.Fatalf("agent get ID --server: exit %d, %s %s", code, out, errOut)
	}
	out, errOut, code = cli(t, nil, "bundle", "build", "--server", s.URL, "-o", filepath.Join(t.TempDir(), "b.tar.gz"))
	if code != 0 || !strings.Contains(out, "1 agents") {
		t.Fatalf("bundle build --server: exit %d, %s %s", code, out, errOut)
	}
}

// The CLI's papercuts a first hour found, each held down: a denial is exit
// 3 with the decision on stdout and nothing on stderr (no empty "kavach: "
// line); every JSON answer is indented alike; approval commands take their
// flags after the ID and explain themselves in --help.
func TestCLIFirstHourPapercuts(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	a, err := s.adminClient().CreateAgent(t.Context(), api.CreateAgentRequest{OwnerID: "alice", Name: "bot",
		Permissions: []api.Permission{
			{Resource: "mcp:github:*", Actions: []string{"read"}},
			{Resource: "mcp:deploy:production", Actions: []string{"execute"}, Constraints: map[string]any{"requireApproval": true}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cli(t, nil, "authorize", "--server", s.URL, "--agent", a.ID, "--action", "write", "--resource", "mcp:github:repos")
	if code != 3 || errOut != "" || !strings.Contains(out, `"no_permission"`) {
		t.Errorf("denied authorize: exit %d, stdout %q, stderr %q; want exit 3, the decision on stdout, nothing on stderr", code, out, errOut)
	}
	for _, args := range [][]string{{"policies"}, {"agent", "get", a.ID}, {"keys", "list"}} {
		out, errOut, code := cli(t, nil, append(args, "--server", s.URL)...)
		if code != 0 || !strings.HasPrefix(out, "{\n  \"") {
			t.Errorf("kavach %s: exit %d, %.80q %s; want indented JSON", strings.Join(args, " "), code, out, errOut)
		}
	}
	out, _, code = cli(t, nil, "authorize", "--server", s.URL, "--agent", a.ID, "--action", "execute", "--resource", "mcp:deploy:production")
	ap := decodeJSON[api.AuthorizeResponse](t, out)
	if code != 3 || ap.ApprovalID == "" {
		t.Fatalf("authorize under requireApproval: exit %d, %s; want exit 3 with an approvalId", code, out)
	}
	out, errOut, code = cli(t, nil, "approval", "approve", ap.ApprovalID, "--by", "alice", "--server", s.URL)
	if got := decodeJSON[api.Approval](t, out); code != 0 || got.Status != "approved" || got.OnBehalfOf != "alice" {
		t.Errorf("approval approve ID --by alice: exit %d, %s %s; want approved on behalf of alice", code, out, errOut)
	}
	for _, args := range [][]string{{"authorise"}, {"agent", "lst"}, {"keys", "create", "--adr", "x"}, {"keys", "create", "--name", "a"}} {
		if _, errOut, code := cli(t, nil, args...); code != 2 || errOut == "" {
			t.Errorf("kavach %s: exit %d, %q; want 2 (a usage error, never 3: denied)", strings.Join(args, " "), code, errOut)
		}
	}
	missing := filepath.Join(t.TempDir(), "kavach.db")
	for _, args := range [][]string{{"audit", "verify"}, {"bundle", "build", "-o", filepath.Join(t.TempDir(), "b.tar.gz")}} {
		_, errOut, code := cli(t, nil, append(args, "--database", missing)...)
		if _, err := os.Stat(missing); code != 2 || !strings.Contains(errOut, "no database at") || err == nil {
			t.Errorf("kavach %s on a missing database: exit %d, %q, created: %v; want exit 2 and nothing created", strings.Join(args, " "), code, errOut, err == nil)
		}
	}
	for _, sub := range []string{"get", "approve", "deny"} {
		out, _, code := cli(t, nil, "approval", sub, "--help")
		if code != 0 || !strings.Contains(out, "APPROVAL_ID") || !strings.Contains(out, "USAGE") {
			t.Errorf("approval %s --help: exit %d, %s; want usage naming APPROVAL_ID", sub, code, out)
		}
	}
}
