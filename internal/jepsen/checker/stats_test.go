package checker

import (
	"testing"

	"github.com/nexus/nexus/internal/jepsen/history"
)

func TestComputeStats(t *testing.T) {
	t.Parallel()
	ops := h(
		rWrite(0, 10, history.OK, 1, 5),                       // healthy, answered
		rCAS(100, 110, history.Fail, "cas_conflict", 5, 2, 0), // fault, answered
		rWrite(120, 130, history.Fail, 3, 0),                  // fault, not answered
		rWrite(140, 150, history.Info, 4, 0),                  // fault, not answered
		sRead(300, 310, true, 1),                              // final: not in availability
	)
	s := ComputeStats(ops, []Window{{Name: "kill", Start: 90, End: 200}})
	if s.Counts != (Counts{OK: 2, Fail: 2, Info: 1, Total: 5}) {
		t.Fatalf("counts %+v", s.Counts)
	}
	if s.Availability.Ops != 4 || s.Availability.Answered != 2 {
		t.Fatalf("availability %+v", s.Availability)
	}
	if s.AvailabilityFaults.Ops != 3 || s.AvailabilityFaults.Answered != 1 || s.AvailabilityHealthy.Ratio != 1 {
		t.Fatalf("faults %+v healthy %+v", s.AvailabilityFaults, s.AvailabilityHealthy)
	}
	if s.ByF["register/write"].Total != 3 || s.ByWorkload["set"].OK != 1 {
		t.Fatalf("by f %+v by workload %+v", s.ByF, s.ByWorkload)
	}
}
