//go:build !unix

package loadgen

// processCPUSeconds is unknown here: a floor reports no CPU time.
func processCPUSeconds() (float64, bool) { return 0, false }
