// Package agenttest starts whole Nexus nodes in the test's process, through
// package agent (the same wiring as the binary), on loopback ports that are
// free: for tests of the cluster, the admin API and the CLI that need real
// nodes but not separate processes (those use internal/proccluster).
package agenttest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/agent"
	"github.com/nexus/nexus/cmd/nexus/agentconfig"
)

// Ports hands out ports that are free for TCP and UDP now, below the
// kernel's ephemeral range (32768+) and the fixed ports of the e2e tests
// (18000+): a port the kernel hands out for :0 can be handed to another
// test's outgoing connection before this test binds it again. One Ports
// per test never hands out a port twice.
type Ports struct {
	t    testing.TB
	mu   sync.Mutex
	used map[int]bool
}

// NewPorts returns the port picker of one test.
func NewPorts(t testing.TB) *Ports { return &Ports{t: t, used: map[int]bool{}} }

// Port returns a free port of 127.0.0.1.
func (pp *Ports) Port() int {
	pp.t.Helper()
	pp.mu.Lock()
	defer pp.mu.Unlock()
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

// NodePorts are the ports of one node.
type NodePorts struct{ Raft, Gossip, HTTP, Gateway int }

// GossipAddr is the address other nodes join.
func (p NodePorts) GossipAddr() string { return "127.0.0.1:" + strconv.Itoa(p.Gossip) }

// HTTPAddr is the admin API address.
func (p NodePorts) HTTPAddr() string { return "127.0.0.1:" + strconv.Itoa(p.HTTP) }

// RaftAddr is the Raft transport address.
func (p NodePorts) RaftAddr() string { return "127.0.0.1:" + strconv.Itoa(p.Raft) }

// Node returns the ports of one node.
func (pp *Ports) Node() NodePorts {
	return NodePorts{Raft: pp.Port(), Gossip: pp.Port(), HTTP: pp.Port(), Gateway: pp.Port()}
}

// Cluster returns the ports of n nodes and the gossip addresses they join.
func (pp *Ports) Cluster(n int) ([]NodePorts, []string) {
	ps := make([]NodePorts, n)
	join := make([]string, n)
	for i := range ps {
		ps[i] = pp.Node()
		join[i] = ps[i].GossipAddr()
	}
	return ps, join
}

// Node describes a test node.
type Node struct {
	Name   string
	Dir    string // data dir (default: a new temporary one)
	Ports  NodePorts
	Expect int      // bootstrap_expect
	Join   []string // gossip addresses
	// Args are more settings, as flags ("--encrypt", key).
	Args []string
	// Options go to agent.Start; a nil Logger logs warnings to the test,
	// a nil Registry is a new one (the agent's Metrics()).
	Options agent.Options
}

// Config returns the settings of n: loopback, its ports and data dir, the
// Raft timings of the binary's defaults, a 5 s apply timeout, warnings
// only, DNS off. Settings come through agentconfig.Load, so defaults and
// validation are the binary's.
func Config(t testing.TB, n Node) *agentconfig.Config {
	t.Helper()
	if n.Dir == "" {
		n.Dir = t.TempDir()
	}
	args := []string{
		"--node", n.Name, "--data-dir", n.Dir, "--bind", "127.0.0.1",
		"--raft-port", strconv.Itoa(n.Ports.Raft), "--gossip-port", strconv.Itoa(n.Ports.Gossip),
		"--http-addr", n.Ports.HTTPAddr(), "--gateway-addr", "127.0.0.1:" + strconv.Itoa(n.Ports.Gateway),
		"--bootstrap-expect", strconv.Itoa(n.Expect), "--apply-timeout", "5s", "--log-level", "warn",
		// Nodes share 127.0.0.1: DNS (default port 8600) only where a
		// test asks for it in Args.
		"--dns-addr", "off",
	}
	for _, j := range n.Join {
		args = append(args, "--join", j)
	}
	args = append(args, n.Args...)
	cfg, err := agentconfig.Load(args, func(string) string { return "" }, os.ReadFile,
		func() (string, error) { return n.Name, nil }, func() (string, error) { return t.TempDir(), nil })
	if err != nil {
		t.Fatalf("settings of %s: %v", n.Name, err)
	}
	return cfg
}

// Start starts node n; it is stopped at the end of the test (Shutdown may
// be called before).
func Start(t testing.TB, n Node) *agent.Agent {
	t.Helper()
	cfg := Config(t, n)
	opts := n.Options
	w := NewLogWriter(t)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", n.Name)
	}
	if opts.LogOutput == nil {
		opts.LogOutput = w
	}
	if opts.AccessLog == nil {
		opts.AccessLog = w
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Version == "" {
		opts.Version = "test"
	}
	a, err := agent.Start(cfg, opts)
	if err != nil {
		t.Fatalf("starting %s: %v", n.Name, err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	return a
}

// LogWriter logs to a test until its cleanups ran: memberlist and raft
// goroutines may still log a moment after Shutdown returned, when t.Log
// would panic.
type LogWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

// NewLogWriter returns a LogWriter for t.
func NewLogWriter(t testing.TB) *LogWriter {
	w := &LogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *LogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
