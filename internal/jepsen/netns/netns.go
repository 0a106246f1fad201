// Package netns builds the network of a nexus-jepsen run: one network
// namespace per node (its own "host") and one for the harness, which holds a
// bridge that every node's veth pair is plugged into. Node addresses exist
// only inside these namespaces, so address-based iptables rules in a node's
// namespace really cut traffic (on one shared loopback every connection would
// come from 127.0.0.1).
//
//	harness ns  njp-<id>-h   br0 10.77.0.1/24, v1..vN (bridge ports)
//	node ns     njp-<id>-n1  eth0 10.77.0.11/24 (peer of v1), lo
//	node ns     njp-<id>-n2  eth0 10.77.0.12/24 (peer of v2), lo ...
//
// Node i (0-based) gets Prefix+(11+i), the same numbering as proccluster's
// NodeIP, so a proccluster with BaseIP Prefix binds each agent to its own
// namespace's address.
//
// Ownership: Setup takes an exclusive flock on /run/nexus-jepsen/<id>.lock
// and keeps it until Close. CleanStale deletes only namespaces whose lock is
// free (their harness died), so concurrent runs never touch each other, and
// it never touches a namespace without the "njp-" prefix.
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults of a Spec.
const (
	// NamePrefix starts the name of every namespace this package makes.
	NamePrefix = "njp-"
	// DefaultPrefix is the /24 that node and harness addresses come from.
	DefaultPrefix = "10.77.0."
	// LockDir holds one lock file per live topology.
	LockDir = "/run/nexus-jepsen"
	// EnvTopology carries a Topology (JSON) to a process started inside
	// the harness namespace.
	EnvTopology = "NEXUS_JEPSEN_TOPOLOGY"
	// Bridge is the bridge's name in the harness namespace.
	Bridge = "br0"
	// NodeIface is the node's interface name inside its namespace.
	NodeIface = "eth0"
	// MaxNodes bounds Spec.Nodes (addresses .11 .. .11+MaxNodes-1).
	MaxNodes = 50
)

// Spec describes the network to build.
type Spec struct {
	Nodes  int    // number of node namespaces (required, 1..MaxNodes)
	Prefix string // "a.b.c." of the /24; default DefaultPrefix
}

// Node is one node's namespace.
type Node struct {
	Name string `json:"name"` // node name, "n1", "n2", ...
	NS   string `json:"ns"`   // namespace name
	IP   string `json:"ip"`
}

// Topology is a built network. It is JSON-encodable so that it can be handed
// to a process started inside the harness namespace (EnvTopology).
type Topology struct {
	ID        string `json:"id"`
	Harness   string `json:"harness"` // harness namespace name
	HarnessIP string `json:"harness_ip"`
	Prefix    string `json:"prefix"`
	Nodes     []Node `json:"nodes"`

	lock *os.File // exclusive flock held while the topology lives (owner only)
}

// NodeIP is the address of node i (0-based) under prefix.
func NodeIP(prefix string, i int) string { return prefix + strconv.Itoa(11+i) }

// NodeName is the name of node i (0-based): "n1", "n2", ...
func NodeName(i int) string { return "n" + strconv.Itoa(i+1) }

// Available reports why namespaces cannot be built here (nil if they can):
// not root, or ip/iptables missing, or `ip netns` not working.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: needs root (network namespaces, iptables)")
	}
	for _, tool := range []string{"ip", "iptables", "iptables-restore", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netns: %s not found (apt-get install -y iproute2 iptables)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "list").CombinedOutput(); err != nil {
		return fmt.Errorf("netns: `ip netns list` failed: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// Setup builds the namespaces, bridge and links of spec. On error it removes
// whatever it made. logf may be nil.
func Setup(ctx context.Context, spec Spec, logf func(string, ...any)) (*Topology, error) {
	if spec.Nodes < 1 || spec.Nodes > MaxNodes {
		return nil, fmt.Errorf("netns: %d nodes: must be 1..%d", spec.Nodes, MaxNodes)
	}
	if spec.Prefix == "" {
		spec.Prefix = DefaultPrefix
	}
	if err := os.MkdirAll(LockDir, 0o755); err != nil {
		return nil, err
	}
	t, err := newLockedTopology(spec)
	if err != nil {
		return nil, err
	}
	if err := t.build(ctx); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = t.Close(cctx)
		return nil, err
	}
	if logf != nil {
		logf("netns: built %s: harness %s (%s), %d nodes %s..%s", t.ID, t.Harness, t.HarnessIP,
			len(t.Nodes), t.Nodes[0].IP, t.Nodes[len(t.Nodes)-1].IP)
	}
	return t, nil
}

// newLockedTopology picks a free id and takes its lock.
func newLockedTopology(spec Spec) (*Topology, error) {
	for attempt := 0; attempt < 20; attempt++ {
		b := make([]byte, 3)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		id := hex.EncodeToString(b)
		if exists(NamePrefix + id + "-h") {
			continue
		}
		f, err := os.OpenFile(lockPath(id), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		fmt.Fprintf(f, "%d\n", os.Getpid())
		t := &Topology{ID: id, Harness: NamePrefix + id + "-h", HarnessIP: spec.Prefix + "1", Prefix: spec.Prefix, lock: f}
		for i := 0; i < spec.Nodes; i++ {
			t.Nodes = append(t.Nodes, Node{Name: NodeName(i), NS: NamePrefix + id + "-" + NodeName(i), IP: NodeIP(spec.Prefix, i)})
		}
		return t, nil
	}
	return nil, errors.New("netns: no free topology id after 20 attempts")
}

func lockPath(id string) string { return filepath.Join(LockDir, id+".lock") }

// ScratchDir is a directory a run may use for files that must not outlive
// its topology (the audit workload's PostgreSQL): Close removes it, and so
// does CleanStale for a harness that died. Nothing creates it beforehand.
func ScratchDir(id string) string { return filepath.Join(os.TempDir(), "nexus-jepsen-"+id) }

// Scratch is the topology's ScratchDir.
func (t *Topology) Scratch() string { return ScratchDir(t.ID) }

func exists(ns string) bool {
	_, err := os.Stat(filepath.Join("/var/run/netns", ns))
	return err == nil
}

// build makes the harness namespace with its bridge, then each node's
// namespace with a veth pair into the bridge.
func (t *Topology) build(ctx context.Context) error {
	h := t.Harness
	steps := [][]string{
		{"ip", "netns", "add", h},
		{"ip", "-n", h, "link", "set", "lo", "up"},
		{"ip", "-n", h, "link", "add", Bridge, "type", "bridge"},
		{"ip", "-n", h, "addr", "add", t.HarnessIP + "/24", "dev", Bridge},
		{"ip", "-n", h, "link", "set", Bridge, "up"},
		// The harness checks that node ports are free by binding them
		// (proccluster); the addresses live in the node namespaces.
		{"ip", "netns", "exec", h, "sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1"},
	}
	for i, n := range t.Nodes {
		port := "v" + strconv.Itoa(i+1)
		steps = append(steps,
			[]string{"ip", "netns", "add", n.NS},
			[]string{"ip", "-n", n.NS, "link", "set", "lo", "up"},
			[]string{"ip", "-n", h, "link", "add", port, "type", "veth", "peer", "name", NodeIface, "netns", n.NS},
			[]string{"ip", "-n", h, "link", "set", port, "master", Bridge},
			[]string{"ip", "-n", h, "link", "set", port, "up"},
			[]string{"ip", "-n", n.NS, "addr", "add", n.IP + "/24", "dev", NodeIface},
			[]string{"ip", "-n", n.NS, "link", "set", NodeIface, "up"},
		)
	}
	for _, s := range steps {
		if _, err := Run(ctx, nil, s...); err != nil {
			return err
		}
	}
	return nil
}

// Namespaces lists every namespace of the topology, harness last.
func (t *Topology) Namespaces() []string {
	out := make([]string, 0, len(t.Nodes)+1)
	for _, n := range t.Nodes {
		out = append(out, n.NS)
	}
	return append(out, t.Harness)
}

// Close kills every process still inside the topology's namespaces, deletes
// the namespaces and releases the lock. Only the owner (the process that
// called Setup) may call it.
func (t *Topology) Close(ctx context.Context) error {
	if t.lock == nil {
		return errors.New("netns: Close called on a topology this process does not own")
	}
	err := removeNamespaces(ctx, t.Namespaces())
	_ = os.RemoveAll(ScratchDir(t.ID))
	_ = os.Remove(lockPath(t.ID))
	t.lock.Close()
	t.lock = nil
	return err
}

// removeNamespaces kills the processes inside each namespace and deletes it.
func removeNamespaces(ctx context.Context, names []string) error {
	var errs []error
	for _, ns := range names {
		if !exists(ns) {
			continue
		}
		killInside(ctx, ns)
		if _, err := Run(ctx, nil, "ip", "netns", "del", ns); err != nil && exists(ns) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killInside SIGKILLs the processes whose network namespace is ns (only ever
// one of ours: leftover agents or a harness).
func killInside(ctx context.Context, ns string) {
	out, err := Run(ctx, nil, "ip", "netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Encode returns the topology as JSON (for EnvTopology).
func (t *Topology) Encode() string {
	b, _ := json.Marshal(t)
	return string(b)
}

// FromEnv decodes the topology in EnvTopology. ok is false when the variable
// is unset (this process is not inside a harness namespace).
func FromEnv() (t *Topology, ok bool, err error) {
	v := os.Getenv(EnvTopology)
	if v == "" {
		return nil, false, nil
	}
	t = &Topology{}
	if err := json.Unmarshal([]byte(v), t); err != nil {
		return nil, true, fmt.Errorf("netns: bad %s: %w", EnvTopology, err)
	}
	if len(t.Nodes) == 0 || t.Harness == "" {
		return nil, true, fmt.Errorf("netns: %s has no nodes or harness", EnvTopology)
	}
	return t, true, nil
}
