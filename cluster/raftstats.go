package cluster

import (
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/cluster/peerproto"
)

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
