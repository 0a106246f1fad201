package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/cluster/member"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/registry"
)

// testPolicy is fast: health is refreshed every 200 ms (stats requests get
// 100 ms), promotions and removals run every 100 ms.
func testPolicy(stabilization, grace time.Duration, minQuorum int) cluster.AutopilotConfig {
	return cluster.AutopilotConfig{StabilizationTime: stabilization, DeadServerGrace: grace, MinQuorum: minQuorum,
		UpdateInterval: 200 * time.Millisecond, ReconcileInterval: 100 * time.Millisecond}
}

// startAPNode starts a node with the autopilot policy, reconciling gossip
// into Raft every 200 ms, logging from info up.
func startAPNode(t *testing.T, name string, p agenttest.NodePorts, expect int, join []string, policy cluster.AutopilotConfig) *testNode {
	t.Helper()
	return startNodeOpts(t, name, p, expect, join, nodeOpts{autopilot: &policy, level: slog.LevelInfo,
		tune: func(c *cluster.Config) { c.ReconcileInterval = 200 * time.Millisecond }})
}

// apCluster is a set of nodes with an autopilot bootstrapped together.
type apCluster struct {
	t     *testing.T
	pp    *agenttest.Ports // every port of the cluster, including nodes added later
	nodes []*testNode
	ports []agenttest.NodePorts
	join  []string
}

func startAPCluster(t *testing.T, n int, policy cluster.AutopilotConfig) *apCluster {
	t.Helper()
	c := &apCluster{t: t, pp: agenttest.NewPorts(t)}
	for i := 0; i < n; i++ {
		p := c.pp.Node()
		c.ports = append(c.ports, p)
		c.join = append(c.join, fmt.Sprintf("127.0.0.1:%d", p.Gossip))
	}
	for i := 0; i < n; i++ {
		c.nodes = append(c.nodes, startAPNode(t, fmt.Sprintf("s%d", i+1), c.ports[i], n, c.join, policy))
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd != nil {
				nd.stop()
			}
		}
	})
	retry.Run(t, retry.Cond("a leader with its barrier applied", func() bool { return c.leader() >= 0 }), retry.Timeout(60*time.Second))
	retry.Run(t, retry.Cond(fmt.Sprintf("%d voters", n), func() bool { return c.voters(c.leader()) == n }), retry.Timeout(10*time.Second))
	return c
}

// leader returns the index of the ready leader, or -1.
func (c *apCluster) leader() int {
	for i, n := range c.nodes {
		if n != nil && n.node.Raft().State == "leader" && n.node.Ready() {
			return i
		}
	}
	return -1
}

func (c *apCluster) mustLeader() int {
	c.t.Helper()
	var li int
	retry.Run(c.t, retry.Cond("a leader", func() bool { li = c.leader(); return li >= 0 }), retry.Timeout(60*time.Second))
	return li
}

// suffrage returns the Raft configuration node i knows: id -> suffrage.
func (c *apCluster) suffrage(i int) map[string]string {
	out := map[string]string{}
	for _, s := range c.nodes[i].node.Raft().Servers {
		out[s.ID] = s.Suffrage
	}
	return out
}

func (c *apCluster) voters(i int) int {
	if i < 0 {
		return 0
	}
	v := 0
	for _, s := range c.suffrage(i) {
		if s == "voter" {
			v++
		}
	}
	return v
}

// stop stops node i without leaving (peers see it failed).
func (c *apCluster) stop(i int) {
	c.nodes[i].stop()
	c.nodes[i] = nil
}

// follower returns a running node that is not the leader.
func (c *apCluster) follower(skip ...int) int {
	li := c.mustLeader()
	for i, n := range c.nodes {
		if n == nil || i == li || contains(skip, i) {
			continue
		}
		return i
	}
	c.t.Fatal("no follower")
	return -1
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// write commits key through node i (writeRetry).
func (c *apCluster) write(i int, key string) {
	c.t.Helper()
	writeRetry(c.t, c.nodes[i], key, `"v"`)
}

// memberStatus is node i's gossip view of member name.
func (c *apCluster) memberStatus(i int, name string) member.Status {
	for _, m := range c.nodes[i].node.Members() {
		if m.Name == name {
			return m.Status
		}
	}
	return ""
}

func TestAutopilotPromotesJoiningServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes")
	}
	const stabilization = 1500 * time.Millisecond
	policy := testPolicy(stabilization, time.Hour, 0)
	c := startAPCluster(t, 3, policy)
	li := c.mustLeader()
	if got := c.nodes[li].pilot.AutopilotConfig().MinQuorum; got != 3 {
		t.Errorf("min quorum %d, want bootstrap-expect 3", got)
	}

	// A fourth server joins without --bootstrap-expect.
	p := c.pp.Node()
	c.ports = append(c.ports, p)
	c.nodes = append(c.nodes, startAPNode(t, "s4", p, 0, c.join[:1], policy))
	var added time.Time
	retry.Run(t, retry.Cond("s4 in the raft configuration", func() bool {
		if s, ok := c.suffrage(c.mustLeader())["s4"]; ok {
			if s != "nonvoter" {
				t.Fatalf("s4 joined as %s, want nonvoter", s)
			}
			added = time.Now()
			return true
		}
		return false
	}), retry.Timeout(15*time.Second))
	retry.Run(t, retry.Cond("s4 promoted to voter", func() bool { return c.suffrage(c.mustLeader())["s4"] == "voter" }), retry.Timeout(20*time.Second))
	took := time.Since(added)
	t.Logf("s4: non-voter to voter in %v (stabilization %v)", took.Round(time.Millisecond), stabilization)
	if took < stabilization-200*time.Millisecond {
		t.Errorf("promoted after %v, before the stabilization time %v", took, stabilization)
	}
	for _, m := range c.nodes[c.mustLeader()].node.Members() {
		if m.Name == "s4" && (m.Status != "alive" || m.Raft != "voter") {
			t.Errorf("members shows s4 as %+v", m)
		}
	}
	// The counter moves once the promotion's future returned, a moment after
	// the configuration shows the voter.
	promoted := func() float64 {
		sum := 0.0
		for _, n := range c.nodes {
			sum += metricValue(t, n.metrics, "nexus_autopilot_promotions_total", "")
		}
		return sum
	}
	retry.Run(t, retry.Cond("the promotion counted", func() bool { return promoted() >= 1 }), retry.Timeout(5*time.Second))
	if got := promoted(); got != 1 {
		t.Errorf("promotions summed over the servers: %v, want 1", got)
	}
	// The new voter takes writes (forwarded) and applies them.
	c.write(3, "after-promotion")
	if configValue(c.nodes[3].store, "after-promotion") == "" {
		t.Error("s4 did not apply its own write")
	}
	if v := metricValue(t, c.nodes[3].metrics, "nexus_raft_voters", ""); v != 4 {
		t.Errorf("nexus_raft_voters on s4 = %v, want 4", v)
	}
}

// Five servers, min_quorum 3: two fail and are removed after the grace
// period (not before); a third failure is never removed by autopilot (it
// would leave 2 voters), but an operator may remove it; an alive server
// and an unknown one are refused.
func TestAutopilotDeadServerCleanupAndRemovePeer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five nodes")
	}
	const grace = 2 * time.Second
	c := startAPCluster(t, 5, testPolicy(500*time.Millisecond, grace, 3))
	li := c.mustLeader()
	var victims []int
	for i := range c.nodes {
		if i != li && len(victims) < 2 {
			victims = append(victims, i)
		}
	}
	names := []string{c.nodes[victims[0]].name, c.nodes[victims[1]].name}
	for _, v := range victims {
		c.stop(v)
	}
	survivor := c.follower()
	c.write(survivor, "two-down") // 3 of 5 voters: quorum holds

	// The grace period of each victim starts when gossip declares it failed;
	// check half-way through the grace of the first one to fail.
	var firstFailed time.Time
	retry.Run(t, retry.Cond("both victims failed in gossip", func() bool {
		a, b := c.memberStatus(li, names[0]) == "failed", c.memberStatus(li, names[1]) == "failed"
		if (a || b) && firstFailed.IsZero() {
			firstFailed = time.Now()
		}
		return a && b
	}), retry.Timeout(15*time.Second))
	failedAt := time.Now()
	if half := firstFailed.Add(grace / 2); time.Now().Before(half) {
		time.Sleep(time.Until(half))
		if got := len(c.suffrage(li)); got != 5 {
			t.Fatalf("%d raft servers %v half-way through the grace period, want 5", got, c.suffrage(li))
		}
	}
	retry.Run(t, retry.Cond("victims removed", func() bool {
		s := c.suffrage(c.mustLeader())
		_, a := s[names[0]]
		_, b := s[names[1]]
		return !a && !b
	}), retry.Timeout(20*time.Second))
	t.Logf("failed servers removed %v after gossip declared them failed (grace %v)", time.Since(failedAt).Round(time.Millisecond), grace)
	li = c.mustLeader()
	if got := c.voters(li); got != 3 {
		t.Fatalf("voters %d after cleanup, want 3", got)
	}
	// Summed over the running servers: leadership may have moved between
	// the two removals. The counter moves just after the configuration
	// change is committed, so wait for it briefly.
	sumRemovals := func() float64 {
		removed := 0.0
		for _, n := range c.nodes {
			if n != nil {
				removed += metricValue(t, n.metrics, "nexus_autopilot_removals_total", "failed")
			}
		}
		return removed
	}
	retry.Run(t, retry.Cond("two removals counted", func() bool { return sumRemovals() >= 2 }), retry.Timeout(5*time.Second))
	removed := sumRemovals()
	if removed != 2 {
		t.Errorf("removals{failed} summed over the servers: %v, want 2", removed)
	}
	for _, name := range names {
		if st, role := c.memberStatus(li, name), memberRole(c, li, name); st != "failed" || role != "none" {
			t.Errorf("members shows %s as %s/%s, want failed/none", name, st, role)
		}
	}

	// A third failure: 3 voters = min_quorum, autopilot keeps it.
	third := c.follower()
	thirdName := c.nodes[third].name
	c.stop(third)
	retry.Run(t, retry.Cond(thirdName+" failed in gossip", func() bool { return c.memberStatus(c.mustLeader(), thirdName) == "failed" }), retry.Timeout(15*time.Second))
	time.Sleep(grace + time.Second)
	li = c.mustLeader()
	if s := c.suffrage(li); s[thirdName] != "voter" || len(s) != 3 {
		t.Fatalf("raft %v: the third failed voter must stay (min_quorum 3)", s)
	}
	c.write(li, "three-of-five-down") // 2 of 3 voters

	// Operator removals, through a follower (relayed to the leader).
	f := c.follower()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := c.nodes[f].node.RemovePeer(ctx, c.nodes[li].name, cluster.Relay{}); !errors.Is(err, cluster.ErrMemberAlive) {
		t.Errorf("remove-peer of the alive leader: %v, want member_alive", err)
	}
	if _, err := c.nodes[li].node.RemovePeer(ctx, c.nodes[f].name, cluster.Relay{}); !errors.Is(err, cluster.ErrMemberAlive) {
		t.Errorf("remove-peer of an alive follower: %v, want member_alive", err)
	}
	if _, err := c.nodes[f].node.RemovePeer(ctx, "nobody", cluster.Relay{}); !errors.Is(err, cluster.ErrPeerNotFound) {
		t.Errorf("remove-peer of an unknown node: %v, want not_found", err)
	}
	if _, err := c.nodes[f].node.RemovePeer(ctx, thirdName, cluster.Relay{Forwarded: true}); !errors.Is(err, command.ErrNoLeader) {
		t.Errorf("a relayed remove-peer on a follower: %v, want no_leader", err)
	}
	idx, err := c.nodes[f].node.RemovePeer(ctx, thirdName, cluster.Relay{})
	if err != nil || idx == 0 {
		t.Fatalf("remove-peer of failed %s through a follower: %d, %v", thirdName, idx, err)
	}
	if s := c.suffrage(c.mustLeader()); len(s) != 2 {
		t.Fatalf("raft %v after remove-peer, want 2 servers", s)
	}
	c.write(f, "after-remove-peer")
}

func memberRole(c *apCluster, i int, name string) string {
	for _, m := range c.nodes[i].node.Members() {
		if m.Name == name {
			return m.Raft
		}
	}
	return ""
}

// metricValue reads one series of reg: name, with label reason = reason
// when set.
func metricValue(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if reason != "" && (len(mt.GetLabel()) == 0 || mt.GetLabel()[0].GetValue() != reason) {
				continue
			}
			return mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s %s", name, reason)
	return 0
}

// snapshotIndex is the index a snapshot's header records (0 if invalid).
func snapshotIndex(data []byte) uint64 {
	scratch := fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: command.NewCodec()})
	if err := scratch.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		return 0
	}
	return scratch.AppliedIndex()
}

func codecOf() *command.Codec { return command.NewCodec() }
