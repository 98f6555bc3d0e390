package tests

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kavach-dev/kavach/client"
)

// kavach bench leaves nothing live behind: after a short run against the
// real sidecar, every agent it created is revoked (no agent of a bench-*
// owner is left active) and so is its decider key.
func TestBenchRevokesWhatItCreated(t *testing.T) {
	t.Parallel()
	s := start(t, "--database", filepath.Join(t.TempDir(), "kavach.db"))
	const agents = 12
	out, stderr, code := cli(t, nil, "bench", "--server", s.URL, "--agents", "12", "--concurrency", "2",
		"--duration", "300ms", "--warmup", "0s", "--durable-floor")
	if code != 0 {
		t.Fatalf("kavach bench = exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	// The sidecar's CPU per decision, read from its /metrics around the
	// measured phase, is a column of its own.
	if !strings.Contains(out, "cpu/decision") || !regexp.MustCompile(`(?m)^kavach sidecar .* [0-9.]+(µs|ms)\s+1\.00$`).MatchString(out) {
		t.Errorf("kavach bench printed no CPU per decision for the sidecar:\n%s", out)
	}
	// The durable floor ran in the same run, without an error.
	if !regexp.MustCompile(`(?m)^durable floor\s+[1-9]\d*\s+0\s`).MatchString(out) {
		t.Errorf("kavach bench --durable-floor printed no durable floor row without errors:\n%s", out)
	}
	if strings.Contains(stderr, "not revoked") || strings.Contains(stderr, "revoke the bench's key") {
		t.Errorf("kavach bench reported failed revocations:\n%s", stderr)
	}
	cl := s.adminClient()
	all, err := cl.ListAllAgents(t.Context(), client.AgentFilter{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, a := range all.Agents {
		if !strings.HasPrefix(a.OwnerID, "bench-") {
			continue
		}
		if a.Status != "revoked" {
			t.Errorf("bench agent %s (owner %s) is %s after the run; want revoked", a.ID, a.OwnerID, a.Status)
		} else {
			revoked++
		}
	}
	if revoked != agents {
		t.Errorf("%d revoked bench agents after the run; want the %d it created", revoked, agents)
	}
	keys, err := cl.ListAllKeys(t.Context(), client.Page{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys.Keys {
		if k.Name == "kavach-bench" && k.Status != "revoked" {
			t.Errorf("the bench's key %s is %s after the run; want revoked", k.ID, k.Status)
		}
	}
}
