package engine

import (
	"context"
	"fmt"
	"runtime"
	"slices"
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
// agents in OPA's own in-memory store; every case then reports its median
// against the floor's (x-floor; x-floor-cpu for the medians of the CPU time
// of the thread deciding, which on a shared machine leaves out the time it
// waited for a core), both measured in this run.
//
//	go test ./engine -run X -bench Decide -benchtime 20000x
func BenchmarkDecide(b *testing.B) {
	now := time.Now()
	for _, n := range []int{100, 10_000, 100_000} {
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
		for _, c := range benchCases(n) {
			b.Run(fmt.Sprintf("%s/agents=%d", c.name, n), func(b *testing.B) {
				c.in.Now = now
				d, err := e.Decide(b.Context(), c.in)
				if err != nil || d.Code != c.code {
					b.Fatalf("Decide = %+v, %v; want %s", d, err, c.code)
				}
				b.ReportAllocs()
				wall, cpu := measure(b, func() {
					if _, err := e.Decide(context.Background(), c.in); err != nil {
						b.Fatal(err)
					}
				})
				if floor.wall > 0 {
					b.ReportMetric(float64(wall)/float64(floor.wall), "x-floor")
				}
				if floor.cpu > 0 && cpu > 0 {
					b.ReportMetric(float64(cpu)/float64(floor.cpu), "x-floor-cpu")
				}
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

// floorTimes are the Rego floor's medians: wall clock and thread CPU time.
type floorTimes struct{ wall, cpu time.Duration }

// regoFloor runs the Rego floor at n agents as its own sub-benchmark and
// returns its medians (zero if the benchmark was filtered out): the least a
// Rego lookup of an agent costs, against which a decision is judged.
func regoFloor(b *testing.B, n int, agentID string) floorTimes {
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
	runtime.GC()
	var floor floorTimes
	b.Run(fmt.Sprintf("floor/agents=%d", n), func(b *testing.B) {
		in := rego.EvalInput(map[string]any{"agentId": agentID})
		rs, err := pq.Eval(b.Context(), in)
		if err != nil || !rs.Allowed() {
			b.Fatalf("floor = %v, %v; want true", rs, err)
		}
		b.ReportAllocs()
		floor.wall, floor.cpu = measure(b, func() {
			if _, err := pq.Eval(context.Background(), in); err != nil {
				b.Fatal(err)
			}
		})
	})
	return floor
}

// measure runs op in b's loop and reports the medians of its wall-clock
// time (p50-ns) and of the CPU time of the thread running it (cpu-p50-ns):
// on a shared machine the wall clock also counts the time the thread
// waited for a core, which the CPU time leaves out (GC assists, which a
// decision's allocations cause, stay in). Medians, because GC pauses move
// the mean, not them. The CPU time is 0 where it is not measured.
func measure(b *testing.B, op func()) (wall, cpu time.Duration) {
	b.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var walls, cpus []time.Duration
	for b.Loop() {
		c0, start := threadCPU(), time.Now()
		op()
		walls = append(walls, time.Since(start))
		cpus = append(cpus, threadCPU()-c0)
	}
	slices.Sort(walls)
	slices.Sort(cpus)
	wall, cpu = walls[len(walls)/2], cpus[len(cpus)/2]
	b.ReportMetric(float64(wall.Nanoseconds()), "p50-ns")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds()), "cpu-p50-ns")
	}
	return wall, cpu
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
