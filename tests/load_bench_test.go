package tests

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kavach-dev/kavach/engine"
	"github.com/kavach-dev/kavach/internal/pgtest"
	"github.com/kavach-dev/kavach/store"
)

// BenchmarkStartupLoad measures the start-up load of a large PostgreSQL
// database into OPA (time and heap), and decision latency before (100
// agents) and after (the full set). Agents default to 100,000 with 5
// permissions each; KAVACH_BENCH_AGENTS changes that.
//
//	go test ./tests -run XXX -bench StartupLoad -benchtime 3x
func BenchmarkStartupLoad(b *testing.B) {
	n := 100_000
	if v := os.Getenv("KAVACH_BENCH_AGENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	small := seed(b, 100)
	large := seed(b, n)

	before := decideLatency(b, small)
	var loadTime time.Duration
	var heap uint64
	var eng *engine.Engine
	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start := time.Now()
		var err error
		if eng, err = engine.New(ctx); err != nil {
			b.Fatal(err)
		}
		counts, err := eng.Load(ctx, large)
		if err != nil || counts.Agents != n {
			b.Fatalf("Load = %+v, %v", counts, err)
		}
		loadTime += time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		heap = m1.HeapAlloc - m0.HeapAlloc
	}
	after := decideLatencyOn(b, eng, n)
	b.ReportMetric(loadTime.Seconds()/float64(b.N), "load-s")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MB")
	b.ReportMetric(float64(before.Nanoseconds()), "decide-ns@100")
	b.ReportMetric(float64(after.Nanoseconds()), fmt.Sprintf("decide-ns@%d", n))
}

// seed fills a fresh PostgreSQL schema with n agents of 5 permissions, with
// COPY, and returns a store on it.
func seed(b *testing.B, n int) *store.Store {
	b.Helper()
	ctx := context.Background()
	url := pgtest.URL(b)
	st, err := store.Open(ctx, store.Options{URL: url})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	now := time.Now().UnixMilli()
	agents := make([][]any, n)
	perms := make([][]any, 0, 5*n)
	for i := range n {
		id := fmt.Sprintf("agt_%08d", i)
		agents[i] = []any{id, fmt.Sprintf("user-%d", i%1000), "bench", "autonomous", "active", fmt.Sprintf("hash-%d", i), "{}", now, now}
		for j, r := range []string{"mcp:github:*", "mcp:github:issues", "admin:*:delete", "docs:public", "mcp:slack:channels"} {
			perms = append(perms, []any{id, j, r, `["read","comment"]`})
		}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"agents"},
		[]string{"id", "owner_id", "name", "type", "status", "token_hash", "metadata", "created_at", "updated_at"},
		pgx.CopyFromRows(agents)); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"permissions"}, []string{"agent_id", "position", "resource", "actions"},
		pgx.CopyFromRows(perms)); err != nil {
		b.Fatal(err)
	}
	return st
}

func decideLatency(b *testing.B, st *store.Store) time.Duration {
	b.Helper()
	eng, err := engine.New(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	counts, err := eng.Load(context.Background(), st)
	if err != nil {
		b.Fatal(err)
	}
	return decideLatencyOn(b, eng, counts.Agents)
}

// decideLatencyOn is the mean of 2,000 allowed decisions on agents spread
// over the whole set.
func decideLatencyOn(b *testing.B, eng *engine.Engine, n int) time.Duration {
	b.Helper()
	const rounds = 2000
	now := time.Now()
	start := time.Now()
	for i := range rounds {
		d, err := eng.Decide(context.Background(), engine.Input{AgentID: fmt.Sprintf("agt_%08d", (i*7919)%n),
			Action: "read", Resource: "mcp:github:repos", Now: now})
		if err != nil || !d.Allowed {
			b.Fatalf("Decide = %+v, %v", d, err)
		}
	}
	return time.Since(start) / rounds
}
