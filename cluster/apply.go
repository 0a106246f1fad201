package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/fsm/command"

	"github.com/nexus/nexus/cluster/peerproto"
)

// Errors of the write path, aliased to the command package so that errors.Is
// matches whichever layer made them.
var (
	ErrNoLeader       = command.ErrNoLeader
	ErrOutcomeUnknown = command.ErrOutcomeUnknown
	ErrNotApplied     = command.ErrNotApplied
	// ErrBadMAC is returned when a forwarded write (or read-index or
	// keyring request) is not signed with the cluster secret.
	ErrBadMAC = peerproto.ErrBadMAC
)

// leaderWait is how long a write waits for a leader to appear before it
// answers no_leader (nothing was dispatched, so that answer is safe).
const leaderWait = 3 * time.Second

// Apply commits cmd and returns its result once this node has applied it:
// on the leader directly, on a follower through the leader. It never retries
// a write once dispatched.
func (n *Node) Apply(ctx context.Context, cmd []byte) (*command.Result, error) {
	if err := n.checkFeature(cmd); err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := n.apply(ctx, cmd)
	n.m.observeApply(start, err)
	return res, err
}

func (n *Node) apply(ctx context.Context, cmd []byte) (*command.Result, error) {
	start := time.Now()
	for {
		var res *command.Result
		var err error
		tried := false
		// With no known leader, wait up to leaderWait for one.
		wait := leaderWait
		if n.raft.State() == raft.Leader {
			res, err = n.applyLocal(ctx, cmd)
			tried = true
		} else if addr, id := n.raft.LeaderWithID(); addr != "" && string(id) != n.cfg.Node {
			if m, ok := n.leaderMember(string(id), string(addr)); ok && m.Meta.HTTPAddr != "" {
				if _, secret := n.cfg.Hooks.Identity(); secret != "" {
					res, err = n.forward(ctx, m, secret, cmd)
					tried = true
				} else {
					// A leader is known but this node has not applied the
					// cluster identity yet (the cluster just formed, or it
					// just joined): it cannot sign the forward. The identity
					// is on its way; wait for it as long as for a write.
					wait = n.cfg.ApplyTimeout
				}
			}
		}
		// ErrNoLeader means the write was surely not dispatched (this node
		// or the one it asked was no longer leader, or the leader could not
		// be reached): during an election, wait for the next leader and try
		// again, within the wait, instead of failing the write. Anything
		// else, dispatched, is the answer.
		if tried && !errors.Is(err, ErrNoLeader) {
			return res, err
		}
		if tried {
			n.m.noLeaderRetries.Inc()
		}
		if time.Since(start) > wait {
			if err != nil {
				return nil, err
			}
			return nil, ErrNoLeader
		}
		select {
		case <-ctx.Done():
			return nil, ErrNoLeader
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (n *Node) leaderMember(id, raftAddr string) (memberState, bool) {
	if m, ok := n.gossip.member(id); ok && m.Status == StatusAlive {
		return m, true
	}
	return n.gossip.memberByRaftAddr(raftAddr)
}

// applyLocal applies on this node as leader. Errors before dispatch are
// no_leader; anything lost after dispatch is outcome_unknown.
func (n *Node) applyLocal(ctx context.Context, cmd []byte) (*command.Result, error) {
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < timeout {
			timeout = d
		}
	}
	deadline := time.Now().Add(timeout)
	f := n.raft.Apply(cmd, timeout)
	err := waitFuture(ctx, f, timeout+time.Second)
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
		// Refused before it reached the log: surely not applied.
		return nil, ErrNoLeader
	case errors.Is(err, raft.ErrLeadershipLost):
		// In the log, not committed: the next leader decides (lost.go).
		return n.resolveLost(ctx, f.Index(), cmd, deadline)
	default:
		// ErrRaftShutdown, timeouts: the entry may be in the log and may
		// still commit.
		return nil, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	}
	res, _ := f.Response().(*command.Result)
	if res == nil {
		res = &command.Result{Index: f.Index()}
	}
	return res, nil
}

// Forwarded applies a write that the follower from forwarded (peerproto's
// PathForward). Only a leader takes it, and only when the body is signed
// with the cluster secret.
func (n *Node) Forwarded(ctx context.Context, mac, from string, cmd []byte) (*command.Result, error) {
	if _, secret := n.cfg.Hooks.Identity(); !peerproto.Verify(secret, mac, cmd) {
		return nil, ErrBadMAC
	}
	if n.raft.State() != raft.Leader {
		return nil, ErrNoLeader
	}
	res, err := n.applyLocal(ctx, cmd)
	if err == nil {
		n.tellCommit(from, res.Index)
	}
	return res, err
}

// forward sends cmd, signed with secret, to the leader's admin API, and
// answers once this node has applied it too (read-your-writes).
func (n *Node) forward(ctx context.Context, leader memberState, secret string, cmd []byte) (*command.Result, error) {
	res, err := n.peers.Forward(ctx, leader.Meta.HTTPAddr, secret, n.cfg.Node, cmd, n.cfg.ApplyTimeout+time.Second)
	if err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	if err := n.cfg.FSM.WaitApplied(waitCtx, res.Index); err != nil {
		return nil, fmt.Errorf("%w: index %d committed by %s", ErrNotApplied, res.Index, leader.Name)
	}
	return res, nil
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
