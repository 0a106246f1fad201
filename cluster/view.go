package cluster

import (
	"github.com/hashicorp/raft"
)

// IsLeader reports whether this node is the Raft leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// MemberStatuses maps every member gossip has seen (this node included) to
// alive, failed or left.
func (n *Node) MemberStatuses() map[string]string {
	out := map[string]string{n.cfg.Node: StatusAlive}
	for _, m := range n.gossip.snapshot() {
		out[m.Name] = m.Status
	}
	return out
}

// MemberHTTPAddr returns the admin API address a member advertises.
func (n *Node) MemberHTTPAddr(name string) (string, bool) {
	if name == n.cfg.Node {
		return n.cfg.HTTPAddr, true
	}
	m, ok := n.gossip.member(name)
	if !ok || m.Meta.HTTPAddr == "" {
		return "", false
	}
	return m.Meta.HTTPAddr, true
}

// Changes is signalled, coalesced, on every membership or leadership change.
func (n *Node) Changes() <-chan struct{} { return n.changes }

func (n *Node) notifyChange() {
	select {
	case n.changes <- struct{}{}:
	default:
	}
}
