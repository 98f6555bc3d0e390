package engine

import (
	"time"

	"github.com/kavach-dev/kavach/domain"
)

// For the engine_test package's benchmarks (cached_bench_test.go).
var (
	RegoFloor = regoFloor
	Measure   = measure
)

// BenchAgent is BenchmarkDecide's i-th agent (five permissions).
func BenchAgent(i int) domain.Agent { return benchSource(0, time.Time{}).gen(i) }
