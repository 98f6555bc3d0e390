package kavachos

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kavach-dev/kavach/internal/kavachostest"
	"github.com/kavach-dev/kavach/store"
)

// BenchmarkImport imports a generated KavachOS database of
// KAVACH_BENCH_AGENTS agents (default 10,000; each with two permissions
// and one audit row) into a fresh SQLite database per iteration. With
// KAVACH_BENCH_SOURCE set, the source is written (or reused) there, for
// timing the binary: kavach import --kavachos $KAVACH_BENCH_SOURCE.
func BenchmarkImport(b *testing.B) {
	n := 10_000
	if v := os.Getenv("KAVACH_BENCH_AGENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	path := os.Getenv("KAVACH_BENCH_SOURCE")
	if path == "" {
		path = filepath.Join(b.TempDir(), "kavachos.db")
	}
	if _, err := os.Stat(path); err != nil {
		if err := kavachostest.Generate(b.Context(), path, n); err != nil {
			b.Fatal(err)
		}
	}
	src, err := OpenSource(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	b.ResetTimer()
	for range b.N {
		st, err := store.Open(b.Context(), store.Options{URL: filepath.Join(b.TempDir(), "kavach.db")})
		if err != nil {
			b.Fatal(err)
		}
		batch, _ := strconv.Atoi(os.Getenv("KAVACH_BENCH_BATCH"))
		r, err := Import(b.Context(), src, st, path, Options{BatchSize: batch})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		if r.Agents.Added != int64(n) {
			b.Fatalf("added %d agents; want %d", r.Agents.Added, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/agent")
}
