package tests

import (
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSeedFullWorkingExample runs the seeds' full working example (as the Go
// program tests/quickstart) against the real binary and compares its output
// with what the seed shows.
func TestSeedFullWorkingExample(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, "--database", filepath.Join(dir, "kavach.db"))
	csvPath := filepath.Join(dir, "audit.csv")
	cmd := exec.CommandContext(t.Context(), "go", "run", "./quickstart", "-server", s.URL, "-csv", csvPath)
	cmd.Env = append(cleanEnv(), "KAVACH_API_KEY="+adminKey)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{"true", "false", "true", `^kv_[A-Za-z0-9_-]{43}$`, `[{ resource: 'mcp:github:issues', actions: ['read'] }]`}
	if len(lines) != len(want) {
		t.Fatalf("quickstart printed %d lines:\n%s\nwant %d", len(lines), out, len(want))
	}
	for i, w := range want {
		if strings.HasPrefix(w, "^") {
			if !regexp.MustCompile(w).MatchString(lines[i]) {
				t.Errorf("line %d = %q; want a match of %s", i+1, lines[i], w)
			}
		} else if lines[i] != w {
			t.Errorf("line %d = %q; want %q", i+1, lines[i], w)
		}
	}
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) == 0 {
		t.Fatalf("audit export = %d rows, %v; want a header and rows", len(rows), err)
	}
	// The full trail, oldest first: the 3 decisions and the 4 changes.
	kind, action := slices.Index(rows[0], "kind"), slices.Index(rows[0], "action")
	if kind < 0 || action < 0 {
		t.Fatalf("audit export header = %v; want kind and action columns", rows[0])
	}
	decisions := 0
	var events []string
	for _, r := range rows[1:] {
		if r[kind] == "decision" {
			decisions++
		} else {
			events = append(events, r[kind]+":"+r[action])
		}
	}
	if want := []string{"event:agent.create", "event:agent.rotate", "event:agent.create", "event:delegation.create"}; decisions != 3 || !slices.Equal(events, want) {
		t.Errorf("audit export = %d decisions and %v; want the 3 decisions and %v", decisions, events, want)
	}
}
