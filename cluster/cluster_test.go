package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
	"github.com/nexus/nexus/storage"
)

// testNode is one in-process node: real Raft over TCP, real memberlist, the
// real FSM, and a minimal HTTP endpoint for forwarded writes and read indexes.
type testNode struct {
	name    string
	node    *cluster.Node
	machine *fsm.FSM
	store   *registry.Store
	http    *fasthttp.Server
	dd      *storage.DataDir
	metrics *prometheus.Registry
}

// portPicker hands out ports that are free for TCP and UDP now, below the
// kernel's ephemeral range (32768+) and the fixed ports of the e2e tests
// (18000+): a port the kernel hands out for :0 can be handed to another
// test's outgoing connection before this test binds it again. One picker
// per test never hands out a port twice (random picks did: a node's Raft
// port once came up again as another node's gossip port).
type portPicker struct {
	t    *testing.T
	used map[int]bool
}

func newPortPicker(t *testing.T) *portPicker {
	return &portPicker{t: t, used: map[int]bool{}}
}

func (pp *portPicker) port() int {
	pp.t.Helper()
	for try := 0; try < 1000; try++ {
		p := 10000 + rand.IntN(8000)
		if pp.used[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		pp.used[p] = true
		return p
	}
	pp.t.Fatal("no free port in 10000-17999")
	return 0
}

// ports returns a node's three ports.
func (pp *portPicker) ports() ports {
	return ports{raft: pp.port(), gossip: pp.port(), http: pp.port()}
}

type ports struct{ raft, gossip, http int }

// cluster returns the ports of n nodes and the gossip addresses they join.
func (pp *portPicker) cluster(n int) ([]ports, []string) {
	ps := make([]ports, n)
	join := make([]string, n)
	for i := range ps {
		ps[i] = pp.ports()
		join[i] = fmt.Sprintf("127.0.0.1:%d", ps[i].gossip)
	}
	return ps, join
}

func startNode(t *testing.T, name, dir string, p ports, expect int, join []string) *testNode {
	t.Helper()
	return startNodeWith(t, name, dir, p, expect, join, nil, nil)
}

// startNodeWith is startNode with tune applied to the node's configuration
// and the leader duties that duties builds for the node.
func startNodeWith(t *testing.T, name, dir string, p ports, expect int, join []string, tune func(*cluster.Config),
	duties func(*cluster.Node) []cluster.Duty) *testNode {
	t.Helper()
	dd, err := storage.Open(dir, name, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	store := registry.NewStore()
	codec := command.NewCodec()
	machine := fsm.New(fsm.Deps{Store: store, Codec: codec})
	identity := func() (string, string) {
		tx := store.ReadTxn()
		defer tx.Abort()
		if m := tx.ClusterMeta(); m != nil {
			return m.ClusterID, m.Secret
		}
		return "", ""
	}
	httpAddr := "127.0.0.1:" + strconv.Itoa(p.http)
	reg := prometheus.NewRegistry()
	cfg := cluster.Config{
		Registerer: reg,
		Node:       name, BindAddr: "127.0.0.1", RaftPort: p.raft, GossipPort: p.gossip, HTTPAddr: httpAddr,
		BootstrapExpect: expect, Join: join, Version: "test",
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		ApplyTimeout: 5 * time.Second, ReconcileInterval: 500 * time.Millisecond,
		DataDir: dd, FSM: machine,
		Hooks: cluster.Hooks{
			Noop: func() []byte { b, _ := codec.Encode(command.TypeNoop, &command.Noop{}); return b },
			ClusterInit: func(id, secret string) []byte {
				b, _ := codec.Encode(command.TypeClusterInit, &command.ClusterInit{ClusterID: id, Secret: secret})
				return b
			},
			Identity: identity,
		},
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", name),
		LogOutput: testWriter{t}, LogLevel: slog.LevelWarn,
	}
	if tune != nil {
		tune(&cfg)
	}
	node, err := cluster.New(cfg)
	if err != nil {
		dd.Close()
		t.Fatal(err)
	}
	var ds []cluster.Duty
	if duties != nil {
		ds = duties(node)
	}
	node.Start(ds...)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		mac := string(ctx.Request.Header.Peek(cluster.ForwardMACHeader))
		switch string(ctx.Path()) {
		case cluster.ForwardPath:
			res, err := node.Forwarded(context.Background(), mac, ctx.PostBody())
			switch {
			case errors.Is(err, command.ErrNoLeader):
				ctx.SetStatusCode(503)
			case err != nil:
				ctx.SetStatusCode(504)
			default:
				b, _ := json.Marshal(res)
				ctx.SetBody(b)
			}
		case cluster.ReadIndexPath:
			idx, err := node.ForwardedReadIndex(context.Background(), mac, ctx.PostBody())
			if err != nil {
				ctx.SetStatusCode(503)
				return
			}
			ctx.SetBodyString(strconv.FormatUint(idx, 10))
		}
	}}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	return &testNode{name: name, node: node, machine: machine, store: store, http: srv, dd: dd, metrics: reg}
}

func (n *testNode) stop() {
	_ = n.node.Shutdown(context.Background())
	_ = n.http.Shutdown()
	_ = n.dd.Close()
}

type testWriter struct{ t *testing.T }

// Write logs to the test; memberlist and raft may still log for a moment
// after the test ended, when t.Log panics, so those lines are dropped.
func (w testWriter) Write(p []byte) (n int, err error) {
	defer func() {
		if recover() != nil {
			n, err = len(p), nil
		}
	}()
	w.t.Log(string(p))
	return len(p), nil
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
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
	pp := newPortPicker(t)
	names := []string{"a", "b", "c"}
	ps, join := pp.cluster(3)
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
	waitFor(t, "a leader with its barrier applied", 15*time.Second, func() bool { return leaderIdx() >= 0 })
	waitFor(t, "three voters", 10*time.Second, func() bool {
		return len(nodes[leaderIdx()].node.Raft().Servers) == 3
	})
	li := leaderIdx()
	follower := (li + 1) % 3

	// The cluster identity is replicated before followers can forward.
	waitFor(t, "cluster identity on every node", 10*time.Second, func() bool {
		for _, n := range nodes {
			if n.dd.ClusterID() == "" {
				return false
			}
		}
		return true
	})

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
	waitFor(t, "k1 on every node", 5*time.Second, func() bool {
		for _, n := range nodes {
			if configValue(n.store, "k1") != `"v1"` {
				return false
			}
		}
		return true
	})

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
	waitFor(t, "a new leader", 15*time.Second, func() bool { li2 := leaderIdx(); return li2 >= 0 && li2 != li })
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
	waitFor(t, "restarted node catches up", 15*time.Second, func() bool {
		return configValue(nodes[li].store, "k2") == `"v2"` && configValue(nodes[li].store, "k1") == `"v1"`
	})
	if got := len(nodes[leaderIdx()].node.Raft().Servers); got != 3 {
		t.Fatalf("raft servers after restart: %d, want 3", got)
	}
}

// A lone client writing through a follower does not wait for the leader's
// CommitTimeout tick to learn of the commit: the leader appends a no-op
// after a forwarded write. With a CommitTimeout of 250 ms every such write
// took 250-500 ms before; now it takes a few round trips.
func TestForwardedWriteDoesNotWaitForCommitTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	const commitTimeout = 250 * time.Millisecond
	pp := newPortPicker(t)
	ps, join := pp.cluster(3)
	nodes := make([]*testNode, 3)
	for i, name := range []string{"a", "b", "c"} {
		nodes[i] = startNodeWith(t, name, t.TempDir(), ps[i], 3, join, func(c *cluster.Config) { c.CommitTimeout = commitTimeout }, nil)
		defer nodes[i].stop()
	}
	leader := -1
	waitFor(t, "a leader with three voters and the cluster identity everywhere", 20*time.Second, func() bool {
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
	})
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
	if n := counterValue(t, nodes[leader].metrics, "nexus_raft_commit_nudges_total"); n < 1 {
		t.Fatalf("nexus_raft_commit_nudges_total = %v on the leader", n)
	}
}

func TestDataDirOfAnotherNodeIsRefused(t *testing.T) {
	dir := t.TempDir()
	dd, err := storage.Open(dir, "n1", testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	dd.Close()
	_, err = storage.Open(dir, "n2", testWriter{t})
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
	pp := newPortPicker(t)
	pa := pp.ports()
	pb := pp.ports()
	dirB := t.TempDir()
	a := startNode(t, "a", t.TempDir(), pa, 1, nil)
	defer a.stop()
	b := startNode(t, "b", dirB, pb, 1, nil)
	for _, n := range []*testNode{a, b} {
		n := n
		waitFor(t, n.name+" has a cluster identity", 10*time.Second, func() bool { return n.dd.ClusterID() != "" })
	}
	if a.dd.ClusterID() == b.dd.ClusterID() {
		t.Fatal("two bootstraps produced the same cluster id")
	}
	b.stop()
	// Restart b with its data dir and ask it to join a.
	b = startNode(t, "b", dirB, pb, 1, []string{fmt.Sprintf("127.0.0.1:%d", pa.gossip)})
	defer b.stop()
	time.Sleep(2 * time.Second) // give the join loop several attempts
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

func TestPortPickerNeverRepeats(t *testing.T) {
	pp := newPortPicker(t)
	seen := map[int]bool{}
	for range 300 {
		p := pp.port()
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}
