package tests

import (
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSeedFullWorkingExample runs the seeds' full working example (as the Go
// program tests/quickstart) against the real binary and compares its output
// with what the seed shows.
func TestSeedFullWorkingExample(t *testing.T) {
	dir := t.TempDir()
	s := start(t, "--database", filepath.Join(dir, "kavach.db"))
	csvPath := filepath.Join(dir, "audit.csv")
	cmd := exec.CommandContext(t.Context(), "go", "run", "./quickstart", "-server", s.URL, "-csv", csvPath)
	cmd.Env = cleanEnv()
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
	if err != nil || len(rows) != 4 {
		t.Errorf("audit export = %d rows, %v; want a header and the 3 decisions", len(rows), err)
	}
}
