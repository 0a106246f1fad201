package cluster

import (
	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/cluster/member"
)

// IsLeader reports whether this node is the Raft leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// MemberStatuses maps every member gossip has seen (this node included) to
// alive, suspect, failed or left. Suspect is this node's suspicion of a
// member gossip still holds alive (suspect.go): it is not a failure.
func (n *Node) MemberStatuses() map[string]member.Status {
	out := map[string]member.Status{n.cfg.Node: StatusAlive}
	suspects := n.gossip.susp.suspects()
	for _, m := range n.gossip.snapshot() {
		_, suspect := suspects[m.Name]
		out[m.Name] = displayStatus(m.Status, suspect)
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
