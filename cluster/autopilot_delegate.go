package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"

	"github.com/nexus/nexus/cluster/member"
)

// The methods below implement autopilot.ApplicationIntegration: the
// library asks them for its configuration, the servers gossip knows, their
// Raft stats, and to remove a failed server.

// AutopilotConfig implements autopilot.ApplicationIntegration.
func (a *Autopilot) AutopilotConfig() *autopilot.Config {
	return &autopilot.Config{
		CleanupDeadServers:      true,
		LastContactThreshold:    a.cfg.LastContactThreshold,
		MaxTrailingLogs:         a.cfg.MaxTrailingLogs,
		MinQuorum:               uint(a.minQuorum()),
		ServerStabilizationTime: a.cfg.StabilizationTime,
	}
}

// KnownServers implements autopilot.ApplicationIntegration. Every Raft
// server is reported, those gossip never saw as failed: the library removes
// "stale" servers (in Raft, unknown to the application) at once, without a
// grace period, and a new leader's gossip may not know every member yet.
func (a *Autopilot) KnownServers() map[raft.ServerID]*autopilot.Server {
	now := time.Now()
	self := raft.ServerID(a.n.cfg.Node)
	out := map[raft.ServerID]*autopilot.Server{
		self: {
			ID: self, Name: a.n.cfg.Node, Address: raft.ServerAddress(a.n.raftAddr()), NodeStatus: autopilot.NodeAlive,
			Version: a.n.cfg.Version, Meta: map[string]string{"http": a.n.cfg.HTTPAddr}, RaftVersion: raft.ProtocolVersionMax,
			IsLeader: a.n.raft.State() == raft.Leader, NodeType: nodeType(a.n.cfg.NonVoter),
		},
	}
	since := map[raft.ServerID]time.Time{}
	clusterID, _ := a.n.cfg.Hooks.Identity()
	for _, m := range a.n.gossip.snapshot() {
		if m.Name == a.n.cfg.Node || m.Meta.Role != "server" {
			continue
		}
		if m.Meta.ClusterID != "" && clusterID != "" && m.Meta.ClusterID != clusterID {
			continue
		}
		id := raft.ServerID(m.Name)
		out[id] = &autopilot.Server{
			ID: id, Name: m.Name, Address: raft.ServerAddress(m.Meta.RaftAddr), NodeStatus: nodeStatus(m.Status),
			Version: m.Meta.Version, Meta: map[string]string{"http": m.Meta.HTTPAddr}, RaftVersion: raft.ProtocolVersionMax,
			NodeType: nodeType(m.Meta.NonVoter),
		}
		if m.Status != StatusAlive && !m.Changed.IsZero() && m.Changed.Before(now) {
			since[id] = m.Changed
		}
	}
	if cfg, err := a.n.configuration(); err == nil {
		for _, s := range cfg.Servers {
			if _, ok := out[s.ID]; !ok {
				out[s.ID] = &autopilot.Server{
					ID: s.ID, Name: string(s.ID), Address: s.Address, NodeStatus: autopilot.NodeFailed,
					RaftVersion: raft.ProtocolVersionMax, NodeType: autopilot.NodeVoter,
				}
			}
		}
	}
	a.trackMissing(out, since, now)
	return out
}

// NodeReadReplica is the autopilot node type of a server started with
// --non-voter: never promoted.
const NodeReadReplica autopilot.NodeType = "read-replica"

func nodeType(nonVoter bool) autopilot.NodeType {
	if nonVoter {
		return NodeReadReplica
	}
	return autopilot.NodeVoter
}

func nodeStatus(s member.Status) autopilot.NodeStatus {
	switch s {
	case StatusAlive:
		return autopilot.NodeAlive
	case StatusLeft:
		return autopilot.NodeLeft
	case StatusFailed:
		return autopilot.NodeFailed
	}
	return autopilot.NodeUnknown
}

// trackMissing records since when each server has not been alive: the time
// gossip saw it fail, or the first time this leader noticed it missing.
func (a *Autopilot) trackMissing(servers map[raft.ServerID]*autopilot.Server, since map[raft.ServerID]time.Time, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, s := range servers {
		if s.NodeStatus == autopilot.NodeAlive {
			delete(a.missing, id)
			continue
		}
		if _, ok := a.missing[id]; ok {
			continue
		}
		t, ok := since[id]
		if !ok {
			t = now
		}
		a.missing[id] = t
	}
	for id := range a.missing {
		if _, ok := servers[id]; !ok {
			delete(a.missing, id)
		}
	}
}

// missingSince returns since when server id has not been alive.
func (a *Autopilot) missingSince(id raft.ServerID) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.missing[id]
	return t, ok
}

// NotifyState implements autopilot.ApplicationIntegration: it keeps the
// state for metrics and logs every change of a server's health.
func (a *Autopilot) NotifyState(s *autopilot.State) {
	a.mu.Lock()
	a.state = s
	var changed []*autopilot.ServerState
	for id, srv := range s.Servers {
		prev, seen := a.health[id]
		if (seen && prev != srv.Health.Healthy) || (!seen && !srv.Health.Healthy) {
			changed = append(changed, srv)
		}
		a.health[id] = srv.Health.Healthy
	}
	a.mu.Unlock()
	sort.Slice(changed, func(i, j int) bool { return changed[i].Server.ID < changed[j].Server.ID })
	for _, srv := range changed {
		args := []any{"server", string(srv.Server.ID), "raft", string(srv.State), "gossip", string(srv.Server.NodeStatus),
			"last_contact", srv.Stats.LastContact, "last_term", srv.Stats.LastTerm, "last_index", srv.Stats.LastIndex}
		if srv.Health.Healthy {
			a.log.Info("server healthy", args...)
		} else {
			a.log.Warn("server unhealthy", args...)
		}
	}
}

// FetchServerStats implements autopilot.ApplicationIntegration: the
// leader's own stats come from raft, the others' from their admin API
// (peerproto.PathRaftStats), in parallel and bounded by ctx (the library
// gives half the update interval). A server that does not answer gets a
// negative last contact, so it is unhealthy instead of keeping old stats.
func (a *Autopilot) FetchServerStats(ctx context.Context, servers map[raft.ServerID]*autopilot.Server) map[raft.ServerID]*autopilot.ServerStats {
	out := map[raft.ServerID]*autopilot.ServerStats{}
	type answer struct {
		id    raft.ServerID
		stats *autopilot.ServerStats
	}
	answers := make(chan answer, len(servers))
	pending := 0
	for id, srv := range servers {
		if string(id) == a.n.cfg.Node {
			out[id] = a.localStats()
			continue
		}
		addr := srv.Meta["http"]
		if srv.NodeStatus != autopilot.NodeAlive || addr == "" {
			continue
		}
		pending++
		go func(id raft.ServerID, addr string) {
			st, err := a.fetchStats(ctx, id, addr)
			if err != nil {
				a.log.Debug("fetching raft stats failed", "server", string(id), "addr", addr, "err", err)
				st = &autopilot.ServerStats{LastContact: -1}
			}
			answers <- answer{id, st}
		}(id, addr)
	}
	for ; pending > 0; pending-- {
		ans := <-answers
		out[ans.id] = ans.stats
	}
	return out
}

func (a *Autopilot) localStats() *autopilot.ServerStats {
	lastTerm, _ := strconv.ParseUint(a.n.raft.Stats()["last_log_term"], 10, 64)
	return &autopilot.ServerStats{LastTerm: lastTerm, LastIndex: a.n.raft.LastIndex()}
}

// RemoveFailedServer implements autopilot.ApplicationIntegration. The
// library and the promoter already filtered by grace period and minimum
// quorum; this checks again against the current configuration and gossip
// (the state they used may be a second old) and removes the server,
// bounded by the apply timeout.
func (a *Autopilot) RemoveFailedServer(srv *autopilot.Server) {
	id := srv.ID
	if string(id) == a.n.cfg.Node {
		return
	}
	reason := "failed"
	if m, ok := a.n.gossip.member(string(id)); ok {
		if m.Status == StatusAlive {
			a.log.Info("not removing server: alive again", "server", string(id))
			return
		}
		if m.Status == StatusLeft {
			reason = "left"
		}
	} else {
		reason = "unknown"
	}
	cfg, err := a.n.configuration()
	if err != nil {
		a.log.Warn("not removing server: reading configuration failed", "server", string(id), "err", err)
		return
	}
	voters, isVoter, present := 0, false, false
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
		if s.ID == id {
			present, isVoter = true, s.Suffrage == raft.Voter
		}
	}
	if !present {
		return
	}
	if q := a.minQuorum(); isVoter && reason != "left" && voters-1 < q {
		a.log.Info("not removing failed voter: voters would fall below min_quorum", "server", string(id), "voters", voters, "min_quorum", q)
		return
	}
	var downFor time.Duration
	if down, ok := a.missingSince(id); ok {
		downFor = time.Since(down).Round(time.Millisecond)
	}
	f := a.n.raft.RemoveServer(id, 0, a.n.cfg.ApplyTimeout)
	if err := waitFuture(context.Background(), f, a.n.cfg.ApplyTimeout); err != nil {
		if !errors.Is(err, raft.ErrNotLeader) {
			a.log.Warn("removing failed server failed", "server", string(id), "err", err)
		}
		return
	}
	a.m.removals.WithLabelValues(reason).Inc()
	a.log.Info("removed server from raft", "server", string(id), "reason", reason, "voter", isVoter,
		"down_for", downFor, "index", f.Index())
}

// statsTimeout caps one stats request even when the caller's deadline is
// further away.
const statsTimeout = time.Second

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
