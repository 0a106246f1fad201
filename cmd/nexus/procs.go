package main

// procsPerCPU is how many Ps (GOMAXPROCS) the agent runs per CPU that Go
// would give it. The kernel often deschedules a gateway thread that holds
// a P (a loopback write wakes the receiver, which preempts the writer; with
// raw socket calls the runtime does not hand that P to another thread), and
// the goroutines queued on that P wait until the thread runs again or an
// idle P steals them; spare Ps make the steal likely. Three per CPU gave
// the gateway the shortest scheduling waits and latency tail for a little
// more CPU per request; the Raft path pays a little when three nodes share
// two CPUs (docs/gateway.md#measured and docs/benchmarks.md have the
// figures).
const procsPerCPU = 3

// agentProcs returns the GOMAXPROCS the agent should run with given Go's
// default (CPUs, or the cgroup's CPU limit), or 0 to keep Go's choice: an
// operator's GOMAXPROCS in the environment always wins.
func agentProcs(getenv func(string) string, goDefault int) int {
	if getenv("GOMAXPROCS") != "" {
		return 0
	}
	return procsPerCPU * max(goDefault, 1)
}
