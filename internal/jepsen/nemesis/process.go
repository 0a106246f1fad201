package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
)

// Kill SIGKILLs a node (the leader half of the time) and restarts it when
// healed.
type Kill struct{}

// Name implements Nemesis.
func (*Kill) Name() string { return NameKill }

// Inject implements Nemesis.
func (*Kill) Inject(ctx context.Context, c Cluster, rng *rand.Rand, _ *Timeline) (*Fault, error) {
	i, why := target(ctx, c, rng)
	if err := c.Kill(i); err != nil {
		return nil, err
	}
	return &Fault{Nemesis: NameKill, Detail: fmt.Sprintf("SIGKILL %s (%s)", c.NodeName(i), why), Nodes: []string{c.NodeName(i)},
		heal: func(ctx context.Context) error { return c.Restart(ctx, i) }}, nil
}

// Pause SIGSTOPs a node (the leader half of the time) and SIGCONTs it when
// healed.
type Pause struct{}

// Name implements Nemesis.
func (*Pause) Name() string { return NamePause }

// Inject implements Nemesis.
func (*Pause) Inject(ctx context.Context, c Cluster, rng *rand.Rand, _ *Timeline) (*Fault, error) {
	i, why := target(ctx, c, rng)
	if err := c.Pause(i); err != nil {
		return nil, err
	}
	return &Fault{Nemesis: NamePause, Detail: fmt.Sprintf("SIGSTOP %s (%s)", c.NodeName(i), why), Nodes: []string{c.NodeName(i)},
		heal: func(ctx context.Context) error { return c.Resume(i) }}, nil
}
