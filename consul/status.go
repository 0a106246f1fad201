package consul

import (
	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/registry"
)

// GET /v1/status/leader: the leader's Raft address, "" without a leader.
// Open, as /cluster/leader.
func (s *Server) statusLeader(r *request) {
	r.json(s.cluster.LeaderRaftAddr())
}

// GET /v1/status/peers: the Raft addresses of the voters.
func (s *Server) statusPeers(r *request) {
	if !r.check(registry.ACLResourceCluster, "", acl.Read) {
		return
	}
	peers := s.cluster.RaftPeers()
	if peers == nil {
		peers = []string{}
	}
	r.json(peers)
}
