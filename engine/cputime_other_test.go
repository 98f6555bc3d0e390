//go:build !linux

package engine

import "time"

// threadCPU is not measured here: the CPU-time metrics are left out.
func threadCPU() time.Duration { return 0 }
