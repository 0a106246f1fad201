package cluster_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/internal/tlsutil"
	"github.com/nexus/nexus/internal/tlsutil/tlstest"
	"github.com/nexus/nexus/registry"
	"github.com/nexus/nexus/storage"
)

// secureOpts are the security settings of one test node.
type secureOpts struct {
	keys      [][]byte    // gossip keys
	serverTLS *tls.Config // the node's forwarding endpoint serves TLS
	peer      cluster.PeerHTTP
	raftTLS   *cluster.RaftTLS         // Raft over mutual TLS
	dir       string                   // data dir (default: a new temporary one)
	reg       *prometheus.Registry     // the node's metrics (default: not kept)
	logs      io.Writer                // also receives the node's warnings
	autopilot *cluster.AutopilotConfig // run an autopilot on the node
}

// startSecureNode is startNode with security settings.
func startSecureNode(t *testing.T, name string, p ports, expect int, join []string, o secureOpts) *testNode {
	t.Helper()
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
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
	var logOut io.Writer = testWriter{t}
	logLevel := slog.LevelError
	if o.logs != nil {
		logOut, logLevel = io.MultiWriter(testWriter{t}, o.logs), slog.LevelWarn
	}
	var reg prometheus.Registerer
	if o.reg != nil {
		reg = o.reg
	}
	node, err := cluster.New(cluster.Config{
		Node: name, BindAddr: "127.0.0.1", RaftPort: p.raft, GossipPort: p.gossip, HTTPAddr: httpAddr,
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
		Logger:    slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: logLevel})).With("node", name),
		LogOutput: testWriter{t}, LogLevel: slog.LevelError,
		Peer:       o.peer,
		GossipKeys: o.keys,
		RaftTLS:    o.raftTLS,
		Registerer: reg,
	})
	if err != nil {
		dd.Close()
		t.Fatal(err)
	}
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
		case cluster.RaftStatsPath:
			b, _ := json.Marshal(node.LocalRaftStats())
			ctx.SetBody(b)
		case cluster.KeyringPath:
			if err := node.KeyringForwarded(mac, ctx.PostBody()); err != nil {
				ctx.SetStatusCode(400)
				ctx.SetBodyString(err.Error())
			}
		}
	}, Logger: log.New(io.Discard, "", 0)}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if o.serverTLS != nil {
		ln = tls.NewListener(ln, o.serverTLS)
	}
	go srv.Serve(ln)
	n := &testNode{name: name, node: node, machine: machine, store: store, http: srv, dd: dd}
	t.Cleanup(n.stop)
	var duties []cluster.Duty
	if o.autopilot != nil {
		pilot, err := cluster.NewAutopilot(node, *o.autopilot)
		if err != nil {
			t.Fatal(err)
		}
		duties = append(duties, pilot)
	}
	node.Start(duties...)
	return n
}

func TestGossipEncryption(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several nodes")
	}
	pp := newPortPicker(t)
	k1 := []byte("0123456789abcdef")
	k2 := []byte("fedcba9876543210")
	pa := pp.ports()
	join := []string{fmt.Sprintf("127.0.0.1:%d", pa.gossip)}
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
			startSecureNode(t, name, pp.ports(), 0, join, secureOpts{keys: tc.keys})
			if tc.member {
				waitFor(t, name+" alive on a", 10*time.Second, func() bool { return a.node.MemberStatuses()[name] == "alive" })
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
	pp := newPortPicker(t)
	ca := tlstest.NewCA(t, "cluster-ca")
	foreign := tlstest.NewCA(t, "foreign-ca")
	dir := t.TempDir()
	secure := func(name string, signer *tlstest.CA) secureOpts {
		f := signer.WriteFiles(t, dir, name, name, "127.0.0.1")
		r, err := tlsutil.NewReloader(f.Cert, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		caFile := ca.WriteFiles(t, dir, name+"-trust", "unused").CA // every node trusts the cluster CA
		srv, err := tlsutil.ServerConfig(r, caFile)
		if err != nil {
			t.Fatal(err)
		}
		cli, err := tlsutil.ClientConfig(caFile, r)
		if err != nil {
			t.Fatal(err)
		}
		return secureOpts{serverTLS: srv, peer: cluster.PeerHTTP{Scheme: "https", TLS: cli}}
	}
	pa, pb := pp.ports(), pp.ports()
	join := []string{fmt.Sprintf("127.0.0.1:%d", pa.gossip), fmt.Sprintf("127.0.0.1:%d", pb.gossip)}
	nodes := []*testNode{
		startSecureNode(t, "a", pa, 2, join, secure("a", ca)),
		startSecureNode(t, "b", pb, 2, join, secure("b", ca)),
	}
	var follower *testNode
	waitFor(t, "a leader and a ready follower", 20*time.Second, func() bool {
		for i, n := range nodes {
			if n.node.Raft().State == "leader" && n.node.Ready() && nodes[1-i].node.Ready() {
				follower = nodes[1-i]
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := follower.node.Apply(ctx, configSet(t, "tls/k", `"v"`))
	if err != nil || res.Err != nil {
		t.Fatalf("forwarded write over TLS: %v %+v", err, res)
	}
	if got := configValue(follower.store, "tls/k"); got != `"v"` {
		t.Fatalf("follower reads %q", got)
	}
	if err := follower.node.ConsistentRead(ctx); err != nil {
		t.Fatalf("read index over TLS: %v", err)
	}

	// A third node with a foreign certificate joins gossip and Raft as a
	// nonvoter candidate, but the leader's admin API refuses its writes.
	pc := pp.ports()
	c := startSecureNode(t, "c", pc, 0, join, secure("c", foreign))
	waitFor(t, "c knows the leader", 20*time.Second, func() bool { _, ok := c.node.Leader(); return ok })
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
	pp := newPortPicker(t)
	k1 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	k2 := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	raw := func(s string) []byte { b, _ := base64.StdEncoding.DecodeString(s); return b }
	pa, pb := pp.ports(), pp.ports()
	join := []string{fmt.Sprintf("127.0.0.1:%d", pa.gossip), fmt.Sprintf("127.0.0.1:%d", pb.gossip)}
	a := startSecureNode(t, "a", pa, 2, join, secureOpts{keys: [][]byte{raw(k1)}})
	b := startSecureNode(t, "b", pb, 2, join, secureOpts{keys: [][]byte{raw(k1)}})
	waitFor(t, "both ready", 20*time.Second, func() bool { return a.node.Ready() && b.node.Ready() })

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
	startSecureNode(t, "c", pp.ports(), 0, join, secureOpts{keys: [][]byte{raw(k2)}})
	waitFor(t, "c alive on a", 10*time.Second, func() bool { return a.node.MemberStatuses()["c"] == "alive" })
	startSecureNode(t, "d", pp.ports(), 0, join, secureOpts{keys: [][]byte{raw(k1)}})
	time.Sleep(2 * time.Second)
	if st, ok := a.node.MemberStatuses()["d"]; ok {
		t.Fatalf("d joined with the removed key: %q", st)
	}
	if st := a.node.MemberStatuses()["b"]; st != "alive" {
		t.Fatalf("b is %q after the rotation", st)
	}
}
