package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/service/replica"
	"github.com/kavach-dev/kavach/store"
)

// BenchmarkDecideCached measures decisions over the bounded store
// (engine.CachedData) reading through from a real SQLite database of
// 100,000 agents, each with BenchmarkDecide's five permissions, against
// the Rego floor at as many agents, each decision paired with an
// evaluation of the floor (see BenchmarkDecide), in one run: warm (the agent's data in
// memory) and cold (every decision on an agent memory does not hold: the
// database is read), by ID and by token.
//
//	go test ./engine -run X -bench DecideCached -benchtime 5000x
func BenchmarkDecideCached(b *testing.B) {
	const n = 100_000
	ctx := b.Context()
	st, err := store.Open(ctx, store.Options{URL: filepath.Join(b.TempDir(), "kavach.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	for from := 0; from < n; from += 5000 {
		batch := make([]domain.Agent, 0, 5000)
		for i := from; i < from+5000; i++ {
			a := engine.BenchAgent(i)
			a.Name, a.Type, a.CreatedAt, a.UpdatedAt = "bench", "autonomous", now, now
			batch = append(batch, a)
		}
		if _, err := st.ImportAgents(ctx, batch, false); err != nil {
			b.Fatal(err)
		}
	}
	floor := engine.RegoFloor(b, n, fmt.Sprintf("agt_%d", n/2))
	for _, c := range []struct {
		name     string
		capacity int
		in       func(i int) engine.Input
	}{
		// Every agent in OPA's in-memory store (policies.loadAll), for
		// comparison.
		{"memory", 0, func(int) engine.Input { return engine.Input{AgentID: "agt_50000"} }},
		{"warm", 1000, func(int) engine.Input { return engine.Input{AgentID: "agt_50000"} }},
		{"warm-by-token", 1000, func(int) engine.Input { return engine.Input{TokenHash: "h33333"} }},
		// Each decision names the next agent: with room for 1,000, none is
		// in memory when asked about.
		{"cold", 1000, func(i int) engine.Input { return engine.Input{AgentID: fmt.Sprintf("agt_%d", (i*7919)%n)} }},
		{"cold-by-token", 1000, func(i int) engine.Input { return engine.Input{TokenHash: fmt.Sprintf("h%d", (i*7919)%n)} }},
	} {
		b.Run(fmt.Sprintf("%s/agents=%d", c.name, n), func(b *testing.B) {
			data := engine.MemoryData()
			if c.capacity > 0 {
				data = engine.CachedData(replica.Lookup(st), c.capacity)
			}
			e, err := engine.NewWithData(ctx, data, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.Load(ctx, st); err != nil {
				b.Fatal(err)
			}
			e.NoCache = true
			decide := func(i int) {
				in := c.in(i)
				in.Action, in.Resource, in.Now = "read", "mcp:github:repos", now
				d, err := e.Decide(context.Background(), in)
				if err != nil || d.Code != engine.CodeAllowed {
					b.Fatalf("Decide(%+v) = %+v, %v", in, d, err)
				}
			}
			decide(0)
			runtime.GC()
			b.ReportAllocs()
			i := 1
			engine.Measure(b, func() {
				decide(i)
				i++
			}, floor)
			if st, ok := e.DataCache(); ok && c.name[:4] == "cold" && st.Misses < uint64(b.N) {
				b.Fatalf("cold: %d misses in %d decisions; every decision should read the database", st.Misses, b.N)
			}
		})
	}
}
