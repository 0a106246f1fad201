package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/cluster/peerproto"

	"github.com/nexus/nexus/fsm/command"
)

// RemovePeer removes a failed (or departed, or never seen) server from the
// Raft configuration and returns the index of the configuration change. The
// leader does it; a follower relays the request to the leader's admin API.
// Errors: ErrPeerNotFound (not a Raft server), ErrMemberAlive (gossip sees
// it alive, or it is the leader), ErrNoLeader, ErrOutcomeUnknown. Unlike
// autopilot, an operator may remove a failed voter below min_quorum.
func (n *Node) RemovePeer(ctx context.Context, id string, relay Relay) (uint64, error) {
	if n.raft.State() == raft.Leader {
		return n.removePeerLocal(ctx, id)
	}
	if relay.Forwarded {
		return 0, fmt.Errorf("%w: %s is not the leader (relayed request)", ErrNoLeader, n.cfg.Node)
	}
	return n.relayToLeader(ctx, "DELETE", peerproto.PeerPath(id), nil, relay, n.cfg.ApplyTimeout+2*leaderWait)
}

func (n *Node) removePeerLocal(ctx context.Context, id string) (uint64, error) {
	if id == n.cfg.Node {
		return 0, &OpError{Code: command.CodeMemberAlive, Msg: fmt.Sprintf("%s is the leader and alive; use `nexus leave` on it", id)}
	}
	cfg, err := n.configuration()
	if err != nil {
		return 0, fmt.Errorf("%w: reading the raft configuration: %v", ErrNoLeader, err)
	}
	present := false
	for _, s := range cfg.Servers {
		present = present || string(s.ID) == id
	}
	if !present {
		return 0, &OpError{Code: command.CodeNotFound, Msg: fmt.Sprintf("%q is not a raft server", id)}
	}
	if m, ok := n.gossip.member(id); ok && m.Status == StatusAlive {
		return 0, &OpError{Code: command.CodeMemberAlive,
			Msg: fmt.Sprintf("%s is alive; it would be added back at once; use `nexus leave` on it", id)}
	}
	f := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout)
	err = waitFuture(ctx, f, n.cfg.ApplyTimeout)
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
		return 0, fmt.Errorf("%w: %v", ErrNoLeader, err)
	default:
		return 0, fmt.Errorf("%w: removing %s: %v", ErrOutcomeUnknown, id, err)
	}
	n.logger.Info("removed server from raft at an operator's request", "server", id, "index", f.Index())
	return f.Index(), nil
}
