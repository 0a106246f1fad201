package cluster

import (
	"sort"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
)

// promoter is the library's StablePromoter with two changes:
//   - the stabilization time always applies (StablePromoter waives it while
//     autopilot has run for less than that time, so a new leader would
//     promote a server that joined a second ago);
//   - failed servers are removed only after the grace period, failed voters
//     only while the voters stay at or above the minimum quorum, and never
//     "stale" servers (Raft servers the application does not know): every
//     Raft server is a known server here (KnownServers), so a stale one
//     only shows up when reading the configuration failed.
type promoter struct {
	autopilot.StablePromoter
	a *Autopilot
}

// CalculatePromotionsAndDemotions implements autopilot.Promoter: stable
// non-voters are promoted, except read replicas; a read replica that is a
// voter (restarted with --non-voter) is demoted while the other voters
// stay at or above the minimum quorum.
func (p *promoter) CalculatePromotionsAndDemotions(c *autopilot.Config, s *autopilot.State) autopilot.RaftChanges {
	return autopilot.RaftChanges{Promotions: promotable(s, c.ServerStabilizationTime, time.Now()),
		Demotions: demotable(s, int(c.MinQuorum))}
}

// GetNodeTypes implements autopilot.Promoter: the type KnownServers gave
// each server (read-replica for --non-voter), where StablePromoter would
// call every server a voter (and the library writes this back into the
// state the promoter reads).
func (p *promoter) GetNodeTypes(_ *autopilot.Config, s *autopilot.State) map[raft.ServerID]autopilot.NodeType {
	out := make(map[raft.ServerID]autopilot.NodeType, len(s.Servers))
	for id, srv := range s.Servers {
		out[id] = srv.Server.NodeType
		if out[id] == "" {
			out[id] = autopilot.NodeVoter
		}
	}
	return out
}

// demotable lists, sorted, the voters that are read replicas, as many as
// keep voters >= minQuorum (and at least one), never the leader.
func demotable(s *autopilot.State, minQuorum int) []raft.ServerID {
	var out []raft.ServerID
	voters := len(s.Voters)
	for id, srv := range s.Servers {
		if srv.State == autopilot.RaftVoter && srv.Server.NodeType == NodeReadReplica && !srv.Server.IsLeader {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	keep := max(minQuorum, 1)
	if n := voters - keep; n < len(out) {
		out = out[:max(n, 0)]
	}
	return out
}

// FilterFailedServerRemovals implements autopilot.Promoter.
func (p *promoter) FilterFailedServerRemovals(c *autopilot.Config, s *autopilot.State, failed *autopilot.FailedServers) *autopilot.FailedServers {
	return filterRemovals(failed, len(s.Voters), int(c.MinQuorum), p.a.cfg.DeadServerGrace, p.a.missingSince, time.Now())
}

// promotable lists, sorted, the non-voters that have been healthy for at
// least stable.
func promotable(s *autopilot.State, stable time.Duration, now time.Time) []raft.ServerID {
	var out []raft.ServerID
	for id, srv := range s.Servers {
		if srv.State == autopilot.RaftNonVoter && srv.Server.NodeType != NodeReadReplica && srv.Health.IsStable(now, stable) {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// filterRemovals keeps the failed servers that may go now: non-voters once
// down for grace; voters once down for grace and only as many as keep
// voters >= minQuorum; servers that left at once (they asked to). Stale
// servers are never removed here.
func filterRemovals(f *autopilot.FailedServers, voters, minQuorum int, grace time.Duration,
	since func(raft.ServerID) (time.Time, bool), now time.Time) *autopilot.FailedServers {
	out := &autopilot.FailedServers{}
	if f == nil {
		return out
	}
	due := func(srv *autopilot.Server) bool {
		if srv.NodeStatus == autopilot.NodeLeft {
			return true
		}
		t, ok := since(srv.ID)
		return ok && now.Sub(t) >= grace
	}
	for _, srv := range f.FailedNonVoters {
		if due(srv) {
			out.FailedNonVoters = append(out.FailedNonVoters, srv)
		}
	}
	// Voters that left go anyway (reconcile removes them too), so they do
	// not count towards the voters that remain.
	room := voters - minQuorum
	for _, srv := range f.FailedVoters {
		if srv.NodeStatus == autopilot.NodeLeft {
			out.FailedVoters = append(out.FailedVoters, srv)
			room--
		}
	}
	for _, srv := range f.FailedVoters {
		if srv.NodeStatus == autopilot.NodeLeft || !due(srv) || room <= 0 {
			continue
		}
		room--
		out.FailedVoters = append(out.FailedVoters, srv)
	}
	return out
}
