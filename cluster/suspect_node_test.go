package cluster_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/internal/retry"
)

// TestStoppedNodeIsSuspectBeforeFailed runs three in-process nodes (real
// memberlist) and stops one without a leave: its peers' probes fail, so
// they show it suspect before gossip declares it failed. This also pins the
// memberlist log line the suspicion depends on. A healthy cluster shows no
// suspect member.
func TestStoppedNodeIsSuspectBeforeFailed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	pp := agenttest.NewPorts(t)
	names := []string{"a", "b", "c"}
	ps, join := pp.Cluster(3)
	nodes := make([]*testNode, 3)
	for i, name := range names {
		nodes[i] = startNode(t, name, t.TempDir(), ps[i], 3, join)
	}
	stopped := make([]bool, 3)
	defer func() {
		for i, n := range nodes {
			if !stopped[i] {
				n.stop()
			}
		}
	}()
	allAlive := func() bool {
		for _, n := range nodes {
			st := n.node.MemberStatuses()
			for _, name := range names {
				if st[name] != "alive" {
					return false
				}
			}
		}
		return true
	}
	retry.Run(t, retry.Cond("every node alive on every node", allAlive), retry.Timeout(15*time.Second))

	// Each survivor's view of the victim, every 10 ms: the distinct
	// statuses in order.
	victim := 2
	var mu sync.Mutex
	seen := map[int][]string{}
	firstAt := map[string]time.Time{}
	poll := func() {
		mu.Lock()
		defer mu.Unlock()
		for i, n := range nodes {
			if i == victim {
				continue
			}
			st := string(n.node.MemberStatuses()[names[victim]])
			if h := seen[i]; len(h) == 0 || h[len(h)-1] != st {
				seen[i] = append(seen[i], st)
			}
			if _, ok := firstAt[st]; !ok {
				firstAt[st] = time.Now()
			}
		}
	}
	watch := func(stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			poll()
		}
	}

	// Healthy: 4 s (more than the 3 s threshold of 2 peers) without a
	// suspect on any node.
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		for i, n := range nodes {
			for name, st := range n.node.MemberStatuses() {
				if st != "alive" {
					t.Fatalf("healthy cluster: %s sees %s %s", names[i], name, st)
				}
			}
		}
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); watch(stop) }()
	start := time.Now()
	nodes[victim].stop()
	stopped[victim] = true
	retry.Run(t, retry.Cond("the victim failed on both survivors", func() bool {
		return nodes[0].node.MemberStatuses()[names[victim]] == "failed" &&
			nodes[1].node.MemberStatuses()[names[victim]] == "failed"
	}), retry.Timeout(20*time.Second))
	close(stop)
	<-done
	poll() // both failed now

	mu.Lock()
	defer mu.Unlock()
	sawSuspect := false
	for i, h := range seen {
		got := strings.Join(h, " -> ")
		switch got {
		case "alive -> suspect -> failed":
			sawSuspect = true
		case "alive -> failed", "suspect -> failed", "failed":
			// This survivor learned of the failure from gossip before its
			// own probe of the victim failed, or the watch started late.
		default:
			t.Errorf("%s saw %s: %s", names[i], names[victim], got)
		}
	}
	if !sawSuspect {
		t.Fatalf("no survivor saw %s suspect before failed: %v", names[victim], seen)
	}
	t.Logf("stopped %s: first suspect after %v, first failed after %v (views %v)", names[victim],
		firstAt["suspect"].Sub(start).Round(time.Millisecond), firstAt["failed"].Sub(start).Round(time.Millisecond), seen)
}
