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
// against the floor's (x-floor), both measured in this run.
//
//	go test ./engine -run X -bench Decide -benchtime 20000x
func BenchmarkDecide(b *testing.B) {
	now := time.Now()
	for _, n := range []int{100, 10_000, 100_000} {
		e, err := New(b.Context())
		if err != nil {
			b.Fatal(err)
		}
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
		if _, err := e.Load(b.Context(), src); err != nil {
			b.Fatal(err)
		}
		// The load's garbage is not the decisions' cost.
		runtime.GC()
		e.NoCache = true // uncached cost; "cached" below measures a cache hit
		mid := fmt.Sprintf("agt_%d", n/2)
		floor := regoFloor(b, n, mid)
		for _, c := range []struct {
			name string
			in   Input
			code string
		}{
			{"allowed", Input{AgentID: mid, Action: "comment", Resource: "mcp:github:issues"}, CodeAllowed},
			{"denied", Input{AgentID: mid, Action: "write", Resource: "mcp:github:repos"}, CodeNoPermission},
			{"wildcard", Input{AgentID: mid, Action: "read", Resource: "mcp:github:repos:pulls"}, CodeAllowed},
			{"by-token", Input{TokenHash: fmt.Sprintf("h%d", n/3), Action: "purge", Resource: "admin:projects:delete"}, CodeAllowed},
			{"delegated", Input{AgentID: "sub_2", Action: "read", Resource: "mcp:github:repos"}, CodeAllowed},
			{"constrained", Input{AgentID: mid, Action: "post", Resource: "mcp:slack:channels", IP: "10.1.2.3", Calls: map[string]int{"x": 1}}, CodeAllowed},
		} {
			b.Run(fmt.Sprintf("%s/agents=%d", c.name, n), func(b *testing.B) {
				c.in.Now = now
				d, err := e.Decide(b.Context(), c.in)
				if err != nil || d.Code != c.code {
					b.Fatalf("Decide = %+v, %v; want %s", d, err, c.code)
				}
				b.ReportAllocs()
				var took []time.Duration
				for b.Loop() {
					start := time.Now()
					if _, err := e.Decide(context.Background(), c.in); err != nil {
						b.Fatal(err)
					}
					took = append(took, time.Since(start))
				}
				// The target is a median: GC pauses move the mean, not it.
				slices.Sort(took)
				p50 := took[len(took)/2]
				b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
				if floor > 0 {
					b.ReportMetric(float64(p50)/float64(floor), "x-floor")
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

// regoFloor runs the Rego floor at n agents as its own sub-benchmark and
// returns its median (0 if the benchmark was filtered out): the least a
// Rego lookup of an agent costs, against which a decision is judged.
func regoFloor(b *testing.B, n int, agentID string) time.Duration {
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
	var p50 time.Duration
	b.Run(fmt.Sprintf("floor/agents=%d", n), func(b *testing.B) {
		in := rego.EvalInput(map[string]any{"agentId": agentID})
		rs, err := pq.Eval(b.Context(), in)
		if err != nil || !rs.Allowed() {
			b.Fatalf("floor = %v, %v; want true", rs, err)
		}
		b.ReportAllocs()
		var took []time.Duration
		for b.Loop() {
			start := time.Now()
			if _, err := pq.Eval(context.Background(), in); err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		p50 = took[len(took)/2]
		b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
	})
	return p50
}
