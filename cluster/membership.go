package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// joinLoop retries --join until this node has met another member. Joining
// the node itself is allowed and simply does not count.
//
// It joins at least once even when gossip from the others reached this
// node first: a node restarted on the same address is still alive in the
// others' tables with its old incarnation and metadata, and its own alive
// message (a lower incarnation) is ignored. Only the push/pull of a join
// shows it that state at once, so it refutes it with its new metadata
// (version, command types) instead of after the next periodic push/pull,
// up to 30 s later.
func (n *Node) joinLoop() {
	defer n.wg.Done()
	if len(n.cfg.Join) == 0 {
		return
	}
	backoff := 200 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt > 0 && n.ml.NumMembers() > 1 {
			return
		}
		var others []string
		for _, a := range n.cfg.Join {
			if a != n.gossipAddr() {
				others = append(others, a)
			}
		}
		if len(others) == 0 {
			return
		}
		joined, err := n.ml.Join(others)
		if joined > 0 && n.ml.NumMembers() > 1 {
			n.logger.Info("joined cluster", "contacted", joined, "members", n.ml.NumMembers())
			return
		}
		n.logger.Debug("join failed, retrying", "join", others, "err", err, "backoff", backoff)
		select {
		case <-n.stopCh:
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func (n *Node) gossipAddr() string {
	return joinHostPort(n.cfg.AdvertiseAddr, n.cfg.GossipPort)
}

// bootstrapLoop bootstraps Raft exactly once in the cluster's life: when this
// node has no Raft state and sees --bootstrap-expect servers, none of which
// holds Raft state, it bootstraps with all of them. Every one of them reaches
// the same configuration, so whoever bootstraps first, the result is the same.
func (n *Node) bootstrapLoop() {
	defer n.wg.Done()
	if n.cfg.BootstrapExpect <= 0 || n.cfg.NonVoter || n.hasState() {
		return
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-n.stopCh:
			return
		case <-tick.C:
		}
		if n.hasState() {
			return
		}
		servers, blocked := n.bootstrapCandidates()
		if blocked != "" {
			n.logger.Info("not bootstrapping: a peer already holds Raft state; waiting to be added by its leader", "peer", blocked)
			return
		}
		if len(servers) < n.cfg.BootstrapExpect {
			continue
		}
		f := n.raft.BootstrapCluster(raft.Configuration{Servers: servers})
		if err := waitFuture(context.Background(), f, 10*time.Second); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			n.logger.Error("bootstrap failed", "err", err)
			continue
		}
		ids := make([]string, len(servers))
		for i, s := range servers {
			ids[i] = string(s.ID)
		}
		n.logger.Info("bootstrapped raft cluster", "servers", ids)
		n.gossip.setMeta(2*time.Second, func(m *nodeMeta) { m.HasState = true })
		return
	}
}

// bootstrapCandidates lists alive servers (this node included) as voters,
// sorted by id. blocked names a peer that already holds Raft state.
func (n *Node) bootstrapCandidates() ([]raft.Server, string) {
	servers := []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.Node), Address: raft.ServerAddress(n.raftAddr())}}
	for _, m := range n.gossip.snapshot() {
		if m.Name == n.cfg.Node || m.Status != StatusAlive || m.Meta.Role != "server" || m.Meta.NonVoter {
			continue
		}
		if m.Meta.HasState || m.Meta.ClusterID != "" {
			return nil, m.Name
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.Name), Address: raft.ServerAddress(m.Meta.RaftAddr)})
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	return servers, ""
}

// reconcile makes Raft membership follow gossip: alive servers of this
// cluster that Raft does not know join as non-voters (the Autopilot promotes
// them once they are caught up and stable), a server whose Raft address
// changed is updated with its suffrage kept, servers that left are removed.
// Failed servers stay (a stop is not a leave); removing them is the
// Autopilot's call after its grace period, or an operator's.
func (n *Node) reconcile() {
	cfg, err := n.configuration()
	if err != nil {
		n.logger.Warn("reconcile: reading configuration failed", "err", err)
		return
	}
	inRaft := map[string]raft.Server{}
	for _, s := range cfg.Servers {
		inRaft[string(s.ID)] = s
	}
	clusterID, _ := n.cfg.Hooks.Identity()
	for _, m := range n.gossip.snapshot() {
		if m.Name == n.cfg.Node || m.Meta.Role != "server" {
			continue
		}
		cur, present := inRaft[m.Name]
		switch m.Status {
		case StatusAlive:
			if m.Meta.ClusterID != "" && clusterID != "" && m.Meta.ClusterID != clusterID {
				continue
			}
			n.reconcileAlive(m, cur, present)
		case StatusLeft:
			if !present {
				continue
			}
			f := n.raft.RemoveServer(raft.ServerID(m.Name), 0, n.cfg.ApplyTimeout)
			if err := waitFuture(context.Background(), f, n.cfg.ApplyTimeout); err != nil {
				n.logger.Warn("removing server that left failed", "member", m.Name, "err", err)
			} else {
				n.logger.Info("removed server that left", "member", m.Name)
			}
		}
	}
}

// reconcileAlive adds an alive server Raft does not know as a non-voter, or
// updates the address of one it knows, keeping its suffrage.
func (n *Node) reconcileAlive(m memberState, cur raft.Server, present bool) {
	addr := raft.ServerAddress(m.Meta.RaftAddr)
	if addr == "" || (present && cur.Address == addr) {
		return
	}
	var f raft.IndexFuture
	what := "added non-voter (autopilot promotes it once caught up and stable)"
	if present && cur.Suffrage == raft.Voter {
		f = n.raft.AddVoter(raft.ServerID(m.Name), addr, 0, n.cfg.ApplyTimeout)
		what = "updated voter address"
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(m.Name), addr, 0, n.cfg.ApplyTimeout)
		if present {
			what = "updated non-voter address"
		}
	}
	if err := waitFuture(context.Background(), f, n.cfg.ApplyTimeout); err != nil {
		n.logger.Warn("reconcile: changing raft membership failed", "member", m.Name, "raft_addr", addr, "err", err)
		return
	}
	n.logger.Info(what, "member", m.Name, "raft_addr", addr, "index", f.Index())
}

// Leave makes this node leave for good: it hands over leadership, tells the
// cluster it leaves through gossip so that the leader removes it from Raft,
// and waits until it is out of the configuration.
//
// The leader removes a leaving server when gossip tells it the server
// left. Under load the leave can reach the leader as a failure (its meta
// update, Leaving, came after the dead message), and a failed server is
// only removed after autopilot's grace; so once the leave has waited
// leaveRelayAfter, it also asks the leader to remove this node, with the
// credentials of the leave request (relay), as `nexus raft remove-peer`
// would. The leader refuses while it still sees this node alive.
func (n *Node) Leave(ctx context.Context, relay Relay) error {
	n.mu.Lock()
	n.leaving = true
	n.mu.Unlock()
	if n.raft.State() == raft.Leader && n.numVoters() > 1 {
		if err := waitFuture(ctx, n.raft.LeadershipTransfer(), 10*time.Second); err != nil {
			return err
		}
	}
	// Tell peers this is a leave, not a failure, then broadcast the leave.
	n.gossip.setMeta(3*time.Second, func(m *nodeMeta) { m.Leaving = true })
	if err := n.ml.Leave(5 * time.Second); err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	asked := time.Now() // gossip first
	for time.Now().Before(deadline) {
		cfg, err := n.configuration()
		if err == nil {
			still := false
			for _, s := range cfg.Servers {
				if string(s.ID) == n.cfg.Node {
					still = true
				}
			}
			if !still || len(cfg.Servers) == 1 {
				n.logger.Info("left the cluster")
				return nil
			}
			// Ask (again) every leaveRelayAfter: the leader refuses while
			// it still sees this node alive.
			if time.Since(asked) >= leaveRelayAfter && n.raft.State() != raft.Leader {
				asked = time.Now()
				if _, err := n.RemovePeer(ctx, n.cfg.Node, relay); err != nil {
					n.logger.Warn("asking the leader to remove this leaving node failed; waiting for gossip", "err", err)
				} else {
					n.logger.Info("the leader removed this leaving node at its request")
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("timed out waiting for the leader to remove this node from raft")
}

// leaveRelayAfter is how long a leave waits for gossip before it asks
// the leader directly, and then how long between two asks.
const leaveRelayAfter = 3 * time.Second

func randomHex(nbytes int) string {
	b := make([]byte, nbytes)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// identityLoop records the cluster id in the data dir and in gossip once the
// bootstrap entry has applied here, so that this node never merges with
// another cluster and never takes part in a second bootstrap.
func (n *Node) identityLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-n.stopCh:
			return
		case <-tick.C:
		}
		id, _ := n.cfg.Hooks.Identity()
		if id == "" {
			continue
		}
		if err := n.cfg.DataDir.SetClusterID(id); err != nil {
			n.logger.Error("cluster identity conflict", "err", err)
			return
		}
		n.gossip.setMeta(2*time.Second, func(m *nodeMeta) { m.ClusterID = id; m.HasState = true })
		return
	}
}
