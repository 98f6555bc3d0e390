package engine

// RegoFloor is regoFloor for the engine_test package's benchmarks.
var RegoFloor = regoFloor
