package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
	"github.com/valyala/fasthttp"
)

// RaftStatsPath is the admin API path where a server reports its Raft
// progress to the leader's autopilot (GET, JSON PeerStats).
const RaftStatsPath = "/internal/raft-stats"

// statsTimeout caps one stats request even when the caller's deadline is
// further away.
const statsTimeout = time.Second

// PeerStats is a server's Raft progress, as GET /internal/raft-stats
// answers it.
type PeerStats struct {
	Node         string `json:"node"`
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	LastLogIndex uint64 `json:"last_log_index"`
	LastLogTerm  uint64 `json:"last_log_term"`
	AppliedIndex uint64 `json:"applied_index"`
	// LastContactMs is the time since this server last heard from the
	// leader: 0 on the leader, -1 if never.
	LastContactMs int64 `json:"last_contact_ms"`
}

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
	timeout := statsTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(a.n.cfg.Peer.url(addr, RaftStatsPath))
	req.Header.SetMethod(fasthttp.MethodGet)
	if err := a.client.DoTimeout(req, resp, timeout); err != nil {
		return nil, err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, fmt.Errorf("%s answered %d", addr, resp.StatusCode())
	}
	var ps PeerStats
	if err := json.Unmarshal(resp.Body(), &ps); err != nil {
		return nil, fmt.Errorf("undecodable stats from %s: %w", addr, err)
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
