package cluster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/internal/tlsutil"
	"github.com/nexus/nexus/internal/tlsutil/tlstest"
)

// raftTLSLogs collects a node's log lines (tests read them while the node writes).
type raftTLSLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *raftTLSLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the lines that contain every one of subs.
func (l *raftTLSLogs) lines(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// raftTLSFailures reads nexus_raft_tls_handshake_failures_total of reg for
// direction, summed over reasons when reason is "".
func raftTLSFailures(t *testing.T, reg *prometheus.Registry, direction, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "nexus_raft_tls_handshake_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["direction"] == direction && (reason == "" || labels["reason"] == reason) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// raftTLSNode is the security of one node: the admin API certificate and
// the cluster CA as settings, from which the agent derives the same pair
// for Raft and the cluster CA for peers both ways. raftSigner, when not
// nil, signs a separate Raft certificate (to make only Raft's wrong).
func raftTLSNode(t *testing.T, dir, name string, ca, raftSigner *tlstest.CA) secureOpts {
	t.Helper()
	f := ca.WriteFiles(t, dir, name, name, "127.0.0.1")
	o := secureOpts{
		tlsArgs: []string{"--tls-cert-file", f.Cert, "--tls-key-file", f.Key, "--tls-client-ca-file", f.CA},
		reg:     prometheus.NewRegistry(), logs: &raftTLSLogs{},
	}
	raftPair, err := tlsutil.NewReloader(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	if raftSigner != nil {
		rf := raftSigner.WriteFiles(t, dir, name+"-raft", name, "127.0.0.1")
		if raftPair, err = tlsutil.NewReloader(rf.Cert, rf.Key); err != nil {
			t.Fatal(err)
		}
	}
	raftSrv, err := tlsutil.ServerConfig(raftPair, f.CA) // trusts the cluster CA
	if err != nil {
		t.Fatal(err)
	}
	raftCli, err := tlsutil.ClientConfig(f.CA, raftPair)
	if err != nil {
		t.Fatal(err)
	}
	o.raftTLS = &cluster.RaftTLS{Server: raftSrv, Client: raftCli, HandshakeTimeout: 2 * time.Second}
	return o
}

func readyLeader(nodes []*testNode) int {
	for i, n := range nodes {
		if n != nil && n.node.Raft().State == "leader" && n.node.Ready() {
			return i
		}
	}
	return -1
}

// waitReadyLeader waits for a ready leader and returns its index: under
// load leadership can move between two looks, so never index with a
// single readyLeader call.
func waitReadyLeader(t *testing.T, nodes []*testNode) int {
	t.Helper()
	li := -1
	retry.Run(t, retry.Cond("a ready leader", func() bool { li = readyLeader(nodes); return li >= 0 }), retry.Timeout(20*time.Second))
	return li
}

// writeRetry commits key on n, retrying while there is no leader (surely
// not applied) or the outcome is unknown (a loaded machine may see an
// election mid-write; setting the same value again is harmless).
func writeRetry(t *testing.T, n *testNode, key, value string) {
	t.Helper()
	retry.Run(t, func(r *retry.R) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := n.node.Apply(ctx, configSet(t, key, value))
		switch {
		case errors.Is(err, command.ErrNoLeader), errors.Is(err, command.ErrOutcomeUnknown):
			r.Fatalf("write %s on %s: %v", key, n.name, err)
		case err != nil || res.Err != nil:
			t.Fatalf("write %s on %s: %v %+v", key, n.name, err, res)
		}
	}, retry.Timeout(30*time.Second))
}

// Three nodes with Raft on mutual TLS bootstrap, replicate, fail over and
// a restarted node catches up, all over TLS.
func TestRaftOverMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	pp := agenttest.NewPorts(t)
	ca := tlstest.NewCA(t, "cluster-ca")
	certs := t.TempDir()
	names := []string{"a", "b", "c"}
	ps, join := pp.Cluster(3)
	nodes := make([]*testNode, 3)
	opts := make([]secureOpts, 3)
	for i, name := range names {
		opts[i] = raftTLSNode(t, certs, name, ca, nil)
		opts[i].dir = t.TempDir()
		nodes[i] = startSecureNode(t, name, ps[i], 3, join, opts[i])
	}
	retry.Run(t, retry.Cond("a leader with its barrier applied", func() bool { return readyLeader(nodes) >= 0 }), retry.Timeout(20*time.Second))
	retry.Run(t, retry.Cond("three voters", func() bool {
		li := readyLeader(nodes)
		return li >= 0 && len(nodes[li].node.Raft().Servers) == 3
	}), retry.Timeout(10*time.Second))
	retry.Run(t, retry.Cond("cluster identity on every node", func() bool {
		for _, n := range nodes {
			if n.dd.ClusterID() == "" {
				return false
			}
		}
		return true
	}), retry.Timeout(10*time.Second))
	for _, p := range ps {
		expectRaftTLS(t, "127.0.0.1:"+strconv.Itoa(p.Raft), ca)
	}
	li := waitReadyLeader(t, nodes)
	follower := nodes[(li+1)%3]
	writeRetry(t, follower, "mtls/k1", `"v1"`)
	retry.Run(t, retry.Cond("k1 on every node", func() bool {
		for _, n := range nodes {
			if configValue(n.store, "mtls/k1") != `"v1"` {
				return false
			}
		}
		return true
	}), retry.Timeout(10*time.Second))

	// Fail over: stop the leader, a new one is elected over TLS.
	nodes[li].stop()
	nodes[li] = nil
	retry.Run(t, retry.Cond("a new leader", func() bool { l := readyLeader(nodes); return l >= 0 && l != li }), retry.Timeout(20*time.Second))
	var survivors []*testNode
	for _, n := range nodes {
		if n != nil {
			survivors = append(survivors, n)
		}
	}
	writeRetry(t, survivors[0], "mtls/k2", `"v2"`)
	retry.Run(t, retry.Cond("k2 on both survivors", func() bool {
		return configValue(survivors[0].store, "mtls/k2") == `"v2"` && configValue(survivors[1].store, "mtls/k2") == `"v2"`
	}), retry.Timeout(10*time.Second))

	// The stopped node restarts from its data dir and catches up.
	opts[li].reg = prometheus.NewRegistry() // a new process, new metrics
	nodes[li] = startSecureNode(t, names[li], ps[li], 3, join, opts[li])
	retry.Run(t, retry.Cond("the restarted node catches up", func() bool {
		return configValue(nodes[li].store, "mtls/k2") == `"v2"`
	}), retry.Timeout(20*time.Second))
	for i, n := range nodes {
		if got := raftTLSFailures(t, opts[i].reg, "inbound", "certificate") + raftTLSFailures(t, opts[i].reg, "outbound", "certificate"); got != 0 {
			t.Errorf("%s counted %v certificate failures among cluster members", n.name, got)
		}
	}
}

// A node whose Raft certificate comes from another CA is added to the
// configuration by the leader (gossip and its admin API are fine) but never
// receives an entry and is never promoted; the leader counts and logs the
// refusals, once per peer and 30 s. A node with a good certificate joining
// the same way is promoted and replicates (the control).
func TestRaftRefusesForeignCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five nodes")
	}
	pp := agenttest.NewPorts(t)
	ca := tlstest.NewCA(t, "cluster-ca")
	foreign := tlstest.NewCA(t, "foreign-ca")
	certs := t.TempDir()
	policy := testPolicy(500*time.Millisecond, time.Hour, 0)
	ps, join := pp.Cluster(3)
	var nodes []*testNode
	var opts []secureOpts
	for i, name := range []string{"a", "b", "c"} {
		o := raftTLSNode(t, certs, name, ca, nil)
		o.autopilot = &policy
		opts = append(opts, o)
		nodes = append(nodes, startSecureNode(t, name, ps[i], 3, join, o))
	}
	retry.Run(t, retry.Cond("a leader with its barrier applied", func() bool { return readyLeader(nodes) >= 0 }), retry.Timeout(20*time.Second))
	retry.Run(t, retry.Cond("three voters", func() bool {
		li := readyLeader(nodes)
		return li >= 0 && len(nodes[li].node.Raft().Servers) == 3
	}), retry.Timeout(10*time.Second))
	writeRetry(t, nodes[waitReadyLeader(t, nodes)], "mtls/before", `"1"`)

	pi := pp.Node()
	intruderAddr := "127.0.0.1:" + strconv.Itoa(pi.Raft)
	intruderOpts := raftTLSNode(t, certs, "intruder", ca, foreign)
	intruder := startSecureNode(t, "intruder", pi, 0, join, intruderOpts)
	good := startSecureNode(t, "good", pp.Node(), 0, join, raftTLSNode(t, certs, "good", ca, nil))

	suffrage := func(id string) string {
		li := readyLeader(nodes)
		if li < 0 {
			return ""
		}
		for _, s := range nodes[li].node.Raft().Servers {
			if s.ID == id {
				return s.Suffrage
			}
		}
		return ""
	}
	retry.Run(t, retry.Cond("the good node promoted", func() bool { return suffrage("good") == "voter" }), retry.Timeout(60*time.Second))
	writeRetry(t, nodes[waitReadyLeader(t, nodes)], "mtls/after", `"2"`)
	retry.Run(t, retry.Cond("the good node replicates", func() bool {
		return configValue(good.store, "mtls/before") == `"1"` && configValue(good.store, "mtls/after") == `"2"`
	}), retry.Timeout(10*time.Second))
	// The intruder had as long as the good node, and more: the members
	// refused its handshakes again and again.
	retry.Run(t, retry.Cond("refused handshakes with the intruder", func() bool {
		refused := 0.0
		for i := range nodes {
			refused += raftTLSFailures(t, opts[i].reg, "outbound", "certificate")
		}
		return refused >= 2
	}), retry.Timeout(20*time.Second))

	if s := suffrage("intruder"); s == "voter" {
		t.Fatal("the intruder became a voter")
	}
	if r := intruder.node.Raft(); r.CommitIndex != 0 || r.AppliedIndex != 0 || r.Leader != "" {
		t.Fatalf("the intruder received Raft traffic: %+v", r)
	}
	if id := intruder.dd.ClusterID(); id != "" || configValue(intruder.store, "mtls/before") != "" {
		t.Fatalf("the intruder has the cluster's data: cluster id %q", id)
	}

	// The members refused it: counted on every refusal, logged once.
	var refused float64
	var logged []string
	for i := range nodes {
		refused += raftTLSFailures(t, opts[i].reg, "outbound", "certificate")
		logged = append(logged, opts[i].logs.(*raftTLSLogs).lines("raft TLS handshake failed", "remote="+intruderAddr)...)
	}
	if refused < 2 {
		t.Fatalf("refused handshakes with the intruder counted: %v", refused)
	}
	if len(logged) == 0 || len(logged) > 3 || float64(len(logged)) >= refused {
		t.Fatalf("%v refusals, %d log lines (want at least one, and fewer than refusals):\n%s", refused, len(logged), strings.Join(logged, "\n"))
	}
	if !strings.Contains(logged[0], "level=WARN") || !strings.Contains(logged[0], "unknown authority") {
		t.Fatalf("log line: %s", logged[0])
	}
	// The intruder saw the members abort its handshakes.
	if got := raftTLSFailures(t, intruderOpts.reg, "inbound", ""); got == 0 {
		t.Fatal("the intruder counted no refused inbound handshake")
	}
}

// A Raft port on TLS speaks nothing else: what a plaintext Raft transport
// sends is dropped without an answer, and its RequestVote changes nothing.
func TestPlaintextRaftIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	pp := agenttest.NewPorts(t)
	ca := tlstest.NewCA(t, "cluster-ca")
	certs := t.TempDir()
	p := pp.Node()
	o := raftTLSNode(t, certs, "a", ca, nil)
	a := startSecureNode(t, "a", p, 1, nil, o)
	retry.Run(t, retry.Cond("a leads", func() bool { return readyLeader([]*testNode{a}) == 0 }), retry.Timeout(20*time.Second))
	term := a.node.Raft().Term
	raftAddr := "127.0.0.1:" + strconv.Itoa(p.Raft)

	// A plaintext Raft transport, as every node had before.
	plain, err := raft.NewTCPTransport("127.0.0.1:"+strconv.Itoa(pp.Port()), nil, 1, 2*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	vote := &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(plain.LocalAddr())},
		Term:      term + 100, LastLogIndex: 1 << 40, LastLogTerm: term + 99,
	}

	// The bytes it sends for a RequestVote, captured on a tap.
	tap, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(pp.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	captured := make(chan []byte, 1)
	go func() {
		c, err := tap.Accept()
		if err != nil {
			captured <- nil
			return
		}
		defer c.Close()
		var buf []byte
		b := make([]byte, 4096)
		for {
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := c.Read(b)
			buf = append(buf, b[:n]...)
			if err != nil {
				break
			}
		}
		captured <- buf
	}()
	_ = plain.RequestVote("tap", raft.ServerAddress(tap.Addr().String()), vote, &raft.RequestVoteResponse{})
	rpc := <-captured
	if len(rpc) < 10 {
		t.Fatalf("captured %d bytes of a RequestVote", len(rpc))
	}

	// Sent raw to the TLS Raft port: closed, no answer.
	c, err := net.DialTimeout("tcp", raftAddr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(rpc); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := c.Read(make([]byte, 256))
	var ne net.Error
	switch {
	case n > 0:
		t.Fatalf("the TLS Raft port answered %d bytes to a plaintext RequestVote", n)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("the TLS Raft port kept a plaintext connection open")
	}

	// Through the plaintext transport itself: an error, and no new term.
	var resp raft.RequestVoteResponse
	if err := plain.RequestVote("a", raft.ServerAddress(raftAddr), vote, &resp); err == nil {
		t.Fatalf("a plaintext RequestVote got an answer: %+v", resp)
	}
	if r := a.node.Raft(); r.Term != term || r.State != "leader" {
		t.Fatalf("after a refused RequestVote: term %d (was %d), state %s", r.Term, term, r.State)
	}
	retry.Run(t, retry.Cond("the refusals counted", func() bool {
		return raftTLSFailures(t, o.reg, "inbound", "not_tls") >= 2
	}), retry.Timeout(5*time.Second))
	// The counter moves before the line is written.
	retry.Run(t, retry.Cond("the refusal logged", func() bool {
		return len(o.logs.(*raftTLSLogs).lines("raft TLS handshake failed", "reason=not_tls")) > 0
	}), retry.Timeout(5*time.Second))
	if len(o.logs.(*raftTLSLogs).lines("raft TLS handshake failed", "reason=not_tls")) != 1 {
		t.Fatalf("want one log line for refusals from one peer:\n%s", o.logs.(*raftTLSLogs).b.String())
	}

	// The port does speak TLS to a member.
	expectRaftTLS(t, raftAddr, ca)
}

// expectRaftTLS checks that the Raft port at addr completes a TLS 1.3
// handshake with a member's certificate, presenting one from ca.
func expectRaftTLS(t *testing.T, addr string, ca *tlstest.CA) {
	t.Helper()
	pair := ca.KeyPair(t, "member", "127.0.0.1")
	d := &net.Dialer{Timeout: 2 * time.Second}
	tc, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatalf("TLS handshake with the Raft port %s: %v", addr, err)
	}
	defer tc.Close()
	if v := tc.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("Raft port %s: TLS version %x", addr, v)
	}
}
