package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
)

// Partition modes.
const (
	PartitionHalves        = "halves"         // a random minority and majority
	PartitionIsolateLeader = "isolate-leader" // the leader alone
	PartitionRing          = "majority-ring"  // each node sees a different majority
	PartitionBridge        = "bridge"         // two halves joined by one node
)

// Partition drops traffic between groups of nodes with iptables in the node
// namespaces. Each injection picks a mode at random among Modes (default:
// all four).
type Partition struct {
	Modes []string
}

// Name implements Nemesis.
func (*Partition) Name() string { return NamePartition }

// Inject implements Nemesis.
func (p *Partition) Inject(ctx context.Context, c Cluster, rng *rand.Rand, _ *Timeline) (*Fault, error) {
	modes := p.Modes
	if len(modes) == 0 {
		modes = []string{PartitionHalves, PartitionIsolateLeader, PartitionRing, PartitionBridge}
	}
	mode := modes[rng.IntN(len(modes))]
	g, detail, err := Grudges(ctx, mode, c, rng)
	if err != nil {
		return nil, err
	}
	if len(g) == 0 {
		// A majority ring of fewer than 5 nodes cuts nothing.
		mode = PartitionHalves
		if g, detail, err = Grudges(ctx, mode, c, rng); err != nil {
			return nil, err
		}
	}
	if err := applyGrudge(ctx, c, g); err != nil {
		_ = flushChain(context.WithoutCancel(ctx), c, ChainPartition)
		return nil, err
	}
	var nodes []string
	for i := 0; i < c.N(); i++ {
		if len(g[i]) > 0 {
			nodes = append(nodes, c.NodeName(i))
		}
	}
	return &Fault{Nemesis: NamePartition, Detail: mode + " " + detail, Nodes: nodes,
		heal: func(ctx context.Context) error { return flushChain(ctx, c, ChainPartition) }}, nil
}

// Grudges computes the grudge of a partition mode and describes it.
func Grudges(ctx context.Context, mode string, c Cluster, rng *rand.Rand) (Grudge, string, error) {
	n := c.N()
	switch mode {
	case PartitionHalves:
		groups := RandomHalves(n, rng)
		return FromGroups(groups), describeGroups(groups, c.NodeName), nil
	case PartitionIsolateLeader:
		l, err := c.Leader(ctx)
		if err != nil {
			l = rng.IntN(n)
		}
		groups := Isolate(n, l)
		return FromGroups(groups), describeGroups(groups, c.NodeName), nil
	case PartitionRing:
		g, ring := MajorityRing(n, rng)
		return g, "ring " + describeGroups([][]int{ring}, c.NodeName) + ": " + describeGrudge(g, n, c.NodeName), nil
	case PartitionBridge:
		g, b := Bridge(n, rng)
		return g, fmt.Sprintf("bridge %s: %s", c.NodeName(b), describeGrudge(g, n, c.NodeName)), nil
	}
	return nil, "", fmt.Errorf("unknown partition mode %q", mode)
}
