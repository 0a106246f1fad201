package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/nexus/nexus/cluster/member"
)

// nodeMeta is what a node tells its peers through gossip (<= 512 bytes).
type nodeMeta struct {
	Role      string `json:"role"`            // "server"
	RaftAddr  string `json:"raft"`            // host:port of the Raft transport
	HTTPAddr  string `json:"http"`            // admin API
	Gateway   string `json:"gw"`              // gateway listener
	Version   string `json:"v"`               // build version
	ClusterID string `json:"cid,omitempty"`   // set once the node belongs to a cluster
	HasState  bool   `json:"state,omitempty"` // holds Raft state: never bootstrap with it
	Expect    int    `json:"expect,omitempty"`
	// Leaving is gossiped just before a node leaves for good, because
	// memberlist does not tell its event delegate whether a node left or
	// failed.
	Leaving bool `json:"leaving,omitempty"`
	// Commands are the command types this build decodes
	// (command.TypeSet, "1-19,129"): the feature gate (features.go).
	Commands string `json:"cmds,omitempty"`
	// NonVoter: a read replica (Config.NonVoter).
	NonVoter bool `json:"nv,omitempty"`
	// Snapshot is the highest snapshot format the node reads
	// (Config.SnapshotFormat; absent in older builds: format 1).
	Snapshot int `json:"snap,omitempty"`
}

// Member statuses (package member). Gossip (memberlist's event delegate)
// knows alive, failed and left; suspect is shown for an alive member this
// node suspects (suspect.go) and is never stored in memberState.Status.
const (
	StatusAlive   = member.Alive
	StatusSuspect = member.Suspect
	StatusFailed  = member.Failed
	StatusLeft    = member.Left
)

type memberState struct {
	Name    string
	Addr    string
	Status  member.Status
	Meta    nodeMeta
	Changed time.Time
}

type memberEvent struct {
	name   string
	status member.Status
}

// gossip tracks the members memberlist told us about, including failed and
// left ones, which memberlist itself forgets.
type gossip struct {
	n *Node

	mu      sync.RWMutex
	members map[string]*memberState
	meta    nodeMeta

	keyring   *memberlist.Keyring // nil: gossip not encrypted (keyring.go)
	keyringMu sync.Mutex          // serializes keyring operations and saves

	susp *suspicion // which alive members this node suspects (suspect.go)
}

func (n *Node) startGossip() error {
	// LAN tuning: detect a dead node in about 2-3 s instead of ~5 s.
	const probeInterval = 500 * time.Millisecond
	g := &gossip{n: n, members: map[string]*memberState{}, susp: newSuspicion(time.Now, probeInterval)}
	g.meta = nodeMeta{
		Role: "server", RaftAddr: n.raftAddr(), HTTPAddr: n.cfg.HTTPAddr, Gateway: n.cfg.GatewayAddr,
		Version: n.cfg.Version, ClusterID: n.cfg.DataDir.ClusterID(), HasState: n.hasState(), Expect: n.cfg.BootstrapExpect,
		Commands: n.feat.known.String(), NonVoter: n.cfg.NonVoter, Snapshot: n.cfg.SnapshotFormat,
	}
	n.gossip = g

	mc := memberlist.DefaultLANConfig()
	mc.Name = n.cfg.Node
	mc.BindAddr = n.cfg.BindAddr
	mc.BindPort = n.cfg.GossipPort
	mc.AdvertiseAddr = n.cfg.AdvertiseAddr
	mc.AdvertisePort = n.cfg.GossipPort
	mc.ProbeInterval = probeInterval
	mc.ProbeTimeout = 250 * time.Millisecond
	mc.GossipInterval = 100 * time.Millisecond
	mc.SuspicionMult = 3
	mc.Delegate = g
	mc.Events = g
	mc.Merge = g
	mc.Alive = g
	mc.Ping = g
	mc.Logger = log.New(&logWriter{logger: n.logger.With("subsystem", "gossip"), onLine: g.memberlistLine}, "", 0)
	keys, err := n.gossipKeys()
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		kr, err := memberlist.NewKeyring(keys, keys[0])
		if err != nil {
			return fmt.Errorf("gossip encryption key: %w", err)
		}
		mc.Keyring, g.keyring = kr, kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("gossip on %s:%d: %w", n.cfg.BindAddr, n.cfg.GossipPort, err)
	}
	n.ml = ml
	n.wg.Add(1)
	go g.suspectLoop()
	return nil
}

// setMeta updates what this node gossips and pushes it to peers.
// It waits up to wait for the broadcast (memberlist waits forever on 0).
func (g *gossip) setMeta(wait time.Duration, update func(m *nodeMeta)) {
	g.mu.Lock()
	before := g.meta
	update(&g.meta)
	changed := before != g.meta
	g.mu.Unlock()
	if changed && g.n.ml != nil {
		if err := g.n.ml.UpdateNode(wait); err != nil {
			g.n.logger.Warn("gossip meta update failed", "err", err)
		}
	}
}

func (g *gossip) localMeta() nodeMeta {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.meta
}

// NodeMeta implements memberlist.Delegate.
func (g *gossip) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(g.localMeta())
	if len(b) > limit {
		g.n.logger.Error("gossip meta too large", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

// NotifyMsg receives user messages (the gateway exchange); GetBroadcasts,
// LocalState and MergeRemoteState carry nothing.
// travels over gossip yet.
func (g *gossip) NotifyMsg(b []byte)                         { g.n.deliver(b) }
func (g *gossip) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (g *gossip) LocalState(join bool) []byte                { return nil }
func (g *gossip) MergeRemoteState(buf []byte, join bool)     {}

func parseMeta(b []byte) (nodeMeta, bool) {
	var m nodeMeta
	if len(b) == 0 || json.Unmarshal(b, &m) != nil {
		return m, false
	}
	return m, true
}

// NotifyMerge refuses to merge with a cluster that has another identity:
// a data dir of cluster A must never join cluster B.
func (g *gossip) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := g.checkPeer(p); err != nil {
			return err
		}
	}
	return nil
}

// NotifyAlive refuses a single peer of another cluster.
func (g *gossip) NotifyAlive(p *memberlist.Node) error { return g.checkPeer(p) }

func (g *gossip) checkPeer(p *memberlist.Node) error {
	if p.Name == g.n.cfg.Node {
		return nil
	}
	m, ok := parseMeta(p.Meta)
	if !ok {
		return fmt.Errorf("peer %s sent no nexus metadata", p.Name)
	}
	mine := g.localMeta().ClusterID
	if mine != "" && m.ClusterID != "" && mine != m.ClusterID {
		g.n.logger.Error("refusing peer of another cluster", "peer", p.Name, "peer_cluster", m.ClusterID, "cluster", mine)
		return fmt.Errorf("peer %s belongs to cluster %s, this node to %s", p.Name, m.ClusterID, mine)
	}
	return nil
}

// NotifyJoin implements memberlist.EventDelegate.
func (g *gossip) NotifyJoin(node *memberlist.Node) { g.record(node, StatusAlive) }

// NotifyUpdate implements memberlist.EventDelegate.
func (g *gossip) NotifyUpdate(node *memberlist.Node) { g.record(node, StatusAlive) }

// NotifyLeave implements memberlist.EventDelegate: a node that left on
// purpose is "left", one that stopped answering is "failed".
func (g *gossip) NotifyLeave(node *memberlist.Node) {
	status := StatusFailed
	meta, _ := parseMeta(node.Meta)
	g.mu.RLock()
	if prev, ok := g.members[node.Name]; ok && prev.Meta.Leaving {
		meta.Leaving = true
	}
	g.mu.RUnlock()
	if meta.Leaving {
		status = StatusLeft
	}
	g.record(node, status)
}

func (g *gossip) record(node *memberlist.Node, status member.Status) {
	if node.Name == g.n.cfg.Node {
		return
	}
	meta, _ := parseMeta(node.Meta)
	g.mu.Lock()
	prev := g.members[node.Name]
	if status == StatusLeft {
		meta.Leaving = true
	}
	g.members[node.Name] = &memberState{
		Name: node.Name, Addr: net.JoinHostPort(node.Addr.String(), strconv.Itoa(int(node.Port))),
		Status: status, Meta: meta, Changed: time.Now(),
	}
	var suspectSince time.Time
	wasSuspect := false
	if status == StatusAlive {
		g.susp.alive(node.Name)
	} else {
		suspectSince, wasSuspect = g.susp.forget(node.Name)
	}
	g.mu.Unlock()
	if prev == nil || prev.Status != status {
		attrs := []any{"member", node.Name, "addr", node.Addr.String()}
		if wasSuspect {
			attrs = append(attrs, "was", StatusSuspect, "suspect_for", time.Since(suspectSince).Round(time.Millisecond).String())
		}
		g.n.logger.Info("member "+string(status), attrs...)
	}
	g.n.notifyChange()
	// Never block memberlist: the leader also reconciles periodically.
	select {
	case g.n.events <- memberEvent{name: node.Name, status: status}:
	default:
	}
}

// snapshot returns every known member sorted by name.
func (g *gossip) snapshot() []memberState {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]memberState, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (g *gossip) member(name string) (memberState, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	m, ok := g.members[name]
	if !ok {
		return memberState{}, false
	}
	return *m, true
}

// memberByRaftAddr finds the member that advertises a Raft address.
func (g *gossip) memberByRaftAddr(addr string) (memberState, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, m := range g.members {
		if m.Meta.RaftAddr == addr {
			return *m, true
		}
	}
	return memberState{}, false
}

// logWriter turns memberlist's "[LEVEL] memberlist: msg" lines into slog,
// and shows onLine (when set) every line without its level and prefix.
type logWriter struct {
	logger *slog.Logger
	onLine func(line string)
}

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError} {
		if strings.HasPrefix(line, prefix) {
			level = l
			line = strings.TrimSpace(strings.TrimPrefix(line, prefix))
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if w.onLine != nil {
		w.onLine(line)
	}
	w.logger.Log(context.Background(), level, line)
	return len(p), nil
}
