package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
)

// Membership removes a server from the cluster and adds it back, in one of
// two ways (chosen at random):
//
//   - leave: `nexus leave` on the node (POST /cluster/leave: it deregisters
//     the instances it owns, the leader removes it from Raft, it exits);
//   - remove: SIGKILL the node, then DELETE /cluster/peers/{node} through
//     another node (remove a failed server). Where the build does not serve
//     that endpoint, remove falls back to leave (noted on the timeline).
//
// When healed the node restarts, either with its old data dir or with an
// empty one (half of the time: it re-joins as a new server and catches up
// from the others), and the heal waits until the leader lists it as a voter.
// A node whose leave or removal failed is never wiped.
type Membership struct {
	// Wipe: probability of re-joining with an empty data dir (default 0.5;
	// negative: never).
	Wipe float64
	// Modes to choose from: "leave", "remove" (default both).
	Modes []string

	noRemove bool // the build has no DELETE /cluster/peers
}

// Membership modes.
const (
	MembershipLeave  = "leave"
	MembershipRemove = "remove"
)

// Name implements Nemesis.
func (*Membership) Name() string { return NameMembership }

// Inject implements Nemesis.
func (m *Membership) Inject(ctx context.Context, c Cluster, rng *rand.Rand, tl *Timeline) (*Fault, error) {
	i, why := target(ctx, c, rng)
	modes := m.Modes
	if len(modes) == 0 {
		modes = []string{MembershipLeave, MembershipRemove}
	}
	if modes[rng.IntN(len(modes))] == MembershipRemove && !m.noRemove {
		f, err := m.remove(ctx, c, rng, tl, i, why)
		if !errors.Is(err, ErrUnsupported) {
			return f, err
		}
		m.noRemove = true
		tl.Note(NameMembership, "DELETE /cluster/peers/{node} is not served by this build: membership uses leave only")
		if err := c.Restart(context.WithoutCancel(ctx), i); err != nil {
			return nil, err
		}
	}
	return m.leave(ctx, c, rng, tl, i, why)
}

func (m *Membership) wipeChance() float64 {
	if m.Wipe == 0 {
		return 0.5
	}
	return m.Wipe
}

// remove kills node i and removes it from Raft through another node.
func (m *Membership) remove(ctx context.Context, c Cluster, rng *rand.Rand, tl *Timeline, i int, why string) (*Fault, error) {
	name := c.NodeName(i)
	if err := c.Kill(i); err != nil {
		return nil, err
	}
	err := c.RemovePeer(context.WithoutCancel(ctx), i)
	if errors.Is(err, ErrUnsupported) {
		return nil, err
	}
	fresh := err == nil && rng.Float64() < m.wipeChance()
	var detail string
	switch {
	case err != nil:
		detail = fmt.Sprintf("%s (%s) killed; removing it failed (%v); restarts with its data", name, why, err)
		tl.Add(Event{Kind: EventError, Nemesis: NameMembership, Nodes: []string{name}, Detail: "remove peer: " + err.Error()})
	case fresh:
		detail = fmt.Sprintf("%s (%s) killed and removed from Raft; re-joins with an empty data dir", name, why)
	default:
		detail = fmt.Sprintf("%s (%s) killed and removed from Raft; re-joins with its data", name, why)
	}
	return &Fault{Nemesis: NameMembership, Detail: detail, Nodes: []string{name}, heal: rejoin(c, i, fresh)}, nil
}

// rejoin restarts node i (after wiping its data dir if fresh) and waits
// until it is a voter again.
func rejoin(c Cluster, i int, fresh bool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if fresh {
			if err := c.WipeData(i); err != nil {
				return err
			}
		}
		if err := c.Restart(ctx, i); err != nil {
			return err
		}
		return c.WaitVoter(ctx, i)
	}
}

// leave makes node i leave the cluster.
func (m *Membership) leave(ctx context.Context, c Cluster, rng *rand.Rand, tl *Timeline, i int, why string) (*Fault, error) {
	name := c.NodeName(i)
	start := tl.Now()
	// The leave runs to its end even if the run ends meanwhile.
	err := c.Leave(context.WithoutCancel(ctx), i)
	// Whatever the answer, the leave may have deregistered the node's
	// instances: the set checker must know.
	tl.Add(Event{Time: start, End: tl.Now(), Kind: EventLeave, Nemesis: NameMembership, Nodes: []string{name},
		Detail: errString(err)})
	fresh := rng.Float64() < m.wipeChance()
	detail := fmt.Sprintf("%s (%s) left; re-joins with its data", name, why)
	switch {
	case err != nil:
		// The node may still be a voter: never wipe it. Leave has made
		// sure it is down; heal restarts it as it was.
		fresh = false
		detail = fmt.Sprintf("%s (%s): leave failed (%v); restarts with its data", name, why, err)
		tl.Add(Event{Kind: EventError, Nemesis: NameMembership, Nodes: []string{name}, Detail: "leave: " + err.Error()})
	case fresh:
		detail = fmt.Sprintf("%s (%s) left; re-joins with an empty data dir", name, why)
	}
	return &Fault{Nemesis: NameMembership, Detail: detail, Nodes: []string{name}, heal: rejoin(c, i, fresh)}, nil
}

func errString(err error) string {
	if err == nil {
		return "left"
	}
	return err.Error()
}
