// Package proccluster starts clusters of real `nexus agent` processes for
// end-to-end tests and benchmarks.
//
// Node i (0-based) is named NamePrefix+(i+1) ("n1", "n2", ...) and listens on
// BaseIP+(11+i) ("127.0.0.11", "127.0.0.12", ...): every address in 127/8 is
// loopback on Linux, so all nodes can use the same port numbers. Each node has
// a directory under Options.Dir holding its data dir and its log file (the
// process's stdout and stderr, appended across restarts).
//
// Processes never outlive the harness: each runs in its own process group that
// Kill and Close signal as a whole, and carries Pdeathsig=SIGKILL so that it dies
// with the harness process even if Close is never called. Every wait is bounded
// by a context or a timeout.
//
// Concurrency: all Cluster methods are safe for concurrent use.
package proccluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configures Start. Zero values take the documented defaults.
type Options struct {
	// Binary is the path of the nexus executable (required).
	Binary string
	// Nodes is the number of nodes (default 3); it is also --bootstrap-expect.
	Nodes int
	// BaseIP is the prefix node addresses are made from: node i listens on
	// BaseIP + strconv.Itoa(11+i). Default "127.0.0.".
	BaseIP string
	// RaftPort, GossipPort, HTTPPort and GatewayPort are the ports every node
	// uses on its own IP (defaults 8300, 8301, 8500, 8080). Tests should pick
	// other ones so they do not clash with a development cluster.
	RaftPort, GossipPort, HTTPPort, GatewayPort int
	// DNSPort is the DNS interface's port (UDP and TCP) on every node's IP;
	// 0 turns DNS off (--dns-addr off), so that clusters do not compete
	// for the agent's default port 8600.
	DNSPort int
	// Dir is the root for data dirs and logs. Empty: a fresh temporary
	// directory that Close removes (unless KeepDir).
	Dir string
	// KeepDir keeps a temporary Dir on Close.
	KeepDir bool
	// NamePrefix makes node names NamePrefix+"1", ... (default "n").
	NamePrefix string
	// ExtraArgs are appended to every node's `nexus agent` arguments.
	ExtraArgs []string
	// Args, when set, rewrites the standard arguments of node i (for a
	// binary whose flags differ, e.g. an earlier release); StandardArgs
	// still returns the unrewritten ones.
	Args func(i int, args []string) []string
	// Env is appended to the processes' environment. NEXUS_* variables of the
	// harness's own environment are removed so that runs are hermetic.
	Env []string
	// StartTimeout bounds Start when ctx has no deadline (default 60s).
	StartTimeout time.Duration
	// StopTimeout bounds Stop's wait for a graceful exit before it falls back
	// to SIGKILL (default 30s).
	StopTimeout time.Duration
	// Logf receives harness events (start, kill, stop...). Nil: silent.
	Logf func(format string, args ...any)
}

// NodeInfo describes one node.
type NodeInfo struct {
	Index       int    // 0-based index
	Name        string // node name (--node)
	IP          string // --bind
	HTTPAddr    string // host:port of the admin API
	GatewayAddr string // host:port of the gateway
	DNSAddr     string // host:port of the DNS interface; "" when Options.DNSPort is 0
	RaftAddr    string // host:port of the Raft transport
	GossipAddr  string // host:port of memberlist
	DataDir     string
	LogPath     string
	PID         int  // pid of the current (or last) process; 0 if never started
	Running     bool // the process has not exited (it may be paused)
	Paused      bool // stopped with SIGSTOP
	Starts      int  // number of times the node's process was started
}

// Errors returned by Cluster methods.
var (
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("proccluster: cluster closed")
	// ErrNotRunning is returned when the operation needs a running process.
	ErrNotRunning = errors.New("proccluster: node not running")
	// ErrRunning is returned when the operation needs the node to be down.
	ErrRunning = errors.New("proccluster: node still running")
)

// Cluster is a set of running (or stopped) nexus agent processes.
type Cluster struct {
	opts    Options
	ownsDir bool
	client  *http.Client
	spawner *spawner

	mu     sync.Mutex
	closed bool
	nodes  []*node

	closeOnce sync.Once
}

type node struct {
	info   NodeInfo // static fields; dynamic ones are filled by snapshot()
	args   []string // standard agent arguments
	std    []string // the standard arguments before Options.Args
	binary string   // "" = Options.Binary (SetBinary)
	proc   *proc    // current or last process; nil if never started
}

type proc struct {
	cmd       *exec.Cmd
	pid       int
	logFile   *os.File
	logOffset int64 // size of the log file when this process started
	done      chan struct{}
	state     *os.ProcessState // set before done is closed
	waitErr   error
	paused    bool
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) exitCode() int {
	if p.state == nil {
		return -1
	}
	return p.state.ExitCode()
}

// Start creates the directories and starts every node, then waits (bounded by
// ctx, or StartTimeout if ctx has no deadline) until each one answers
// GET /health. It does not wait for a leader; use WaitLeader. On error every
// process it started is killed.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := start(ctx, opts)
	if err != nil {
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	return c, nil
}

// start is Start without the cleanup on error, so StartT can dump logs first.
func start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Binary == "" {
		return nil, errors.New("proccluster: Options.Binary is required")
	}
	bin, err := filepath.Abs(opts.Binary)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("proccluster: binary: %w", err)
	}
	opts.Binary = bin
	setDefaults(&opts)

	c := &Cluster{
		opts: opts,
		client: &http.Client{
			Timeout: 3 * time.Second,
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
				MaxIdleConnsPerHost: 4,
				IdleConnTimeout:     30 * time.Second,
			},
		},
	}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "proccluster-")
		if err != nil {
			return nil, err
		}
		c.opts.Dir, c.ownsDir = dir, true
	} else if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}

	for i := 0; i < opts.Nodes; i++ {
		n, err := c.newNode(i)
		if err != nil {
			return c, err
		}
		c.nodes = append(c.nodes, n)
	}
	if err := c.checkPortsFree(); err != nil {
		return c, err
	}
	c.spawner = newSpawner()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.StartTimeout)
		defer cancel()
	}
	for i := range c.nodes {
		if err := c.startProc(i, nil); err != nil {
			return c, err
		}
	}
	for i := range c.nodes {
		if err := c.WaitHealthy(ctx, i); err != nil {
			return c, err
		}
	}
	return c, nil
}

func setDefaults(o *Options) {
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	if o.BaseIP == "" {
		o.BaseIP = "127.0.0."
	}
	if o.RaftPort == 0 {
		o.RaftPort = 8300
	}
	if o.GossipPort == 0 {
		o.GossipPort = 8301
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = 8500
	}
	if o.GatewayPort == 0 {
		o.GatewayPort = 8080
	}
	if o.NamePrefix == "" {
		o.NamePrefix = "n"
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
}

// NodeIP returns the IP of node i for the given BaseIP.
func NodeIP(baseIP string, i int) string {
	if baseIP == "" {
		baseIP = "127.0.0."
	}
	return baseIP + strconv.Itoa(11+i)
}

func (c *Cluster) newNode(i int) (*node, error) {
	o := c.opts
	ip := NodeIP(o.BaseIP, i)
	if net.ParseIP(ip) == nil {
		return nil, fmt.Errorf("proccluster: BaseIP %q gives invalid IP %q", o.BaseIP, ip)
	}
	// The directory is named by index, not by node name, so that paths in
	// error messages never contain a node name by accident.
	nodeDir := filepath.Join(o.Dir, "node"+strconv.Itoa(i+1))
	info := NodeInfo{
		Index:       i,
		Name:        o.NamePrefix + strconv.Itoa(i+1),
		IP:          ip,
		HTTPAddr:    net.JoinHostPort(ip, strconv.Itoa(o.HTTPPort)),
		GatewayAddr: net.JoinHostPort(ip, strconv.Itoa(o.GatewayPort)),
		RaftAddr:    net.JoinHostPort(ip, strconv.Itoa(o.RaftPort)),
		GossipAddr:  net.JoinHostPort(ip, strconv.Itoa(o.GossipPort)),
		DataDir:     filepath.Join(nodeDir, "data"),
		LogPath:     filepath.Join(nodeDir, "agent.log"),
	}
	dnsAddr := "off"
	if o.DNSPort > 0 {
		info.DNSAddr = net.JoinHostPort(ip, strconv.Itoa(o.DNSPort))
		dnsAddr = info.DNSAddr
	}
	if err := os.MkdirAll(info.DataDir, 0o755); err != nil {
		return nil, err
	}
	args := []string{"agent",
		"--node", info.Name,
		"--data-dir", info.DataDir,
		"--bind", ip,
		"--raft-port", strconv.Itoa(o.RaftPort),
		"--gossip-port", strconv.Itoa(o.GossipPort),
		"--http-addr", info.HTTPAddr,
		"--gateway-addr", info.GatewayAddr,
		"--bootstrap-expect", strconv.Itoa(o.Nodes),
		"--dns-addr", dnsAddr,
	}
	for j := 0; j < o.Nodes; j++ {
		args = append(args, "--join", net.JoinHostPort(NodeIP(o.BaseIP, j), strconv.Itoa(o.GossipPort)))
	}
	args = append(args, "--log-format", "json")
	args = append(args, o.ExtraArgs...)
	n := &node{info: info, args: args, std: args}
	if o.Args != nil {
		n.args = o.Args(i, append([]string(nil), args...))
	}
	return n, nil
}

// checkPortsFree fails early, with a clear message, when another process
// (a dev cluster, a leftover from an earlier run) holds one of our addresses.
func (c *Cluster) checkPortsFree() error {
	for _, n := range c.nodes {
		for _, a := range []string{n.info.RaftAddr, n.info.GossipAddr, n.info.HTTPAddr, n.info.GatewayAddr} {
			l, err := net.Listen("tcp", a)
			if err != nil {
				return fmt.Errorf("proccluster: %s (%s) not free: %w", a, n.info.Name, err)
			}
			l.Close()
		}
		pc, err := net.ListenPacket("udp", n.info.GossipAddr)
		if err != nil {
			return fmt.Errorf("proccluster: udp %s (%s) not free: %w", n.info.GossipAddr, n.info.Name, err)
		}
		pc.Close()
		if n.info.DNSAddr == "" {
			continue
		}
		for _, network := range []string{"tcp", "udp"} {
			if err := portFree(network, n.info.DNSAddr); err != nil {
				return fmt.Errorf("proccluster: %s %s (%s, DNS) not free: %w", network, n.info.DNSAddr, n.info.Name, err)
			}
		}
	}
	return nil
}

// portFree binds addr on network for a moment.
func portFree(network, addr string) error {
	if network == "udp" {
		pc, err := net.ListenPacket(network, addr)
		if err != nil {
			return err
		}
		return pc.Close()
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	return l.Close()
}

func (c *Cluster) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf("proccluster: "+format, args...)
	}
}

// N returns the number of nodes.
func (c *Cluster) N() int { return len(c.nodes) }

// Dir returns the root directory.
func (c *Cluster) Dir() string { return c.opts.Dir }

// Options returns the options in effect (defaults filled in).
func (c *Cluster) Options() Options { return c.opts }

// Args returns a copy of the standard agent arguments of node i (without the
// binary).
func (c *Cluster) Args(i int) []string {
	return append([]string(nil), c.nodes[i].args...)
}

// StandardArgs returns a copy of the standard agent arguments of node i as
// the harness builds them, before Options.Args rewrote them.
func (c *Cluster) StandardArgs(i int) []string {
	return append([]string(nil), c.nodes[i].std...)
}

// SetBinary makes every later start of node i run binary with args (nil:
// StandardArgs(i)): the way to replace a node's version (a rolling
// upgrade). The node must be down.
func (c *Cluster) SetBinary(i int, binary string, args []string) error {
	bin, err := filepath.Abs(binary)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("proccluster: binary: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if n.proc != nil && !n.proc.exited() {
		return fmt.Errorf("set binary of %s: %w", n.info.Name, ErrRunning)
	}
	if args == nil {
		args = n.std
	}
	n.binary, n.args = bin, append([]string(nil), args...)
	return nil
}

// Node returns the current state of node i.
func (c *Cluster) Node(i int) NodeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshotLocked(i)
}

func (c *Cluster) snapshotLocked(i int) NodeInfo {
	n := c.nodes[i]
	info := n.info
	if p := n.proc; p != nil {
		info.PID = p.pid
		info.Running = !p.exited()
		info.Paused = info.Running && p.paused
	}
	return info
}

// Nodes returns the state of every node.
func (c *Cluster) Nodes() []NodeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]NodeInfo, len(c.nodes))
	for i := range c.nodes {
		out[i] = c.snapshotLocked(i)
	}
	return out
}

// Index returns the index of the node with the given name, or -1.
func (c *Cluster) Index(name string) int {
	for i, n := range c.nodes {
		if n.info.Name == name {
			return i
		}
	}
	return -1
}

// HTTPAddr returns the host:port of node i's admin API.
func (c *Cluster) HTTPAddr(i int) string { return c.nodes[i].info.HTTPAddr }

// URL returns "http://" + HTTPAddr(i) + path.
func (c *Cluster) URL(i int, path string) string {
	return "http://" + c.nodes[i].info.HTTPAddr + path
}

// Running reports whether node i's process is alive (possibly paused).
func (c *Cluster) Running(i int) bool { return c.Node(i).Running }

// Live returns the indexes of running, unpaused nodes.
func (c *Cluster) Live() []int {
	var out []int
	for _, n := range c.Nodes() {
		if n.Running && !n.Paused {
			out = append(out, n.Index)
		}
	}
	return out
}

// startProc starts node i's process with args (nil: the standard ones).
func (c *Cluster) startProc(i int, args []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	n := c.nodes[i]
	if n.proc != nil && !n.proc.exited() {
		return fmt.Errorf("start %s: %w", n.info.Name, ErrRunning)
	}
	custom := args != nil
	if !custom {
		args = n.args
	}
	f, err := os.OpenFile(n.info.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	bin := c.opts.Binary
	if n.binary != "" {
		bin = n.binary
	}
	n.info.Starts++
	fmt.Fprintf(f, "=== proccluster: start #%d of %s at %s: %s %s\n", n.info.Starts, n.info.Name,
		time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	off, _ := f.Seek(0, io.SeekEnd)

	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Dir(n.info.LogPath)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = childEnv(c.opts.Env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.spawner.start(cmd); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", n.info.Name, err)
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, logFile: f, logOffset: off, done: make(chan struct{})}
	n.proc = p
	go func() {
		err := cmd.Wait()
		// Kill whatever the agent may have left in its process group right
		// away, before the pid (= pgid) can be reused.
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		p.state, p.waitErr = cmd.ProcessState, err
		f.Close()
		close(p.done)
	}()
	if custom {
		c.logf("started %s pid %d (%s) with custom args: %s", n.info.Name, p.pid, n.info.HTTPAddr, strings.Join(args, " "))
	} else {
		c.logf("started %s pid %d (%s)", n.info.Name, p.pid, n.info.HTTPAddr)
	}
	return nil
}

func childEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NEXUS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func (c *Cluster) current(i int) (*proc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	p := c.nodes[i].proc
	if p == nil {
		return nil, fmt.Errorf("%s: %w", c.nodes[i].info.Name, ErrNotRunning)
	}
	return p, nil
}

// Kill sends SIGKILL to node i's process group and waits for the process to
// exit (a crash). Killing a node that already exited is a no-op.
func (c *Cluster) Kill(i int) error {
	p, err := c.current(i)
	if err != nil {
		if errors.Is(err, ErrNotRunning) {
			return nil
		}
		return err
	}
	if p.exited() {
		return nil
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("kill %s: pid %d did not exit within 10s", c.nodes[i].info.Name, p.pid)
	}
	c.logf("killed %s pid %d", c.nodes[i].info.Name, p.pid)
	return nil
}

// Stop sends SIGTERM to node i and waits up to Options.StopTimeout for it to
// exit, returning its exit code (-1 if it died of a signal). A paused node is
// resumed first. If it does not exit in time it is killed and an error is
// returned.
func (c *Cluster) Stop(i int) (int, error) {
	p, err := c.current(i)
	if err != nil {
		return -1, err
	}
	if p.exited() {
		return p.exitCode(), fmt.Errorf("stop %s: %w (exited with %v)", c.nodes[i].info.Name, ErrNotRunning, p.state)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return -1, fmt.Errorf("stop %s: %w", c.nodes[i].info.Name, err)
	}
	c.mu.Lock()
	if p.paused {
		_ = syscall.Kill(-p.pid, syscall.SIGCONT)
		p.paused = false
	}
	c.mu.Unlock()
	select {
	case <-p.done:
	case <-time.After(c.opts.StopTimeout):
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
		return -1, fmt.Errorf("stop %s: no exit within %v after SIGTERM; killed", c.nodes[i].info.Name, c.opts.StopTimeout)
	}
	code := p.exitCode()
	c.logf("stopped %s pid %d: %v after %v", c.nodes[i].info.Name, p.pid, p.state, time.Since(start).Round(time.Millisecond))
	return code, nil
}

// WaitExit waits until node i's current process exits and returns its exit
// code (-1 if it died of a signal).
func (c *Cluster) WaitExit(ctx context.Context, i int) (int, error) {
	p, err := c.current(i)
	if err != nil {
		return -1, err
	}
	select {
	case <-p.done:
		return p.exitCode(), nil
	case <-ctx.Done():
		return -1, fmt.Errorf("wait for %s (pid %d) to exit: %w", c.nodes[i].info.Name, p.pid, ctx.Err())
	}
}

// ExitState returns the process state of node i's last process if it exited
// (nil while it runs or if it never ran).
func (c *Cluster) ExitState(i int) *os.ProcessState {
	p, err := c.current(i)
	if err != nil || !p.exited() {
		return nil
	}
	return p.state
}

// Pause stops node i's process group with SIGSTOP.
func (c *Cluster) Pause(i int) error { return c.signalPause(i, syscall.SIGSTOP, true) }

// Resume continues a paused node with SIGCONT.
func (c *Cluster) Resume(i int) error { return c.signalPause(i, syscall.SIGCONT, false) }

func (c *Cluster) signalPause(i int, sig syscall.Signal, paused bool) error {
	p, err := c.current(i)
	if err != nil {
		return err
	}
	if p.exited() {
		return fmt.Errorf("%s: %w", c.nodes[i].info.Name, ErrNotRunning)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := syscall.Kill(-p.pid, sig); err != nil {
		return fmt.Errorf("%v %s: %w", sig, c.nodes[i].info.Name, err)
	}
	p.paused = paused
	c.logf("%v %s pid %d", sig, c.nodes[i].info.Name, p.pid)
	return nil
}

// Restart starts node i again with the same flags and data dir. The node must
// have exited (Kill or Stop it first).
func (c *Cluster) Restart(i int) error { return c.startProc(i, nil) }

// StartWith starts node i with the arguments returned by mutate (given a copy
// of the standard ones), for this run only; a later Restart uses the standard
// arguments again. The node must have exited.
func (c *Cluster) StartWith(i int, mutate func(args []string) []string) error {
	return c.startProc(i, mutate(c.Args(i)))
}

// SetArg returns args with the value of flag (e.g. "--node") replaced, or
// the flag appended if absent. A helper for StartWith.
func SetArg(args []string, flag, value string) []string {
	out := append([]string(nil), args...)
	for j := 0; j+1 < len(out); j++ {
		if out[j] == flag {
			out[j+1] = value
			return out
		}
	}
	return append(out, flag, value)
}

// Logs returns node i's whole log file (all runs; each starts with a
// "=== proccluster: start" line).
func (c *Cluster) Logs(i int) string {
	b, err := os.ReadFile(c.nodes[i].info.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// LastRunLogs returns what node i's current or last process wrote.
func (c *Cluster) LastRunLogs(i int) string {
	var off int64
	if p, err := c.current(i); err == nil {
		off = p.logOffset
	}
	all := c.Logs(i)
	if off > int64(len(all)) {
		return all
	}
	return all[off:]
}

// Close kills every process (SIGKILL to each process group), waits for them,
// and removes a temporary Dir it created. It is safe to call more than once
// and from several goroutines.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		var procs []*proc
		for _, n := range c.nodes {
			if n.proc != nil {
				procs = append(procs, n.proc)
			}
		}
		c.mu.Unlock()
		for _, p := range procs {
			_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		}
		for _, p := range procs {
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				c.logf("pid %d did not exit within 10s of SIGKILL", p.pid)
			}
		}
		if c.spawner != nil {
			c.spawner.close()
		}
		if t, ok := c.client.Transport.(*http.Transport); ok {
			t.CloseIdleConnections()
		}
		if c.ownsDir && !c.opts.KeepDir {
			_ = os.RemoveAll(c.opts.Dir)
		}
	})
}

// ---- waiting ---------------------------------------------------------------

const pollInterval = 50 * time.Millisecond

// poll calls f every pollInterval until it returns true or ctx ends; on
// timeout the error includes the last failure description f reported.
func poll(ctx context.Context, what string, f func() (bool, string)) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	last := ""
	for {
		ok, why := f()
		if ok {
			return nil
		}
		if why != "" {
			last = why
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %s)", what, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// get performs a GET against node i and returns status and body.
func (c *Cluster) get(ctx context.Context, i int, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL(i, path), nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// errIfExited reports a node whose process died while we wait for it.
func (c *Cluster) errIfExited(i int) error {
	p, err := c.current(i)
	if err != nil {
		return err
	}
	if p.exited() {
		return fmt.Errorf("%s exited (%v); last log lines:\n%s", c.nodes[i].info.Name, p.state, tail(c.LastRunLogs(i), 20))
	}
	return nil
}

// WaitHealthy waits until node i answers GET /health with 200. It fails at
// once if the process exits.
func (c *Cluster) WaitHealthy(ctx context.Context, i int) error {
	var exitErr error
	err := poll(ctx, "wait for "+c.nodes[i].info.Name+" /health", func() (bool, string) {
		if exitErr = c.errIfExited(i); exitErr != nil {
			return true, ""
		}
		code, body, err := c.get(ctx, i, "/health")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, trim(body))
	})
	if exitErr != nil {
		return exitErr
	}
	return err
}

// WaitReady waits until node i answers GET /ready with 200 (it has a leader
// and has caught up). It fails at once if the process exits.
func (c *Cluster) WaitReady(ctx context.Context, i int) error {
	var exitErr error
	err := poll(ctx, "wait for "+c.nodes[i].info.Name+" /ready", func() (bool, string) {
		if exitErr = c.errIfExited(i); exitErr != nil {
			return true, ""
		}
		code, body, err := c.get(ctx, i, "/ready")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, trim(body))
	})
	if exitErr != nil {
		return exitErr
	}
	return err
}

// WaitAllReady waits for WaitReady on every live node.
func (c *Cluster) WaitAllReady(ctx context.Context) error {
	for _, i := range c.Live() {
		if err := c.WaitReady(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// LeaderInfo is the body of GET /cluster/leader.
type LeaderInfo struct {
	Node     string `json:"node"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// Leader asks node i for its view of the leader.
func (c *Cluster) Leader(ctx context.Context, i int) (LeaderInfo, error) {
	var li LeaderInfo
	code, body, err := c.get(ctx, i, "/cluster/leader")
	if err != nil {
		return li, err
	}
	if code != http.StatusOK {
		return li, fmt.Errorf("%s /cluster/leader: %d %s", c.nodes[i].info.Name, code, trim(body))
	}
	if err := json.Unmarshal(body, &li); err != nil {
		return li, fmt.Errorf("%s /cluster/leader: %v: %s", c.nodes[i].info.Name, err, trim(body))
	}
	return li, nil
}

// WaitLeader polls GET /cluster/leader on every live (running, unpaused) node
// until all of them name the same leader and that leader is one of the live
// nodes; it returns the leader's index and name. A crashed leader that the
// survivors still remember is therefore never returned.
func (c *Cluster) WaitLeader(ctx context.Context) (int, string, error) {
	return c.waitLeader(ctx, nil)
}

// WaitLeaderAmong is WaitLeader restricted to the given nodes: they must all
// be running and agree on a leader that is one of them. Other nodes are
// ignored (e.g. one that is still shutting down).
func (c *Cluster) WaitLeaderAmong(ctx context.Context, nodes []int) (int, string, error) {
	return c.waitLeader(ctx, nodes)
}

func (c *Cluster) waitLeader(ctx context.Context, among []int) (int, string, error) {
	idx, name := -1, ""
	err := poll(ctx, "wait for leader", func() (bool, string) {
		live := among
		if live == nil {
			live = c.Live()
		}
		if len(live) == 0 {
			return false, "no live node"
		}
		views := make([]string, 0, len(live))
		agreed := ""
		for k, i := range live {
			li, err := c.Leader(ctx, i)
			if err != nil {
				return false, err.Error()
			}
			views = append(views, c.nodes[i].info.Name+"→"+li.Node)
			if k == 0 {
				agreed = li.Node
			} else if li.Node != agreed {
				return false, "disagreement: " + strings.Join(views, " ")
			}
		}
		j := c.Index(agreed)
		if j < 0 {
			return false, fmt.Sprintf("leader %q is not a node of this cluster", agreed)
		}
		isLive := false
		for _, i := range live {
			isLive = isLive || i == j
		}
		if !isLive {
			return false, fmt.Sprintf("leader %q is not live: %s", agreed, strings.Join(views, " "))
		}
		idx, name = j, agreed
		return true, ""
	})
	if err != nil {
		return -1, "", err
	}
	return idx, name, nil
}

func trim(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Tail returns the last n bytes of s, cut at a line start; for dumping logs.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if k := strings.IndexByte(s, '\n'); k >= 0 {
		s = s[k+1:]
	}
	return "...(earlier lines cut)...\n" + s
}

// ---- spawning --------------------------------------------------------------

// spawner forks every child from one goroutine locked to its OS thread. The
// kernel sends Pdeathsig when the *thread* that forked the child exits, and
// the Go runtime may retire threads; a locked thread that lives as long as the
// Cluster avoids children being killed early.
type spawner struct {
	reqs chan spawnReq
	quit chan struct{}
	once sync.Once
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), quit: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: when this goroutine returns, its thread exits,
		// which is fine because Close has killed every child by then.
		for {
			select {
			case r := <-s.reqs:
				r.err <- r.cmd.Start()
			case <-s.quit:
				return
			}
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	select {
	case s.reqs <- r:
		return <-r.err
	case <-s.quit:
		return ErrClosed
	}
}

func (s *spawner) close() { s.once.Do(func() { close(s.quit) }) }
