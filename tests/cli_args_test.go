package tests

import (
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
