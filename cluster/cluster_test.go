package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/agent"
	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/internal/metrictest"
	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/registry"
	"github.com/nexus/nexus/storage"
)

// testNode is one in-process node built by the agent (agent/agenttest), as
// the binary builds it: real Raft over TCP, real memberlist, the real FSM,
// and the real admin API, whose handlers serve what peers ask (forwarded
// writes, read indexes, raft stats, relays, keyring).
type testNode struct {
	name    string
	agent   *agent.Agent
	node    *cluster.Node
	machine *fsm.FSM
	store   *registry.Store
	dd      *storage.DataDir
	metrics *prometheus.Registry
	pilot   *cluster.Autopilot
}

// nodeOpts are what a test changes on a node beyond its name, ports and
// peers.
type nodeOpts struct {
	dir  string   // data dir (default: a new temporary one)
	args []string // more settings, as flags
	// tune adjusts the cluster configuration (timings, TLS material that
	// is not a setting).
	tune func(*cluster.Config)
	// autopilot replaces the autopilot policy of the settings.
	autopilot *cluster.AutopilotConfig
	// duties are more leader duties.
	duties func(*cluster.Node) []cluster.Duty
	reg    *prometheus.Registry // the node's metrics (default: a new registry)
	logs   io.Writer            // also receives the node's warnings
	level  slog.Level           // of the node's own log (default warn)
}

// startNodeOpts starts a node; it is stopped at the end of the test, or
// before by stop.
func startNodeOpts(t *testing.T, name string, p agenttest.NodePorts, expect int, join []string, o nodeOpts) *testNode {
	t.Helper()
	opts := agent.Options{Registry: o.reg, Tune: func(c *cluster.Config) {
		c.ReconcileInterval = 500 * time.Millisecond
		if o.tune != nil {
			o.tune(c)
		}
	}, Duties: o.duties}
	if o.autopilot != nil {
		opts.TuneAutopilot = func(c *cluster.AutopilotConfig) { *c = *o.autopilot }
	}
	if o.logs != nil || o.level != 0 {
		var w io.Writer = agenttest.NewLogWriter(t)
		if o.logs != nil {
			w = io.MultiWriter(w, o.logs)
		}
		level := o.level
		if level == 0 {
			level = slog.LevelWarn
		}
		opts.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("node", name)
	}
	a := agenttest.Start(t, agenttest.Node{Name: name, Dir: o.dir, Ports: p, Expect: expect, Join: join, Args: o.args, Options: opts})
	return &testNode{name: name, agent: a, node: a.Node(), machine: a.FSM(), store: a.FSM().Store(), dd: a.DataDir(),
		metrics: a.Metrics(), pilot: a.Autopilot()}
}

func (n *testNode) stop() { _ = n.agent.Shutdown(context.Background()) }

func startNode(t *testing.T, name, dir string, p agenttest.NodePorts, expect int, join []string) *testNode {
	t.Helper()
	return startNodeOpts(t, name, p, expect, join, nodeOpts{dir: dir})
}

// startNodeWith is startNode with tune applied to the node's configuration
// and the leader duties that duties builds for the node.
func startNodeWith(t *testing.T, name, dir string, p agenttest.NodePorts, expect int, join []string, tune func(*cluster.Config),
	duties func(*cluster.Node) []cluster.Duty) *testNode {
	t.Helper()
	return startNodeOpts(t, name, p, expect, join, nodeOpts{dir: dir, tune: tune, duties: duties})
}

func configSet(t *testing.T, key, value string) []byte {
	t.Helper()
	b, err := command.NewCodec().Encode(command.TypeConfigSet, &command.ConfigSet{
		Meta: command.Meta{Actor: "test", Time: time.Now().UnixNano()}, Entries: []command.ConfigOp{{Key: key, Value: []byte(value)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func configValue(s *registry.Store, key string) string {
	tx := s.ReadTxn()
	defer tx.Abort()
	if e := tx.ConfigGet(nil, key); e != nil {
		return string(e.Value)
	}
	return ""
}

func TestThreeNodesReplicateForwardAndFailOver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	pp := agenttest.NewPorts(t)
	names := []string{"a", "b", "c"}
	ps, join := pp.Cluster(3)
	nodes := make([]*testNode, 3)
	dirs := make([]string, 3)
	for i, name := range names {
		dirs[i] = t.TempDir()
		nodes[i] = startNode(t, name, dirs[i], ps[i], 3, join)
	}
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.stop()
			}
		}
	}()

	leaderIdx := func() int {
		for i, n := range nodes {
			if n != nil && n.node.Raft().State == "leader" && n.node.Ready() {
				return i
			}
		}
		return -1
	}
	retry.Run(t, retry.Cond("a leader with its barrier applied", func() bool { return leaderIdx() >= 0 }), retry.Timeout(15*time.Second))
	retry.Run(t, retry.Cond("three voters", func() bool {
		return len(nodes[leaderIdx()].node.Raft().Servers) == 3
	}), retry.Timeout(10*time.Second))
	li := leaderIdx()
	follower := (li + 1) % 3

	// The cluster identity is replicated before followers can forward.
	retry.Run(t, retry.Cond("cluster identity on every node", func() bool {
		for _, n := range nodes {
			if n.dd.ClusterID() == "" {
				return false
			}
		}
		return true
	}), retry.Timeout(10*time.Second))

	// A write on a follower is forwarded, and applied on that follower
	// before it answers (read-your-writes).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := nodes[follower].node.Apply(ctx, configSet(t, "k1", `"v1"`))
	if err != nil {
		t.Fatalf("forwarded write: %v", err)
	}
	if res.Err != nil || res.Index == 0 {
		t.Fatalf("forwarded write result: %+v", res)
	}
	if got := configValue(nodes[follower].store, "k1"); got != `"v1"` {
		t.Fatalf("follower answered before applying its own write: %q", got)
	}
	retry.Run(t, retry.Cond("k1 on every node", func() bool {
		for _, n := range nodes {
			if configValue(n.store, "k1") != `"v1"` {
				return false
			}
		}
		return true
	}), retry.Timeout(5*time.Second))

	// Linearizable reads through a follower; concurrent ones share
	// read-index rounds.
	if err := nodes[follower].node.ConsistentRead(ctx); err != nil {
		t.Fatalf("consistent read on follower: %v", err)
	}
	rounds0 := counterValue(t, nodes[follower].metrics, "nexus_read_index_rounds_total")
	var wg sync.WaitGroup
	const readers = 64
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := nodes[follower].node.ConsistentRead(ctx); err != nil {
				t.Errorf("concurrent consistent read on follower: %v", err)
			}
		}()
	}
	wg.Wait()
	if rounds := counterValue(t, nodes[follower].metrics, "nexus_read_index_rounds_total") - rounds0; rounds < 1 || rounds >= readers {
		t.Fatalf("%d concurrent consistent reads took %v read-index rounds", readers, rounds)
	}

	// Stop the leader (SIGTERM path: transfer leadership, no leave).
	old := nodes[li]
	old.stop()
	nodes[li] = nil
	retry.Run(t, retry.Cond("a new leader", func() bool { li2 := leaderIdx(); return li2 >= 0 && li2 != li }), retry.Timeout(15*time.Second))
	survivor := -1
	for i, n := range nodes {
		if n != nil {
			survivor = i
		}
	}
	if _, err := nodes[survivor].node.Apply(ctx, configSet(t, "k2", `"v2"`)); err != nil {
		t.Fatalf("write after failover: %v", err)
	}

	// The stopped node restarts from its data dir, does not bootstrap again,
	// and catches up.
	nodes[li] = startNode(t, names[li], dirs[li], ps[li], 3, join)
	retry.Run(t, retry.Cond("restarted node catches up", func() bool {
		return configValue(nodes[li].store, "k2") == `"v2"` && configValue(nodes[li].store, "k1") == `"v1"`
	}), retry.Timeout(15*time.Second))
	if got := len(nodes[leaderIdx()].node.Raft().Servers); got != 3 {
		t.Fatalf("raft servers after restart: %d, want 3", got)
	}
}

// A lone client writing through a follower does not wait for the leader's
// CommitTimeout tick to learn of the commit: the leader sends that follower
// a commit notice (an AppendEntries with no entries) after a forwarded
// write, and appends no no-op entry. With a CommitTimeout of 250 ms every
// such write took 250-500 ms before; now it takes a few round trips.
func TestForwardedWriteDoesNotWaitForCommitTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	const commitTimeout = 250 * time.Millisecond
	pp := agenttest.NewPorts(t)
	ps, join := pp.Cluster(3)
	nodes := make([]*testNode, 3)
	for i, name := range []string{"a", "b", "c"} {
		nodes[i] = startNodeWith(t, name, t.TempDir(), ps[i], 3, join, func(c *cluster.Config) { c.CommitTimeout = commitTimeout }, nil)
		defer nodes[i].stop()
	}
	leader := -1
	retry.Run(t, retry.Cond("a leader with three voters and the cluster identity everywhere", func() bool {
		leader = -1
		for i, n := range nodes {
			if n.node.Raft().State == "leader" && n.node.Ready() && len(n.node.Raft().Servers) == 3 {
				leader = i
			}
		}
		for _, n := range nodes {
			if n.dd.ClusterID() == "" {
				return false
			}
		}
		return leader >= 0
	}), retry.Timeout(20*time.Second))
	follower := nodes[(leader+1)%3]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var took []time.Duration
	for i := range 7 {
		start := time.Now()
		if _, err := follower.node.Apply(ctx, configSet(t, "lone", strconv.Itoa(i))); err != nil {
			t.Fatalf("write %d through the follower: %v", i, err)
		}
		took = append(took, time.Since(start))
		if got := configValue(follower.store, "lone"); got != strconv.Itoa(i) {
			t.Fatalf("follower answered before applying write %d: %q", i, got)
		}
	}
	t.Logf("writes through a follower took %v", took)
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	if median := sorted[len(sorted)/2]; median >= commitTimeout*6/10 {
		t.Fatalf("writes through a follower took %v (median %v): they waited for the CommitTimeout tick (%v)", took, median, commitTimeout)
	}
	delivered := metrictest.Value(t, nodes[leader].metrics, "nexus_raft_commit_notices_total", map[string]string{"result": "delivered"})
	nudges := counterValue(t, nodes[leader].metrics, "nexus_raft_commit_nudges_total")
	t.Logf("commit notices delivered %v, no-op nudges %v", delivered, nudges)
	if delivered < 1 {
		t.Fatalf("nexus_raft_commit_notices_total{result=delivered} = %v on the leader after 7 lone forwarded writes", delivered)
	}
	if nudges >= delivered {
		t.Fatalf("%v no-op entries for %v commit notices: the notices did not replace them", nudges, delivered)
	}
}

func TestDataDirOfAnotherNodeIsRefused(t *testing.T) {
	dir := t.TempDir()
	dd, err := storage.Open(dir, "n1", storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dd.Close()
	_, err = storage.Open(dir, "n2", storage.Options{})
	if !errors.Is(err, storage.ErrForeignDataDir) {
		t.Fatalf("open by another node: %v, want ErrForeignDataDir", err)
	}
}

// A node whose data dir belongs to one cluster never merges into another:
// gossip refuses the peer, so Raft never sees it.
func TestNodeOfAnotherClusterIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two clusters")
	}
	pp := agenttest.NewPorts(t)
	pa := pp.Node()
	pb := pp.Node()
	dirB := t.TempDir()
	a := startNode(t, "a", t.TempDir(), pa, 1, nil)
	defer a.stop()
	b := startNode(t, "b", dirB, pb, 1, nil)
	for _, n := range []*testNode{a, b} {
		n := n
		retry.Run(t, retry.Cond(n.name+" has a cluster identity", func() bool { return n.dd.ClusterID() != "" }), retry.Timeout(10*time.Second))
	}
	if a.dd.ClusterID() == b.dd.ClusterID() {
		t.Fatal("two bootstraps produced the same cluster id")
	}
	b.stop()
	// Restart b with its data dir and ask it to join a: a refuses it, again
	// at each of b's join attempts.
	logs := &raftTLSLogs{}
	b = startNodeOpts(t, "b", pb, 1, []string{fmt.Sprintf("127.0.0.1:%d", pa.Gossip)}, nodeOpts{dir: dirB, logs: logs})
	defer b.stop()
	retry.Run(t, retry.Cond("b's joins refused twice", func() bool {
		return len(logs.lines("refusing peer of another cluster")) >= 2
	}), retry.Timeout(20*time.Second))
	for _, m := range a.node.Members() {
		if m.Name == "b" {
			t.Fatalf("a lists b of another cluster as a member: %+v", m)
		}
	}
	if got := len(a.node.Raft().Servers); got != 1 {
		t.Fatalf("a has %d raft servers, want 1", got)
	}
}

// counterValue reads a counter without labels from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// TestSnapshotThresholdFollowsState: once the state holds more than eight
// objects per entry of the configured threshold, the node snapshots after
// an eighth of its objects in entries (snapshotpolicy.go), and shows it in
// nexus_raft_snapshot_threshold.
func TestSnapshotThresholdFollowsState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	pp := agenttest.NewPorts(t)
	n := startNodeOpts(t, "a", pp.Node(), 1, nil, nodeOpts{args: []string{"--raft-snapshot-threshold=100"}})
	defer n.stop()
	threshold := func() float64 {
		return metrictest.Value(t, n.metrics, "nexus_raft_snapshot_threshold", nil)
	}
	retry.Run(t, retry.Cond("a leader and the configured threshold", func() bool {
		return n.node.Ready() && threshold() == 100
	}), retry.Timeout(20*time.Second))
	ops := make([]command.ConfigOp, 2000)
	for i := range ops {
		ops[i] = command.ConfigOp{Key: fmt.Sprintf("k/%04d", i), Value: []byte(`"v"`)}
	}
	cmd, err := command.NewCodec().Encode(command.TypeConfigSet, &command.ConfigSet{
		Meta: command.Meta{Actor: "test", Time: time.Now().UnixNano()}, Entries: ops,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := n.node.Apply(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	tx := n.store.ReadTxn()
	objects := tx.Objects()
	tx.Abort()
	if objects < 2000 {
		t.Fatalf("state counts %d objects after 2,000 keys", objects)
	}
	want := float64(objects / 8)
	retry.Run(t, retry.Cond(fmt.Sprintf("threshold %v for %d objects", want, objects), func() bool {
		return threshold() == want
	}), retry.Timeout(20*time.Second))
}
