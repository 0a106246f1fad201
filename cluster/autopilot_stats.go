package cluster

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"

	"github.com/nexus/nexus/cluster/peerproto"
)

// statsTimeout caps one stats request even when the caller's deadline is
// further away.
const statsTimeout = time.Second

// PeerStats is a server's Raft progress, as peerproto's PathRaftStats
// answers it.
type PeerStats = peerproto.RaftStats

// LocalRaftStats returns this node's Raft progress.
func (n *Node) LocalRaftStats() PeerStats {
	st := n.raft.Stats()
	u := func(k string) uint64 { v, _ := strconv.ParseUint(st[k], 10, 64); return v }
	ps := PeerStats{
		Node: n.cfg.Node, State: stateName(n.raft.State()), Term: u("term"),
		LastLogIndex: u("last_log_index"), LastLogTerm: u("last_log_term"), AppliedIndex: n.cfg.FSM.AppliedIndex(),
	}
	if n.raft.State() != raft.Leader {
		ps.LastContactMs = -1
		if lc := n.raft.LastContact(); !lc.IsZero() {
			ps.LastContactMs = time.Since(lc).Milliseconds()
		}
	}
	return ps
}

// fetchStats asks server id at its admin address for its Raft progress.
// The applied index stands for the server's last index: a server is caught
// up when its state machine is, not just its log.
func (a *Autopilot) fetchStats(ctx context.Context, id raft.ServerID, addr string) (*autopilot.ServerStats, error) {
	ps, err := a.n.peers.RaftStats(ctx, addr, statsTimeout)
	if err != nil {
		return nil, err
	}
	if ps.Node != string(id) {
		return nil, fmt.Errorf("%s is node %q, not %q", addr, ps.Node, id)
	}
	out := &autopilot.ServerStats{LastTerm: ps.LastLogTerm, LastIndex: ps.AppliedIndex, LastContact: -1}
	if ps.LastContactMs >= 0 {
		out.LastContact = time.Duration(ps.LastContactMs) * time.Millisecond
	}
	return out, nil
}
