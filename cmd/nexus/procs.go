package main

// procsPerCPU is how many Ps (GOMAXPROCS) the agent runs per CPU that Go
// would give it. The kernel often deschedules a gateway thread that holds
// a P (a loopback write wakes the receiver, which preempts the writer; with
// raw socket calls the runtime does not hand that P to another thread), and
// with one P per CPU the goroutines queued on that P wait for it. A second P
// per CPU lets other threads run them. Measured on the 2-vCPU benchmark
// machine, interleaved against nginx: +5-7% requests/s and a p99 12% lower,
// for 1% more CPU per request (docs/gateway.md#measured).
const procsPerCPU = 2

// agentProcs returns the GOMAXPROCS the agent should run with given Go's
// default (CPUs, or the cgroup's CPU limit), or 0 to keep Go's choice: an
// operator's GOMAXPROCS in the environment always wins.
func agentProcs(getenv func(string) string, goDefault int) int {
	if getenv("GOMAXPROCS") != "" {
		return 0
	}
	return procsPerCPU * max(goDefault, 1)
}
