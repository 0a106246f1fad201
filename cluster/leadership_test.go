package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/internal/retry"
)

// probeDuty records how the leadership loop runs it on one node.
type probeDuty struct {
	node *cluster.Node

	mu      sync.Mutex
	running bool
	runs    int
	// readyAtStart: every Run began once this node led with its term's
	// barrier applied.
	readyAtStart []bool
}

func (d *probeDuty) Name() string { return "probe" }

func (d *probeDuty) Run(ctx context.Context) {
	ready := d.node.IsLeader() && d.node.Ready()
	d.mu.Lock()
	d.running = true
	d.runs++
	d.readyAtStart = append(d.readyAtStart, ready)
	d.mu.Unlock()
	<-ctx.Done()
	d.mu.Lock()
	d.running = false
	d.mu.Unlock()
}

func (d *probeDuty) state() (running bool, runs int, ready []bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running, d.runs, append([]bool(nil), d.readyAtStart...)
}

// The leadership loop runs every duty on the leader only, once its term's
// barrier applied; Shutdown of the leader cancels its duties and waits for
// them; the next leader runs them in turn.
func TestLeaderDutiesRunOnlyWhileLeading(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	pp := agenttest.NewPorts(t)
	ps, join := pp.Cluster(3)
	nodes := make([]*testNode, 3)
	probes := make([]*probeDuty, 3)
	for i, name := range []string{"a", "b", "c"} {
		probes[i] = &probeDuty{}
		nodes[i] = startNodeWith(t, name, t.TempDir(), ps[i], 3, join, nil, func(n *cluster.Node) []cluster.Duty {
			probes[i].node = n
			return []cluster.Duty{probes[i]}
		})
	}
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.stop()
			}
		}
	}()

	// Every node exports the gauge from the start (metricValue fails the
	// test on a missing series), at 0 where it does not lead.
	for _, n := range nodes {
		metricValue(t, n.metrics, "nexus_leader_duty_running", "probe")
	}

	leader := func(r *retry.R, skip int) int {
		li := -1
		for i, n := range nodes {
			if n == nil || i == skip {
				continue
			}
			running, _, _ := probes[i].state()
			v := metricValue(t, n.metrics, "nexus_leader_duty_running", "probe")
			if running != (v == 1) {
				r.Fatalf("node %d: duty running %v, gauge %v", i, running, v)
			}
			if running {
				if li >= 0 {
					r.Fatalf("the duty runs on nodes %d and %d", li, i)
				}
				li = i
			}
		}
		if li < 0 {
			r.Fatalf("the duty runs nowhere")
		}
		if !nodes[li].node.IsLeader() {
			r.Fatalf("the duty runs on %d, which does not lead", li)
		}
		return li
	}
	var li int
	retry.Run(t, func(r *retry.R) { li = leader(r, -1) }, retry.Timeout(20*time.Second))
	if _, _, ready := probes[li].state(); len(ready) != 1 || !ready[0] {
		t.Fatalf("the duty started before the leader's barrier applied: %v", ready)
	}
	if v := metricValue(t, nodes[li].metrics, "nexus_leader_duty_running", "raft-membership"); v != 1 {
		t.Fatalf("the membership duty is not running on the leader (gauge %v)", v)
	}

	// Stop the leader: Shutdown returns only once its duties have.
	old := nodes[li]
	old.stop()
	nodes[li] = nil
	if running, runs, _ := probes[li].state(); running || runs != 1 {
		t.Fatalf("after Shutdown the old leader's duty is running=%v (runs %d)", running, runs)
	}
	var next int
	retry.Run(t, func(r *retry.R) { next = leader(r, li) }, retry.Timeout(20*time.Second))
	if _, _, ready := probes[next].state(); !ready[len(ready)-1] {
		t.Fatalf("the new leader's duty started before its barrier applied: %v", ready)
	}
}
