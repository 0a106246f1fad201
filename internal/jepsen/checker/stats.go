package checker

import (
	"sort"
	"time"

	"github.com/nexus/nexus/internal/jepsen/history"
)

// Counts are operation outcomes.
type Counts struct {
	OK    int `json:"ok"`
	Fail  int `json:"fail"`
	Info  int `json:"info"`
	Total int `json:"total"`
}

func (c *Counts) add(t history.Type) {
	c.Total++
	switch t {
	case history.OK:
		c.OK++
	case history.Fail:
		c.Fail++
	default:
		c.Info++
	}
}

// Availability is the share of operations that got a definite answer.
type Availability struct {
	Ops      int     `json:"ops"`
	Answered int     `json:"answered"`
	Ratio    float64 `json:"ratio"` // answered/ops; 1 when ops is 0
}

func (a *Availability) add(answered bool) {
	a.Ops++
	if answered {
		a.Answered++
	}
}

func (a *Availability) finish() {
	a.Ratio = 1
	if a.Ops > 0 {
		a.Ratio = float64(a.Answered) / float64(a.Ops)
	}
}

// Stats summarize a history.
type Stats struct {
	Counts     Counts            `json:"counts"`
	ByWorkload map[string]Counts `json:"by_workload"`
	ByF        map[string]Counts `json:"by_f"` // "register/read", "set/add", ...
	// Availability: an op is answered when it is ok, or failed with a
	// definite business answer (409 cas_conflict, 404 not_found); 503, 504,
	// timeouts and refused connections are not.
	Availability        Availability `json:"availability"`
	AvailabilityFaults  Availability `json:"availability_during_faults"` // ops invoked while a fault was active
	AvailabilityHealthy Availability `json:"availability_healthy"`
	ThroughputOK        float64      `json:"ok_per_second"`
	LatencyP50          string       `json:"latency_p50_ok"`
	LatencyP99          string       `json:"latency_p99_ok"`
	LatencyMax          string       `json:"latency_max_ok"`
}

// Answered reports whether op got a definite answer (see Stats).
func Answered(op *history.Op) bool {
	return op.Type == history.OK || (op.Type == history.Fail && (op.Code == "cas_conflict" || op.Code == "not_found"))
}

// ComputeStats counts outcomes and availability; windows are the fault
// periods. Final reads are excluded from availability.
func ComputeStats(ops []history.Op, windows []Window) Stats {
	s := Stats{ByWorkload: map[string]Counts{}, ByF: map[string]Counts{}}
	var lat []time.Duration
	var first, last int64 = -1, 0
	for i := range ops {
		op := &ops[i]
		s.Counts.add(op.Type)
		w := s.ByWorkload[op.Workload]
		w.add(op.Type)
		s.ByWorkload[op.Workload] = w
		f := s.ByF[op.Workload+"/"+op.F]
		f.add(op.Type)
		s.ByF[op.Workload+"/"+op.F] = f
		if op.Final {
			continue
		}
		ans := Answered(op)
		s.Availability.add(ans)
		if inWindow(op.Invoke, windows) {
			s.AvailabilityFaults.add(ans)
		} else {
			s.AvailabilityHealthy.add(ans)
		}
		if op.Type == history.OK {
			lat = append(lat, op.Duration())
			if first < 0 || op.Invoke < first {
				first = op.Invoke
			}
			last = max(last, op.Complete)
		}
	}
	s.Availability.finish()
	s.AvailabilityFaults.finish()
	s.AvailabilityHealthy.finish()
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		s.LatencyP50 = lat[len(lat)/2].Round(time.Microsecond).String()
		s.LatencyP99 = lat[len(lat)*99/100].Round(time.Microsecond).String()
		s.LatencyMax = lat[len(lat)-1].Round(time.Microsecond).String()
		if span := time.Duration(last - first); span > 0 {
			s.ThroughputOK = float64(len(lat)) / span.Seconds()
		}
	}
	return s
}

func inWindow(t int64, ws []Window) bool {
	for _, w := range ws {
		if t >= w.Start && t <= w.End {
			return true
		}
	}
	return false
}
