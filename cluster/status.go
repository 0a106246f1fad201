package cluster

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/cluster/member"
)

// NodeName returns this node's name (its Raft server id).
func (n *Node) NodeName() string { return n.cfg.Node }

func (n *Node) term() uint64 {
	t, _ := strconv.ParseUint(n.raft.Stats()["term"], 10, 64)
	return t
}

// RaftInfo is the Raft view of this node.
type RaftInfo struct {
	State        string
	Term         uint64
	Leader       string
	LeaderAddr   string
	CommitIndex  uint64
	AppliedIndex uint64
	LastContact  time.Duration
	Servers      []ServerInfo
}

// ServerInfo is one server of the Raft configuration.
type ServerInfo struct {
	ID       string
	Address  string
	Suffrage string
	Leader   bool
}

// Raft returns the Raft view of this node.
func (n *Node) Raft() RaftInfo {
	addr, id := n.raft.LeaderWithID()
	info := RaftInfo{
		State:        stateName(n.raft.State()),
		Term:         n.term(),
		Leader:       string(id),
		LeaderAddr:   string(addr),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.cfg.FSM.AppliedIndex(),
	}
	if n.raft.State() != raft.Leader {
		if lc := n.raft.LastContact(); !lc.IsZero() {
			info.LastContact = time.Since(lc)
		}
	}
	if cfg, err := n.configuration(); err == nil {
		for _, s := range cfg.Servers {
			info.Servers = append(info.Servers, ServerInfo{
				ID: string(s.ID), Address: string(s.Address), Suffrage: suffrageName(s.Suffrage), Leader: s.ID == id,
			})
		}
	}
	return info
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	case raft.Shutdown:
		return "shutdown"
	}
	return "unknown"
}

func suffrageName(s raft.ServerSuffrage) string {
	switch s {
	case raft.Voter:
		return "voter"
	case raft.Nonvoter:
		return "nonvoter"
	}
	return "staging"
}

// MemberInfo is one member as gossip and Raft see it.
type MemberInfo struct {
	Name        string
	Address     string
	Status      member.Status
	Raft        string
	HTTPAddr    string
	GatewayAddr string
	Version     string
}

// Members returns gossip members side by side with their Raft role. Raft
// servers that gossip never saw are listed as failed; alive members this
// node suspects as suspect.
func (n *Node) Members() []MemberInfo {
	roles := map[string]string{}
	_, leaderID := n.raft.LeaderWithID()
	if cfg, err := n.configuration(); err == nil {
		for _, s := range cfg.Servers {
			role := suffrageName(s.Suffrage)
			if s.ID == leaderID {
				role = "leader"
			}
			roles[string(s.ID)] = role
		}
	}
	seen := map[string]bool{}
	var out []MemberInfo
	self := n.gossip.localMeta()
	out = append(out, MemberInfo{
		Name: n.cfg.Node, Address: n.gossipAddr(), Status: StatusAlive, Raft: roleOr(roles, n.cfg.Node),
		HTTPAddr: self.HTTPAddr, GatewayAddr: self.Gateway, Version: self.Version,
	})
	seen[n.cfg.Node] = true
	suspects := n.gossip.susp.suspects()
	for _, m := range n.gossip.snapshot() {
		if seen[m.Name] {
			continue
		}
		seen[m.Name] = true
		_, suspect := suspects[m.Name]
		out = append(out, MemberInfo{
			Name: m.Name, Address: m.Addr, Status: displayStatus(m.Status, suspect), Raft: roleOr(roles, m.Name),
			HTTPAddr: m.Meta.HTTPAddr, GatewayAddr: m.Meta.Gateway, Version: m.Meta.Version,
		})
	}
	for id, role := range roles {
		if !seen[id] {
			out = append(out, MemberInfo{Name: id, Status: StatusFailed, Raft: role})
		}
	}
	sortMembers(out)
	return out
}

func roleOr(roles map[string]string, id string) string {
	if r, ok := roles[id]; ok {
		return r
	}
	return "none"
}

func sortMembers(ms []MemberInfo) {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && ms[j].Name < ms[j-1].Name; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

// LeaderInfo is the known leader.
type LeaderInfo struct {
	Node     string
	RaftAddr string
	HTTPAddr string
}

// Leader returns the leader this node knows, if any.
func (n *Node) Leader() (LeaderInfo, bool) {
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return LeaderInfo{}, false
	}
	li := LeaderInfo{Node: string(id), RaftAddr: string(addr)}
	if string(id) == n.cfg.Node {
		li.HTTPAddr = n.cfg.HTTPAddr
	} else if m, ok := n.leaderMember(string(id), string(addr)); ok {
		li.HTTPAddr = m.Meta.HTTPAddr
	}
	return li, true
}

// Ready reports whether this node knows a leader, holds the cluster
// identity (without it a follower cannot sign what it forwards) and has
// applied everything committed before the call: the leader once its term
// barrier applied, a follower once it applied the leader's read index. A
// restarted follower's own commit index says nothing until the leader's
// first append reaches it, so it asks the leader.
func (n *Node) Ready() bool {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return false
	}
	if cid, _ := n.cfg.Hooks.Identity(); cid == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if n.raft.State() == raft.Leader {
		return n.leaderReady()
	}
	idx, err := n.remoteReadIndex(ctx)
	return err == nil && n.cfg.FSM.AppliedIndex() >= idx
}

// Contact is cheap enough for every response: whether a leader is known and
// how long ago this node heard from it (0 on the leader).
func (n *Node) Contact() (bool, time.Duration) {
	_, id := n.raft.LeaderWithID()
	if n.raft.State() == raft.Leader {
		return true, 0
	}
	var since time.Duration
	if lc := n.raft.LastContact(); !lc.IsZero() {
		since = time.Since(lc)
	}
	return id != "", since
}

// Done is closed when the node has been stopped.
func (n *Node) Done() <-chan struct{} { return n.stopCh }

type metrics struct {
	consistentReads     *prometheus.HistogramVec
	readIndexRounds     prometheus.Counter
	commitNudges        prometheus.Counter
	commitNotices       *prometheus.CounterVec
	commitNoticeSeconds prometheus.Histogram
	noLeaderRetries     prometheus.Counter
	leadershipLost      *prometheus.CounterVec
	snapshotThreshold   prometheus.Gauge
	leaderChanges       prometheus.Counter
	applyLatency        *prometheus.HistogramVec
	duties              *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, n *Node) *metrics {
	m := &metrics{
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_raft_leadership_changes_total", Help: "Times this node gained or lost leadership.",
		}),
		applyLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nexus_raft_apply_duration_seconds", Help: "Time to commit and apply a write, forwarding included, by outcome.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10},
		}, []string{"outcome"}),
		duties: newDutyGauge(),
	}
	m.consistentReads = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "nexus_consistent_read_duration_seconds", Help: "Time to make a read linearizable (read index, quorum check, apply wait), by outcome.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2},
	}, []string{"outcome"})
	m.readIndexRounds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nexus_read_index_rounds_total", Help: "Read-index rounds this node ran for consistent reads (concurrent reads share a round).",
	})
	m.commitNudges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nexus_raft_commit_nudges_total", Help: "No-op entries the leader appended after a lone forwarded write so that followers learn its commit at once.",
	})
	m.commitNotices = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nexus_raft_commit_notices_total",
		Help: "Commit notices (an AppendEntries with no entries) the leader sent to the follower that forwarded a lone write, by result: delivered, refused, failed (then a no-op entry is appended instead).",
	}, []string{"result"})
	m.commitNoticeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "nexus_raft_commit_notice_seconds", Help: "Round trip of a delivered commit notice.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1},
	})
	m.noLeaderRetries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nexus_write_no_leader_retries_total",
		Help: "Writes tried again because the node they went to was no longer leader or unreachable, before anything was dispatched (an election).",
	})
	m.leadershipLost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nexus_write_leadership_lost_total",
		Help: "Writes in flight on this node when it lost leadership, by what became of them: applied (the next leader committed them; answered with their result), not_applied (replaced; sent again to the next leader), unknown (answered 504 outcome_unknown).",
	}, []string{"outcome"})
	for _, o := range []string{lostApplied, lostNotApplied, lostUnknown} {
		m.leadershipLost.WithLabelValues(o)
	}
	m.snapshotThreshold = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nexus_raft_snapshot_threshold",
		Help: "Log entries after which this node snapshots: the configured threshold, or an eighth of the objects in its state when that is more.",
	})
	reg.MustRegister(m.leaderChanges, m.duties, m.applyLatency, m.consistentReads, m.readIndexRounds, m.commitNudges, m.commitNotices, m.commitNoticeSeconds, m.noLeaderRetries,
		m.leadershipLost, m.snapshotThreshold, newForwardCollector(n.peers.ForwardStats), &memberStatusCollector{
			n:    n,
			desc: prometheus.NewDesc("nexus_gossip_members", "Gossip members by status (alive, suspect, failed, left), as this node sees them.", []string{"status"}, nil),
		})
	return m
}

func (m *metrics) observeApply(start time.Time, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case isErr(err, ErrNoLeader):
		outcome = "no_leader"
	case isErr(err, ErrNotApplied):
		outcome = "not_applied"
	default:
		outcome = "unknown"
	}
	m.applyLatency.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
}

func isErr(err, target error) bool { return errors.Is(err, target) }
