package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
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

// apNode is an in-process node with an Autopilot and a minimal admin API:
// forwarded writes, read indexes, raft stats and peer removal.
type apNode struct {
	name  string
	node  *cluster.Node
	pilot *cluster.Autopilot
	fsm   *fsm.FSM
	store *registry.Store
	reg   *prometheus.Registry
	http  *fasthttp.Server
	dd    *storage.DataDir
}

// testPolicy is fast: health is refreshed every 200 ms (stats requests get
// 100 ms), promotions and removals run every 100 ms.
func testPolicy(stabilization, grace time.Duration, minQuorum int) cluster.AutopilotConfig {
	return cluster.AutopilotConfig{StabilizationTime: stabilization, DeadServerGrace: grace, MinQuorum: minQuorum,
		UpdateInterval: 200 * time.Millisecond, ReconcileInterval: 100 * time.Millisecond}
}

// quietWriter logs to t until the test's cleanups ran: memberlist
// goroutines may still log a moment after Shutdown returned.
type quietWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func newQuietWriter(t *testing.T) *quietWriter {
	w := &quietWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *quietWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func startAPNode(t *testing.T, name string, p ports, expect int, join []string, policy cluster.AutopilotConfig) *apNode {
	t.Helper()
	logs := newQuietWriter(t)
	dd, err := storage.Open(t.TempDir(), name, logs)
	if err != nil {
		t.Fatal(err)
	}
	store := registry.NewStore()
	codec := command.NewCodec()
	machine := fsm.New(fsm.Deps{Store: store, Codec: codec})
	reg := prometheus.NewRegistry()
	node, err := cluster.New(cluster.Config{
		Node: name, BindAddr: "127.0.0.1", RaftPort: p.raft, GossipPort: p.gossip, HTTPAddr: "127.0.0.1:" + strconv.Itoa(p.http),
		BootstrapExpect: expect, Join: join, Version: "test",
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		ApplyTimeout: 5 * time.Second, ReconcileInterval: 200 * time.Millisecond,
		DataDir: dd, FSM: machine, Registerer: reg,
		Hooks: cluster.Hooks{
			Noop: func() []byte { b, _ := codec.Encode(command.TypeNoop, &command.Noop{}); return b },
			ClusterInit: func(id, secret string) []byte {
				b, _ := codec.Encode(command.TypeClusterInit, &command.ClusterInit{ClusterID: id, Secret: secret})
				return b
			},
			Identity: func() (string, string) {
				tx := store.ReadTxn()
				defer tx.Abort()
				if m := tx.ClusterMeta(); m != nil {
					return m.ClusterID, m.Secret
				}
				return "", ""
			},
		},
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name),
		LogOutput: logs, LogLevel: slog.LevelWarn,
	})
	if err != nil {
		dd.Close()
		t.Fatal(err)
	}
	pilot, err := cluster.NewAutopilot(node, policy)
	if err != nil {
		t.Fatal(err)
	}
	node.Start(pilot)
	srv := &fasthttp.Server{Handler: adminHandler(node)}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p.http))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	return &apNode{name: name, node: node, pilot: pilot, fsm: machine, store: store, reg: reg, http: srv, dd: dd}
}

func (n *apNode) stop() {
	_ = n.node.Shutdown(context.Background())
	_ = n.http.Shutdown()
	_ = n.dd.Close()
}

// adminHandler serves the admin API paths the cluster package calls on
// its peers, as api does.
func adminHandler(node *cluster.Node) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		mac := string(ctx.Request.Header.Peek(cluster.ForwardMACHeader))
		path := string(ctx.Path())
		switch {
		case path == cluster.ForwardPath:
			res, err := node.Forwarded(context.Background(), mac, ctx.PostBody())
			if err != nil {
				writeOpAnswer(ctx, 0, err)
				return
			}
			b, _ := json.Marshal(res)
			ctx.SetBody(b)
		case path == cluster.ReadIndexPath:
			idx, err := node.ForwardedReadIndex(context.Background(), mac, ctx.PostBody())
			if err != nil {
				ctx.SetStatusCode(503)
				return
			}
			ctx.SetBodyString(strconv.FormatUint(idx, 10))
		case path == cluster.RaftStatsPath:
			b, _ := json.Marshal(node.LocalRaftStats())
			ctx.SetBody(b)
		case path == cluster.SnapshotPath && ctx.IsPut():
			relay := cluster.Relay{Forwarded: len(ctx.Request.Header.Peek(cluster.RelayHeader)) > 0}
			data := append([]byte(nil), ctx.PostBody()...)
			idx, err := node.RestoreSnapshot(context.Background(), data, snapshotIndex(data), relay)
			writeOpAnswer(ctx, idx, err)
		case strings.HasPrefix(path, cluster.PeersPath) && ctx.IsDelete():
			relay := cluster.Relay{Forwarded: len(ctx.Request.Header.Peek(cluster.RelayHeader)) > 0}
			idx, err := node.RemovePeer(context.Background(), strings.TrimPrefix(path, cluster.PeersPath), relay)
			writeOpAnswer(ctx, idx, err)
		default:
			ctx.SetStatusCode(404)
		}
	}
}

func writeOpAnswer(ctx *fasthttp.RequestCtx, idx uint64, err error) {
	var oe *cluster.OpError
	status, code := 200, ""
	switch {
	case err == nil:
		ctx.Response.Header.Set("X-Nexus-Index", strconv.FormatUint(idx, 10))
		ctx.SetBodyString(`{"removed":true}`)
		return
	case errors.As(err, &oe):
		status, code = oe.Status, oe.Code
	case errors.Is(err, command.ErrNoLeader):
		status, code = 503, "no_leader"
	default:
		status, code = 504, "outcome_unknown"
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": err.Error()}})
	ctx.SetStatusCode(status)
	ctx.SetBody(b)
}

// apCluster is a set of apNodes bootstrapped together.
type apCluster struct {
	t     *testing.T
	pp    *portPicker // every port of the cluster, including nodes added later
	nodes []*apNode
	ports []ports
	join  []string
}

func startAPCluster(t *testing.T, n int, policy cluster.AutopilotConfig) *apCluster {
	t.Helper()
	c := &apCluster{t: t, pp: newPortPicker(t)}
	for i := 0; i < n; i++ {
		p := c.pp.ports()
		c.ports = append(c.ports, p)
		c.join = append(c.join, fmt.Sprintf("127.0.0.1:%d", p.gossip))
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
	waitFor(t, "a leader with its barrier applied", 20*time.Second, func() bool { return c.leader() >= 0 })
	waitFor(t, fmt.Sprintf("%d voters", n), 10*time.Second, func() bool { return c.voters(c.leader()) == n })
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
	waitFor(c.t, "a leader", 20*time.Second, func() bool { li = c.leader(); return li >= 0 })
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

// write commits key through node i, retrying while there is no leader
// (surely not applied, so safe): a loaded machine may see an election.
func (c *apCluster) write(i int, key string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := c.nodes[i].node.Apply(ctx, configSet(c.t, key, `"v"`))
		cancel()
		if errors.Is(err, command.ErrNoLeader) && time.Now().Before(deadline) {
			continue
		}
		if err != nil || res.Err != nil {
			c.t.Fatalf("write %s on %s: %v %+v", key, c.nodes[i].name, err, res)
		}
		return
	}
}

// memberStatus is node i's gossip view of member name.
func (c *apCluster) memberStatus(i int, name string) string {
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
	p := c.pp.ports()
	c.ports = append(c.ports, p)
	c.nodes = append(c.nodes, startAPNode(t, "s4", p, 0, c.join[:1], policy))
	var added time.Time
	waitFor(t, "s4 in the raft configuration", 15*time.Second, func() bool {
		if s, ok := c.suffrage(c.mustLeader())["s4"]; ok {
			if s != "nonvoter" {
				t.Fatalf("s4 joined as %s, want nonvoter", s)
			}
			added = time.Now()
			return true
		}
		return false
	})
	waitFor(t, "s4 promoted to voter", 20*time.Second, func() bool { return c.suffrage(c.mustLeader())["s4"] == "voter" })
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
			sum += metricValue(t, n.reg, "nexus_autopilot_promotions_total", "")
		}
		return sum
	}
	waitFor(t, "the promotion counted", 5*time.Second, func() bool { return promoted() >= 1 })
	if got := promoted(); got != 1 {
		t.Errorf("promotions summed over the servers: %v, want 1", got)
	}
	// The new voter takes writes (forwarded) and applies them.
	c.write(3, "after-promotion")
	if configValue(c.nodes[3].store, "after-promotion") == "" {
		t.Error("s4 did not apply its own write")
	}
	if v := metricValue(t, c.nodes[3].reg, "nexus_raft_voters", ""); v != 4 {
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
	waitFor(t, "both victims failed in gossip", 15*time.Second, func() bool {
		a, b := c.memberStatus(li, names[0]) == "failed", c.memberStatus(li, names[1]) == "failed"
		if (a || b) && firstFailed.IsZero() {
			firstFailed = time.Now()
		}
		return a && b
	})
	failedAt := time.Now()
	if half := firstFailed.Add(grace / 2); time.Now().Before(half) {
		time.Sleep(time.Until(half))
		if got := len(c.suffrage(li)); got != 5 {
			t.Fatalf("%d raft servers %v half-way through the grace period, want 5", got, c.suffrage(li))
		}
	}
	waitFor(t, "victims removed", 20*time.Second, func() bool {
		s := c.suffrage(c.mustLeader())
		_, a := s[names[0]]
		_, b := s[names[1]]
		return !a && !b
	})
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
				removed += metricValue(t, n.reg, "nexus_autopilot_removals_total", "failed")
			}
		}
		return removed
	}
	deadline := time.Now().Add(5 * time.Second)
	for sumRemovals() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
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
	waitFor(t, thirdName+" failed in gossip", 15*time.Second, func() bool { return c.memberStatus(c.mustLeader(), thirdName) == "failed" })
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
