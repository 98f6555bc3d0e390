package engine

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/kavach-dev/kavach/domain"
)

// BenchmarkDecide measures in-process decisions (no HTTP, no audit) at 100,
// 10,000 and 100,000 agents: the figures must stay flat as agents grow,
// because data is looked up by key, never scanned. Each size starts with
// the Rego floor (floor/agents=N): one prepared query,
// data.kavach.agents[input.agentId].status == "active", over as many
// agents in OPA's own in-memory store. Every case then runs the floor too,
// one evaluation of each in turn, and reports its median against the
// floor's measured alongside (x-floor; x-floor-cpu for the medians of the
// CPU time of the thread deciding, which on a shared machine leaves out the
// time it waited for a core): this machine's speed drifts within seconds,
// and a drift then moves both medians alike.
//
//	go test ./engine -run X -bench Decide -benchtime 20000x
func BenchmarkDecide(b *testing.B) {
	now := time.Now()
	for _, n := range benchSizes() {
		e, err := New(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		src := benchSource(n, now)
		if _, err := e.Load(b.Context(), src); err != nil {
			b.Fatal(err)
		}
		// The load's garbage is not the decisions' cost.
		runtime.GC()
		e.NoCache = true // uncached cost; "cached" below measures a cache hit
		mid := fmt.Sprintf("agt_%d", n/2)
		floor := regoFloor(b, n, mid)
		b.Run(fmt.Sprintf("floor/agents=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			measure(b, floor, nil)
		})
		for _, c := range benchCases(n) {
			b.Run(fmt.Sprintf("%s/agents=%d", c.name, n), func(b *testing.B) {
				c.in.Now = now
				d, err := e.Decide(b.Context(), c.in)
				if err != nil || d.Code != c.code {
					b.Fatalf("Decide = %+v, %v; want %s", d, err, c.code)
				}
				b.ReportAllocs()
				measure(b, func() {
					if _, err := e.Decide(context.Background(), c.in); err != nil {
						b.Fatal(err)
					}
				}, floor)
			})
		}
		b.Run(fmt.Sprintf("cached/agents=%d", n), func(b *testing.B) {
			e.NoCache = false
			defer func() { e.NoCache = true }()
			in := Input{AgentID: mid, Action: "comment", Resource: "mcp:github:issues", Now: now}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Decide(b.Context(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// regoFloor prepares the Rego floor at n agents and returns one evaluation
// of it: the least a Rego lookup of an agent costs, against which a
// decision is judged.
func regoFloor(b *testing.B, n int, agentID string) func() {
	b.Helper()
	agents := make(map[string]any, n)
	for i := range n {
		agents[fmt.Sprintf("agt_%d", i)] = map[string]any{"status": "active"}
	}
	store := inmem.NewFromObject(map[string]any{"kavach": map[string]any{"agents": agents}})
	pq, err := rego.New(rego.Query(`data.kavach.agents[input.agentId].status == "active"`), rego.Store(store)).
		PrepareForEval(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	in := rego.EvalInput(map[string]any{"agentId": agentID})
	rs, err := pq.Eval(b.Context(), in)
	if err != nil || !rs.Allowed() {
		b.Fatalf("floor = %v, %v; want true", rs, err)
	}
	runtime.GC()
	return func() {
		if _, err := pq.Eval(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}

// measure runs op in b's loop and reports the medians of its wall-clock
// time (p50-ns) and of the CPU time of the thread running it (cpu-p50-ns):
// on a shared machine the wall clock also counts the time the thread
// waited for a core, which the CPU time leaves out (GC assists, which a
// decision's allocations cause, stay in). Medians, because GC pauses move
// the mean, not them. The CPU time is 0 where it is not measured. With a
// floor, each iteration runs the floor first, and op's medians are also
// reported against the floor's (x-floor, x-floor-cpu); ns/op, B/op and
// allocs/op are then op's alone (its allocations counted after the loop,
// over up to 1,000 more runs of op alone).
func measure(b *testing.B, op, floor func()) {
	b.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var walls, cpus, floorWalls, floorCPUs []time.Duration
	var total time.Duration
	for b.Loop() {
		if floor != nil {
			c0, start := threadCPU(), time.Now()
			floor()
			floorWalls = append(floorWalls, time.Since(start))
			floorCPUs = append(floorCPUs, threadCPU()-c0)
		}
		c0, start := threadCPU(), time.Now()
		op()
		took := time.Since(start)
		total += took
		walls = append(walls, took)
		cpus = append(cpus, threadCPU()-c0)
	}
	wall, cpu := median(walls), median(cpus)
	b.ReportMetric(float64(wall.Nanoseconds()), "p50-ns")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds()), "cpu-p50-ns")
	}
	if floor == nil {
		return
	}
	if w := median(floorWalls); w > 0 {
		b.ReportMetric(float64(wall)/float64(w), "x-floor")
	}
	if c := median(floorCPUs); c > 0 && cpu > 0 {
		b.ReportMetric(float64(cpu)/float64(c), "x-floor-cpu")
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(len(walls)), "ns/op")
	runs := min(len(walls), 1000)
	allocs0, bytes0 := memStats()
	for range runs {
		op()
	}
	allocs, bytes := memStats()
	b.ReportMetric(float64(allocs-allocs0)/float64(runs), "allocs/op")
	b.ReportMetric(float64(bytes-bytes0)/float64(runs), "B/op")
}

// memStats returns the heap objects and bytes allocated so far.
func memStats() (allocs, bytes uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs, ms.TotalAlloc
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// benchSource is BenchmarkDecide's data: n agents with five permissions
// each (one with constraints), and a sub-agent holding one permission
// through a two-link chain.
func benchSource(n int, now time.Time) memSource {
	exp := now.Add(time.Hour)
	src := memSource{n: n, gen: func(i int) domain.Agent {
		return domain.Agent{ID: fmt.Sprintf("agt_%d", i), OwnerID: "u", Status: domain.StatusActive,
			TokenHash: fmt.Sprintf("h%d", i), Permissions: []domain.Permission{
				{Resource: "mcp:github:issues", Actions: []string{"read", "comment"}},
				{Resource: "mcp:github:*", Actions: []string{"read"}},
				{Resource: "admin:*:delete", Actions: []string{"*"}},
				{Resource: "docs:public", Actions: []string{"read"}},
				{Resource: "mcp:slack:channels", Actions: []string{"post"},
					Constraints: domain.Constraints{IPAllowlist: []string{"10.0.0.0/8"}, MaxCallsPerHour: 100}},
			}}
	}}
	// A sub-agent holding one permission through a two-link chain.
	src.agents = []domain.Agent{
		{ID: "sub_1", OwnerID: "u", Status: domain.StatusActive, TokenHash: "hs1", Incoming: []string{"dlg_1"}},
		{ID: "sub_2", OwnerID: "u", Status: domain.StatusActive, TokenHash: "hs2", Incoming: []string{"dlg_2"}},
	}
	key := PermissionKey("mcp:github:*", []string{"read"})
	src.delegations = []domain.Delegation{
		{ID: "dlg_1", FromAgent: "agt_1", ToAgent: "sub_1", Status: domain.StatusActive, ExpiresAt: exp, Depth: 1, MaxDepth: 2,
			Permissions: []domain.Grant{{Resource: "mcp:github:*", Actions: []string{"read"}, CoveredBy: key, Chain: []domain.Link{}}}},
		{ID: "dlg_2", FromAgent: "sub_1", ToAgent: "sub_2", Status: domain.StatusActive, ExpiresAt: exp, Depth: 2, MaxDepth: 2,
			Permissions: []domain.Grant{{Resource: "mcp:github:repos", Actions: []string{"read"}, CoveredBy: key,
				Chain: []domain.Link{{DelegationID: "dlg_1", Index: 0}}}}},
	}
	return src
}

type benchCase struct {
	name string
	in   Input
	code string
}

// benchCases are BenchmarkDecide's kinds of decision at n agents.
func benchCases(n int) []benchCase {
	mid := fmt.Sprintf("agt_%d", n/2)
	return []benchCase{
		{"allowed", Input{AgentID: mid, Action: "comment", Resource: "mcp:github:issues"}, CodeAllowed},
		{"denied", Input{AgentID: mid, Action: "write", Resource: "mcp:github:repos"}, CodeNoPermission},
		{"wildcard", Input{AgentID: mid, Action: "read", Resource: "mcp:github:repos:pulls"}, CodeAllowed},
		{"by-token", Input{TokenHash: fmt.Sprintf("h%d", n/3), Action: "purge", Resource: "admin:projects:delete"}, CodeAllowed},
		{"delegated", Input{AgentID: "sub_2", Action: "read", Resource: "mcp:github:repos"}, CodeAllowed},
		{"constrained", Input{AgentID: mid, Action: "post", Resource: "mcp:slack:channels", IP: "10.1.2.3", Calls: map[string]int{"x": 1}}, CodeAllowed},
	}
}

// benchSizes are BenchmarkDecide's numbers of agents: 100, 10,000 and
// 100,000, or those KAVACH_BENCH_AGENTS lists (comma-separated), to measure
// one size without loading the others.
func benchSizes() []int {
	s := os.Getenv("KAVACH_BENCH_AGENTS")
	if s == "" {
		return []int{100, 10_000, 100_000}
	}
	var sizes []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			panic(fmt.Sprintf("KAVACH_BENCH_AGENTS: %q is not a number of agents (2 or more)", f))
		}
		sizes = append(sizes, n)
	}
	return sizes
}
