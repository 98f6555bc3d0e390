package tests

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/kavach-dev/kavach"

// deps lists the packages pkg depends on, itself included (go list -deps).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", module+"/"+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// The layers depend only downwards: the wire types (api) and the model
// (domain) on nothing of the project, the Go client on api alone, so an
// app that links the client gets no database driver, OPA or file watcher.
func TestLayers(t *testing.T) {
	t.Parallel()
	for pkg, allowed := range map[string][]string{
		"api":    {"api"},
		"domain": {"domain"},
		"client": {"api", "client"},
		// Tracing is a leaf every layer may use: it knows nothing of them.
		"telemetry": {"telemetry"},
	} {
		for _, d := range deps(t, pkg) {
			if strings.HasPrefix(d, module+"/") && !slices.Contains(allowed, strings.TrimPrefix(d, module+"/")) {
				t.Errorf("%s depends on %s; it may depend only on %v", pkg, d, allowed)
			}
			for _, banned := range []string{"modernc.org/sqlite", "github.com/jackc/pgx", "github.com/open-policy-agent/opa", "github.com/fsnotify"} {
				if strings.HasPrefix(d, banned) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}
