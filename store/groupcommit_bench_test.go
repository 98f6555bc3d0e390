package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// BenchmarkGroupCommit drives the audit group commit as the sidecar does
// under load: writers (32, as kavach bench's clients) each insert decision
// rows one after another, each waiting for its row's commit, on a SQLite
// file with synchronous=FULL. It reports rows per second, the process's
// CPU time per row (cpu-µs/row: what the writer costs besides the wait
// for the fsync) and rows per commit. KAVACH_BENCH_DROP_INDEXES (index
// names, colon-separated) drops indexes of audit_log first, to measure
// what each costs.
func BenchmarkGroupCommit(b *testing.B) {
	for _, writers := range []int{1, 32} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := Open(b.Context(), Options{URL: filepath.Join(b.TempDir(), "kavach.db")})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if drop := os.Getenv("KAVACH_BENCH_DROP_INDEXES"); drop != "" {
				for _, ix := range filepath.SplitList(drop) {
					stmt, ok := map[string]string{"audit_agent": "DROP INDEX audit_agent", "audit_owner": "DROP INDEX audit_owner",
						"audit_created": "DROP INDEX audit_created", "audit_kind": "DROP INDEX audit_kind",
						"audit_chain": "DROP INDEX audit_chain"}[ix]
					if !ok {
						b.Fatalf("KAVACH_BENCH_DROP_INDEXES: no index %q of audit_log", ix)
					}
					if _, err := s.w.ExecContext(b.Context(), stmt); err != nil {
						b.Fatal(err)
					}
				}
			}
			var agents []domain.Agent
			for i := range 50 {
				a, err := s.CreateAgent(b.Context(), domain.Agent{OwnerID: fmt.Sprintf("user-%d", i), Name: "n", Type: "autonomous",
					TokenHash: fmt.Sprint(i)}, 0)
				if err != nil {
					b.Fatal(err)
				}
				agents = append(agents, a)
			}
			row := func(i int) domain.AuditEntry {
				a := agents[i%len(agents)]
				return domain.AuditEntry{AgentID: a.ID, OwnerID: a.OwnerID, Action: "read", Resource: "files:/docs/report.txt",
					Result: domain.ResultAllowed, Code: "allowed", Reason: "permission read on files:/docs/*", IP: "127.0.0.1",
					UserAgent: "kavach-bench", DurationUS: 180, Actor: domain.Actor{Type: domain.ActorKey, ID: "key_bench", Name: "bench"}}
			}
			before := s.AuditStats()
			var ru0, ru1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			start := time.Now()
			b.ResetTimer()
			var wg sync.WaitGroup
			var next sync.Mutex
			n := 0
			for range writers {
				wg.Go(func() {
					for {
						next.Lock()
						i := n
						n++
						next.Unlock()
						if i >= b.N {
							return
						}
						if _, err := s.InsertAudit(b.Context(), row(i), Consumption{}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			elapsed := time.Since(start)
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
			after := s.AuditStats()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/row")
			if batches := after.Batches - before.Batches; batches > 0 {
				b.ReportMetric(float64(after.Rows-before.Rows)/float64(batches), "rows/commit")
			}
		})
	}
}
