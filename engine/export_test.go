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

// Wall and CPU are the floor's medians.
func (f floorTimes) Wall() time.Duration { return f.wall }
func (f floorTimes) CPU() time.Duration  { return f.cpu }

// BenchAgent is BenchmarkDecide's i-th agent (five permissions).
func BenchAgent(i int) domain.Agent { return benchSource(0, time.Time{}).gen(i) }
