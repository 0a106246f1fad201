package main

// procsPerCPU is how many Ps (GOMAXPROCS) the agent runs per CPU that Go
// would give it. The kernel often deschedules a gateway thread that holds
// a P (a loopback write wakes the receiver, which preempts the writer; with
// raw socket calls the runtime does not hand that P to another thread), and
// the goroutines queued on that P wait until the thread runs again or an
// idle P steals them; spare Ps make the steal likely. Measured on the
// 2-vCPU benchmark machine, interleaved (docs/gateway.md#measured): with
// one P per CPU 9% of the gateway's goroutine runs waited > 0.9 ms for a
// CPU, with two 1.4%, with three 0.5%, and the p99 against nginx's fell
// from 1.35x to 1.11x for 3% more CPU per request. The price is paid by
// the Raft path when three nodes share the two CPUs (writes -4%, p99
// +12%, docs/benchmarks.md).
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
