package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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

	"golang.org/x/sync/errgroup"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/client"
	"github.com/kavach-dev/kavach/config"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/internal/kavachostest"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/store"
)

// BenchmarkScale is the cost growth table: for each number of agents
// (KAVACH_SCALE_AGENTS, comma-separated; default 1000,100000), a KavachOS
// database of that many agents is generated and imported with `kavach
// import --kavachos` (timed); then, for every size in the same run:
//
//   - in process: the engine over the bounded store (the sidecar's default,
//     room for 50,000 agents) reading the imported SQLite database:
//     decisions cold (the first for each of 400 agents spread over the
//     whole set, by ID, and 400 others by token hash) and warm (the same
//     agents again);
//   - over HTTP: the real binary serving the database (start-up to /ready
//     timed, resident memory read from /proc), decisions one at a time,
//     each answered after its audit row is committed: cold, then warm.
//
// Warm rounds go through the sizes in turn, five times, and report the
// median round, so that a noisy machine slows every size alike; each size
// is also reported against the first (x-first). Databases are kept in
// KAVACH_SCALE_DIR (default a temporary directory) and reused when
// present, so a size is generated and imported once
// (KAVACH_SCALE_PREPARE_ONLY=1 only prepares them).
//
//	KAVACH_SCALE_AGENTS=1000,100000,1000000 KAVACH_SCALE_DIR=/var/tmp/kavach-scale \
//	  go test ./tests -run X -bench Scale -benchtime 1x -timeout 2h -v
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
	for b.Loop() {
		figs := make([]*scaleFigures, len(sizes))
		for i, n := range sizes {
			figs[i] = &scaleFigures{n: n, picks: scalePicks(n)}
			figs[i].target, figs[i].importTime = scaleDatabase(b, dir, n)
		}
		if os.Getenv("KAVACH_SCALE_PREPARE_ONLY") != "" {
			b.Skip("KAVACH_SCALE_PREPARE_ONLY: databases prepared, nothing measured")
		}
		measureInProcess(b, figs)
		measureOverHTTP(b, figs)
		for _, f := range figs {
			at := fmt.Sprintf("@%d", f.n)
			b.ReportMetric(f.importTime.Seconds(), "import-s"+at)
			b.ReportMetric(f.ready.Seconds(), "ready-s"+at)
			b.ReportMetric(float64(f.rss)/(1<<20), "rss-MiB"+at)
			if f.rssFull > 0 {
				b.ReportMetric(float64(f.rssFull)/(1<<20), "rss-full-MiB"+at)
			}
			b.ReportMetric(us(f.engine.warm), "engine-warm-µs"+at)
			b.ReportMetric(us(f.engine.cold), "engine-cold-µs"+at)
			b.ReportMetric(us(f.http.warm), "http-warm-µs"+at)
			b.ReportMetric(us(f.http.cold), "http-cold-µs"+at)
			b.ReportMetric(float64(f.engine.warm)/float64(figs[0].engine.warm), "engine-x-first"+at)
			b.ReportMetric(float64(f.http.warm)/float64(figs[0].http.warm), "http-x-first"+at)
		}
		b.Log("\n| agents | import | ready | resident (after 60,000 agents) | decision p50 in process, warm / cold (by token) | over HTTP with audit, warm / cold (by token) |")
		for _, f := range figs {
			b.Logf("| %d | %.1f s | %.2f s | %.0f MiB (%.0f MiB) | %.0f / %.0f µs (%.0f / %.0f) | %.0f / %.0f µs (%.0f / %.0f) |", f.n,
				f.importTime.Seconds(), f.ready.Seconds(), float64(f.rss)/(1<<20), float64(f.rssFull)/(1<<20),
				us(f.engine.warm), us(f.engine.cold), us(f.engine.tokenWarm), us(f.engine.tokenCold),
				us(f.http.warm), us(f.http.cold), us(f.http.tokenWarm), us(f.http.tokenCold))
		}
	}
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

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
	n          int
	picks      []int
	target     string
	importTime time.Duration
	ready      time.Duration
	rss        int64
	// rssFull is resident memory after decisions on 60,000 agents.
	rssFull int64
	engine  latencies
	http    latencies
}

// latencies are the medians of one kind of measurement.
type latencies struct{ warm, cold, tokenWarm, tokenCold time.Duration }

// scalePicks are 800 distinct active agents spread over n: the first 400
// are asked about by ID, the others by token.
func scalePicks(n int) []int {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	var picks []int
	for len(picks) < 800 {
		i := r.IntN(n)
		if _, _, active := kavachostest.GeneratedAgent(i); active && !slices.Contains(picks, i) {
			picks = append(picks, i)
		}
	}
	return picks
}

// rounds measures cold rounds of every size, then warm rounds through the
// sizes in turn; decide(size, pick, byToken) makes one decision.
func rounds(figs []*scaleFigures, out func(*scaleFigures) *latencies, decide func(f *scaleFigures, i int, byToken bool) time.Duration) {
	round := func(f *scaleFigures, byToken bool) time.Duration {
		picks := f.picks[:400]
		if byToken {
			picks = f.picks[400:]
		}
		lat := make([]time.Duration, 0, len(picks))
		for _, i := range picks {
			lat = append(lat, decide(f, i, byToken))
		}
		return median(lat)
	}
	for _, f := range figs {
		l := out(f)
		l.cold, l.tokenCold = round(f, false), round(f, true)
	}
	warm := make([][]time.Duration, len(figs))
	tokenWarm := make([][]time.Duration, len(figs))
	for range 5 {
		for j, f := range figs {
			warm[j] = append(warm[j], round(f, false))
			tokenWarm[j] = append(tokenWarm[j], round(f, true))
		}
	}
	for j, f := range figs {
		l := out(f)
		l.warm, l.tokenWarm = median(warm[j]), median(tokenWarm[j])
	}
}

func measureInProcess(b *testing.B, figs []*scaleFigures) {
	b.Helper()
	ctx := b.Context()
	engines := make([]*engine.Engine, len(figs))
	for j, f := range figs {
		st, err := store.Open(ctx, store.Options{URL: f.target})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		e, err := engine.NewWithData(ctx, engine.CachedData(replica.Lookup(st), config.DefaultCachedAgents), nil)
		if err != nil {
			b.Fatal(err)
		}
		e.NoCache = true
		engines[j] = e
	}
	now := time.Now()
	rounds(figs, func(f *scaleFigures) *latencies { return &f.engine }, func(f *scaleFigures, i int, byToken bool) time.Duration {
		id, token, _ := kavachostest.GeneratedAgent(i)
		in := engine.Input{Action: "read", Resource: "mcp:github:repos", Now: now}
		if byToken {
			sum := sha256.Sum256([]byte(token))
			in.TokenHash = hex.EncodeToString(sum[:])
		} else {
			in.AgentID = id
		}
		e := engines[slices.Index(figs, f)]
		t0 := time.Now()
		d, err := e.Decide(ctx, in)
		took := time.Since(t0)
		if err != nil || !d.Allowed {
			b.Fatalf("decide agent %d of %d (by token: %v) = %+v, %v", i, f.n, byToken, d, err)
		}
		return took
	})
}

func measureOverHTTP(b *testing.B, figs []*scaleFigures) {
	b.Helper()
	ctx := b.Context()
	type served struct {
		s            *sidecar
		decider, own *client.Client
	}
	sidecars := make([]served, len(figs))
	for j, f := range figs {
		begin := time.Now()
		s := start(b, "--database", f.target)
		f.ready = time.Since(begin)
		defer s.stop(b)
		sidecars[j] = served{s, client.New(s.URL).WithAPIKey(s.mintKey(b, "scale", "decider").Key), client.New(s.URL)}
	}
	rounds(figs, func(f *scaleFigures) *latencies { return &f.http }, func(f *scaleFigures, i int, byToken bool) time.Duration {
		id, token, _ := kavachostest.GeneratedAgent(i)
		sc := sidecars[slices.Index(figs, f)]
		req := api.AuthorizeRequest{Action: "read", Resource: "mcp:github:repos"}
		cl, cred := sc.decider, ""
		if byToken {
			cl, cred = sc.own, token
		} else {
			req.AgentID = id
		}
		t0 := time.Now()
		resp, err := cl.Authorize(ctx, req, cred)
		took := time.Since(t0)
		if err != nil || !resp.Allowed {
			b.Fatalf("authorize agent %d of %d (by token: %v) = %+v, %v", i, f.n, byToken, resp, err)
		}
		return took
	})
	for j, f := range figs {
		f.rss = processRSS(b, sidecars[j].s.cmd.Process.Pid)
	}
	// Then memory with the cache full: decisions on 60,000 distinct agents
	// (more than policies.cachedAgents' 50,000), 16 at a time.
	for j, f := range figs {
		if f.n < 100_000 {
			continue
		}
		sc := sidecars[j]
		next := make(chan int)
		var g errgroup.Group
		for range 16 {
			g.Go(func() error {
				for i := range next {
					id, _, active := kavachostest.GeneratedAgent(i)
					resp, err := sc.decider.Authorize(ctx, api.AuthorizeRequest{AgentID: id, Action: "read", Resource: "mcp:github:repos"}, "")
					if err != nil || resp.Allowed != active {
						return fmt.Errorf("authorize agent %d = %+v: %w", i, resp, err)
					}
				}
				return nil
			})
		}
		for i := range 60_000 {
			next <- i * (f.n / 60_000)
		}
		close(next)
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		f.rssFull = processRSS(b, sc.s.cmd.Process.Pid)
	}
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
