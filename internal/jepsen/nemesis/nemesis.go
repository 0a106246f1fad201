// Package nemesis injects faults into a running cluster: kill (SIGKILL and
// restart), pause (SIGSTOP/SIGCONT), partition (iptables DROP between nodes,
// inside the node namespaces), net-slow (tc netem, or a fallback where the
// kernel has no netem), membership (leave and re-join). A Schedule runs one
// fault at a time, heals it, and records everything on a Timeline.
package nemesis

import (
	"context"
	"errors"
	"math/rand/v2"
)

// ErrUnsupported is returned by Cluster methods the build under test does
// not support.
var ErrUnsupported = errors.New("not supported by this build")

// Cluster is what the nemeses act on. The runner implements it over
// proccluster and the network namespaces.
type Cluster interface {
	// N is the number of nodes; nodes are 0-based indexes.
	N() int
	NodeName(i int) string
	NodeIP(i int) string
	// Leader returns the index of the leader the live nodes agree on, or an
	// error when there is none.
	Leader(ctx context.Context) (int, error)
	// Kill SIGKILLs node i; Restart starts it again (same flags and data
	// dir) and waits until it answers /health.
	Kill(i int) error
	Restart(ctx context.Context, i int) error
	// Pause and Resume send SIGSTOP/SIGCONT to node i.
	Pause(i int) error
	Resume(i int) error
	// Leave asks node i to leave the cluster (POST /cluster/leave) and
	// waits for its process to exit (killing it if it does not).
	Leave(ctx context.Context, i int) error
	// RemovePeer removes the (stopped) node i from Raft through another
	// node (DELETE /cluster/peers/{node}); ErrUnsupported when the build
	// does not serve that endpoint.
	RemovePeer(ctx context.Context, i int) error
	// WipeData deletes node i's data dir (node down), so that it re-joins
	// as a new server.
	WipeData(i int) error
	// WaitVoter waits until node i is a voter in the leader's configuration.
	WaitVoter(ctx context.Context, i int) error
	// Exec runs a command inside node i's network namespace.
	Exec(ctx context.Context, i int, stdin []byte, argv ...string) ([]byte, error)
}

// Fault is an injected fault; Heal undoes it.
type Fault struct {
	Nemesis string
	Detail  string
	Nodes   []string // nodes the fault targets
	heal    func(ctx context.Context) error
}

// Heal undoes the fault; it is safe to call once.
func (f *Fault) Heal(ctx context.Context) error {
	if f.heal == nil {
		return nil
	}
	h := f.heal
	f.heal = nil
	return h(ctx)
}

// Nemesis injects one kind of fault.
type Nemesis interface {
	Name() string
	// Inject starts a fault. A nil Fault with a nil error means the
	// nemesis had nothing to do this time.
	Inject(ctx context.Context, c Cluster, rng *rand.Rand, tl *Timeline) (*Fault, error)
}

// Names of the nemeses, as the command line takes them.
const (
	NameKill       = "kill"
	NamePause      = "pause"
	NamePartition  = "partition"
	NameNetSlow    = "net-slow"
	NameMembership = "membership"
)

// All lists every nemesis name.
func All() []string {
	return []string{NameKill, NamePause, NamePartition, NameNetSlow, NameMembership}
}

// New returns the nemesis of that name, or nil.
func New(name string) Nemesis {
	switch name {
	case NameKill:
		return &Kill{}
	case NamePause:
		return &Pause{}
	case NamePartition:
		return &Partition{}
	case NameNetSlow:
		return &NetSlow{}
	case NameMembership:
		return &Membership{}
	}
	return nil
}

// target picks the leader half of the time (when there is one), else a
// random node.
func target(ctx context.Context, c Cluster, rng *rand.Rand) (int, string) {
	if rng.IntN(2) == 0 {
		if l, err := c.Leader(ctx); err == nil {
			return l, "leader"
		}
	}
	return rng.IntN(c.N()), "random"
}
