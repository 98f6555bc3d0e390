package tests

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/internal/kavachostest"
)

// BenchmarkScale is the cost growth table: for each number of agents
// (KAVACH_SCALE_AGENTS, comma-separated; default 1000,100000), a KavachOS
// database of that many agents is generated, imported with `kavach
// import --kavachos` (timed), and served by the real binary on SQLite
// (start-up to /ready timed); then decisions over HTTP, one at a time:
// cold (the first for each of 400 agents spread over the whole set, by ID
// and, for 400 others, by token) and warm (the same agents again), and
// the process's resident memory. Databases are kept in
// KAVACH_SCALE_DIR (default a temporary directory) and reused when
// present, so a size is generated and imported once.
//
//	KAVACH_SCALE_AGENTS=1000,100000,1000000 KAVACH_SCALE_DIR=/var/tmp/kavach-scale \
//	  go test ./tests -run X -bench Scale -benchtime 1x -timeout 2h
//
// Each size reports its warm p50 against the first size's (x-first), in
// one run.
func BenchmarkScale(b *testing.B) {
	sizes := []int{1000, 100_000}
	if v := os.Getenv("KAVACH_SCALE_AGENTS"); v != "" {
		sizes = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1000 {
				b.Fatalf("KAVACH_SCALE_AGENTS: %q is not a number of agents (1000 or more)", f)
			}
			sizes = append(sizes, n)
		}
	}
	dir := os.Getenv("KAVACH_SCALE_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	var first time.Duration
	for _, n := range sizes {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			target, importTime := scaleDatabase(b, dir, n)
			var m scaleFigures
			for b.Loop() {
				m = measureScale(b, target, n)
			}
			if first == 0 {
				first = m.warm
			}
			b.ReportMetric(importTime.Seconds(), "import-s")
			b.ReportMetric(m.ready.Seconds(), "ready-s")
			b.ReportMetric(float64(m.rss)/(1<<20), "rss-MiB")
			b.ReportMetric(float64(m.warm.Microseconds()), "p50-warm-µs")
			b.ReportMetric(float64(m.cold.Microseconds()), "p50-cold-µs")
			b.ReportMetric(float64(m.tokenWarm.Microseconds()), "p50-token-warm-µs")
			b.ReportMetric(float64(m.tokenCold.Microseconds()), "p50-token-cold-µs")
			b.ReportMetric(float64(m.warm)/float64(first), "x-first")
		})
	}
}

// scaleDatabase returns a Kavach database holding n imported agents, and
// how long the import took (read back from the run that made it).
func scaleDatabase(b *testing.B, dir string, n int) (string, time.Duration) {
	b.Helper()
	source := filepath.Join(dir, fmt.Sprintf("kavachos-%d.db", n))
	target := filepath.Join(dir, fmt.Sprintf("kavach-%d.db", n))
	timing := target + ".import-seconds"
	if raw, err := os.ReadFile(timing); err == nil {
		if s, err := strconv.ParseFloat(strings.TrimSpace(string(raw)), 64); err == nil {
			if _, err := os.Stat(target); err == nil {
				return target, time.Duration(s * float64(time.Second))
			}
		}
	}
	for _, p := range []string{source, target, target + "-wal", target + "-shm"} {
		_ = os.Remove(p)
	}
	if err := kavachostest.Generate(b.Context(), source, n); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	cmd := exec.CommandContext(b.Context(), binary, "import", "--kavachos", source, "--database", target)
	cmd.Env = cleanEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		b.Fatalf("kavach import: %v\n%s", err, out.String())
	}
	took := time.Since(start)
	if err := os.WriteFile(timing, []byte(strconv.FormatFloat(took.Seconds(), 'f', 1, 64)), 0o600); err != nil {
		b.Fatal(err)
	}
	return target, took
}

type scaleFigures struct {
	ready                            time.Duration
	rss                              int64
	warm, cold, tokenWarm, tokenCold time.Duration
}

func measureScale(b *testing.B, target string, n int) scaleFigures {
	b.Helper()
	var f scaleFigures
	begin := time.Now()
	s := start(b, "--database", target)
	f.ready = time.Since(begin)
	defer s.stop(b)
	ctx := b.Context()
	key := s.mintKey(b, "scale", "decider")
	c := client.New(s.URL).WithAPIKey(key.Key)
	agentClient := client.New(s.URL)

	// 800 distinct active agents spread over the whole set: the first 400
	// by ID, the others by token.
	r := rand.New(rand.NewPCG(uint64(n), 7))
	var picks []int
	for len(picks) < 800 {
		i := r.IntN(n)
		if _, _, active := kavachostest.GeneratedAgent(i); active && !slices.Contains(picks, i) {
			picks = append(picks, i)
		}
	}
	decide := func(i int, byToken bool) time.Duration {
		id, token, _ := kavachostest.GeneratedAgent(i)
		req := api.AuthorizeRequest{Action: "read", Resource: "mcp:github:repos"}
		cl, cred := c, ""
		if byToken {
			cl, cred = agentClient, token
		} else {
			req.AgentID = id
		}
		t0 := time.Now()
		resp, err := cl.Authorize(ctx, req, cred)
		took := time.Since(t0)
		if err != nil || !resp.Allowed {
			b.Fatalf("authorize agent %d (by token: %v) = %+v, %v", i, byToken, resp, err)
		}
		return took
	}
	round := func(byToken bool, picks []int) time.Duration {
		lat := make([]time.Duration, 0, len(picks))
		for _, i := range picks {
			lat = append(lat, decide(i, byToken))
		}
		return median(lat)
	}
	f.cold = round(false, picks[:400])
	f.tokenCold = round(true, picks[400:])
	var warm, tokenWarm []time.Duration
	for range 3 {
		warm = append(warm, round(false, picks[:400]))
		tokenWarm = append(tokenWarm, round(true, picks[400:]))
	}
	f.warm, f.tokenWarm = median(warm), median(tokenWarm)
	f.rss = processRSS(b, s.cmd.Process.Pid)
	return f
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// processRSS is the resident set of pid, from /proc.
func processRSS(b *testing.B, pid int) int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
