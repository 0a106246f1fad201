package agent

import "testing"

// The agent's /metrics carries the scheduler latency histogram, the first
// sign of a node short of CPU.
func TestMetricsRegistryExportsSchedulerLatency(t *testing.T) {
	mfs, err := newMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"go_sched_latencies_seconds": false, "go_sched_gomaxprocs_threads": false, "process_cpu_seconds_total": false}
	for _, mf := range mfs {
		if _, ok := want[mf.GetName()]; ok {
			want[mf.GetName()] = true
		}
	}
	for name, found := range want {
		if !found {
			t.Errorf("%s missing from the agent's metrics", name)
		}
	}
}
