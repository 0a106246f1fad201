package cluster_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/internal/metrictest"
	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/internal/tlsutil/tlstest"
)

// secureOpts are the security settings of one test node.
type secureOpts struct {
	keys [][]byte // gossip keys (the first encrypts)
	// tlsArgs are the TLS settings (files): the admin API serves HTTPS, and
	// peers (forwarding, Raft) use them as the agent derives.
	tlsArgs []string
	// raftTLS, when set, replaces the Raft TLS the settings give;
	// plainRaft keeps Raft on plain TCP whatever they give.
	raftTLS   *cluster.RaftTLS
	plainRaft bool
	dir       string                   // data dir (default: a new temporary one)
	reg       *prometheus.Registry     // the node's metrics (default: not kept)
	logs      io.Writer                // also receives the node's warnings
	autopilot *cluster.AutopilotConfig // the autopilot policy
}

// startSecureNode is startNode with security settings; it is stopped at
// the end of the test.
func startSecureNode(t *testing.T, name string, p agenttest.NodePorts, expect int, join []string, o secureOpts) *testNode {
	t.Helper()
	no := nodeOpts{dir: o.dir, args: o.tlsArgs, reg: o.reg, logs: o.logs, autopilot: o.autopilot, level: slog.LevelError}
	if o.logs != nil {
		no.level = slog.LevelWarn
	}
	no.tune = func(c *cluster.Config) {
		if o.keys != nil {
			c.GossipKeys = o.keys
		}
		if o.raftTLS != nil || o.plainRaft {
			c.RaftTLS = o.raftTLS
		}
	}
	return startNodeOpts(t, name, p, expect, join, no)
}

func TestGossipEncryption(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several nodes")
	}
	pp := agenttest.NewPorts(t)
	k1 := []byte("0123456789abcdef")
	k2 := []byte("fedcba9876543210")
	pa := pp.Node()
	join := []string{fmt.Sprintf("127.0.0.1:%d", pa.Gossip)}
	a := startSecureNode(t, "a", pa, 1, nil, secureOpts{keys: [][]byte{k1}})
	cases := []struct {
		name   string
		keys   [][]byte
		member bool
	}{
		{"wrong key", [][]byte{k2}, false},
		{"no key", nil, false},
		{"right key", [][]byte{k1}, true},
		{"right primary with an extra key (rotation)", [][]byte{k1, k2}, true},
		{"right key only as a secondary", [][]byte{k2, k1}, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "n" + strconv.Itoa(i)
			startSecureNode(t, name, pp.Node(), 0, join, secureOpts{keys: tc.keys})
			if tc.member {
				retry.Run(t, retry.Cond(name+" alive on a", func() bool { return a.node.MemberStatuses()[name] == "alive" }), retry.Timeout(10*time.Second))
				return
			}
			time.Sleep(2 * time.Second) // several join retries and gossip rounds
			if st, ok := a.node.MemberStatuses()[name]; ok {
				t.Fatalf("%s joined a without the key: status %q", name, st)
			}
		})
	}
}

// With TLS on the admin API, a follower forwards writes to the leader over
// HTTPS with the cluster CA and its own certificate (mTLS); a node whose
// certificate comes from another CA cannot forward.
func TestForwardingOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	pp := agenttest.NewPorts(t)
	ca := tlstest.NewCA(t, "cluster-ca")
	foreign := tlstest.NewCA(t, "foreign-ca")
	dir := t.TempDir()
	secure := func(name string, signer *tlstest.CA) secureOpts {
		f := signer.WriteFiles(t, dir, name, name, "127.0.0.1")
		caFile := ca.WriteFiles(t, dir, name+"-trust", "unused").CA // every node trusts the cluster CA
		// Raft stays plain: this test is about the admin API.
		return secureOpts{tlsArgs: []string{"--tls-cert-file", f.Cert, "--tls-key-file", f.Key, "--tls-client-ca-file", caFile},
			plainRaft: true}
	}
	pa, pb := pp.Node(), pp.Node()
	join := []string{fmt.Sprintf("127.0.0.1:%d", pa.Gossip), fmt.Sprintf("127.0.0.1:%d", pb.Gossip)}
	nodes := []*testNode{
		startSecureNode(t, "a", pa, 2, join, secure("a", ca)),
		startSecureNode(t, "b", pb, 2, join, secure("b", ca)),
	}
	var follower *testNode
	retry.Run(t, retry.Cond("a leader and a ready follower", func() bool {
		for i, n := range nodes {
			if n.node.Raft().State == "leader" && n.node.Ready() && nodes[1-i].node.Ready() {
				follower = nodes[1-i]
				return true
			}
		}
		return false
	}), retry.Timeout(20*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := follower.node.Apply(ctx, configSet(t, "tls/k", `"v"`))
	if err != nil || res.Err != nil {
		t.Fatalf("forwarded write over TLS: %v %+v", err, res)
	}
	if got := configValue(follower.store, "tls/k"); got != `"v"` {
		t.Fatalf("follower reads %q", got)
	}
	// It went over the forwarding stream (TLS, client certificate), not
	// over the per-request HTTPS path.
	if n := metricValue(t, follower.metrics, "nexus_forwarded_writes_total", "stream"); n != 1 {
		t.Fatalf("writes forwarded over the stream: %v, want 1", n)
	}
	// The follower appended the write to its log: measured.
	if n := metrictest.Value(t, follower.metrics, "nexus_raft_log_append_entries", nil); n <= 0 {
		t.Fatalf("log appends measured: %v", n)
	}
	if err := follower.node.ConsistentRead(ctx); err != nil {
		t.Fatalf("read index over TLS: %v", err)
	}

	// A third node with a foreign certificate joins gossip and Raft as a
	// nonvoter candidate, but the leader's admin API refuses its writes.
	pc := pp.Node()
	c := startSecureNode(t, "c", pc, 0, join, secure("c", foreign))
	retry.Run(t, retry.Cond("c knows the leader", func() bool { _, ok := c.node.Leader(); return ok }), retry.Timeout(20*time.Second))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if res, err := c.node.Apply(ctx2, configSet(t, "tls/intruder", `"x"`)); err == nil && res.Err == nil {
		t.Fatal("a node with a foreign certificate forwarded a write")
	}
	if got := configValue(follower.store, "tls/intruder"); got != "" {
		t.Fatalf("the intruder's write applied: %q", got)
	}
}

func TestKeyringRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several nodes")
	}
	pp := agenttest.NewPorts(t)
	k1 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	k2 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	raw := func(s string) []byte { b, _ := base64.StdEncoding.DecodeString(s); return b }
	pa, pb := pp.Node(), pp.Node()
	join := []string{fmt.Sprintf("127.0.0.1:%d", pa.Gossip), fmt.Sprintf("127.0.0.1:%d", pb.Gossip)}
	a := startSecureNode(t, "a", pa, 2, join, secureOpts{keys: [][]byte{raw(k1)}})
	b := startSecureNode(t, "b", pb, 2, join, secureOpts{keys: [][]byte{raw(k1)}})
	retry.Run(t, retry.Cond("both ready", func() bool { return a.node.Ready() && b.node.Ready() }), retry.Timeout(20*time.Second))

	steps := []struct {
		op, key string
		primary string
		keys    int
	}{
		{cluster.KeyringInstall, k2, k1, 2},
		{cluster.KeyringUse, k2, k2, 2},
		{cluster.KeyringRemove, k1, k2, 1},
	}
	for _, st := range steps {
		res, err := a.node.KeyringApply(context.Background(), st.op, st.key)
		if err != nil || res["a"] != "ok" || res["b"] != "ok" {
			t.Fatalf("%s: %v %v", st.op, res, err)
		}
		for _, n := range []*testNode{a, b} {
			ks, err := n.node.KeyringList()
			if err != nil || ks.Primary != st.primary || len(ks.Keys) != st.keys {
				t.Fatalf("after %s on %s: %+v %v", st.op, n.name, ks, err)
			}
		}
	}
	// Removing the primary key is refused.
	if _, err := a.node.KeyringApply(context.Background(), cluster.KeyringRemove, k2); err == nil {
		t.Fatal("removed the primary key")
	}
	if _, err := a.node.KeyringApply(context.Background(), "drop", k2); err == nil {
		t.Fatal("unknown op accepted")
	}
	// The cluster still gossips, a node with the new key joins, one with
	// the old key cannot.
	startSecureNode(t, "c", pp.Node(), 0, join, secureOpts{keys: [][]byte{raw(k2)}})
	retry.Run(t, retry.Cond("c alive on a", func() bool { return a.node.MemberStatuses()["c"] == "alive" }), retry.Timeout(10*time.Second))
	startSecureNode(t, "d", pp.Node(), 0, join, secureOpts{keys: [][]byte{raw(k1)}})
	time.Sleep(2 * time.Second)
	if st, ok := a.node.MemberStatuses()["d"]; ok {
		t.Fatalf("d joined with the removed key: %q", st)
	}
	if st := a.node.MemberStatuses()["b"]; st != "alive" {
		t.Fatalf("b is %q after the rotation", st)
	}
}
