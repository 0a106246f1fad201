package cluster

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/fsm/command"
)

// featureLogEvery bounds the refusal log to one line per feature per
// period (a client retrying in a loop must not flood the log).
const featureLogEvery = 30 * time.Second

// featureGate refuses writes of gated command types (command.Gates) until
// every server of the Raft configuration gossips that it decodes the type
// (nodeMeta.Commands). It sits at the entry of the write path, Node.Apply,
// which every write of this node takes before it is applied here or
// forwarded to the leader: an older leader or follower never sees the
// entry, so it never meets a type it would stop on. Non-voters count as
// well as voters: they apply the same log.
type featureGate struct {
	gates    map[command.Type]string
	known    command.TypeSet
	refusals *prometheus.CounterVec

	mu       sync.Mutex
	loggedAt map[string]time.Time
}

func newFeatureGate(n *Node) *featureGate {
	g := &featureGate{gates: n.cfg.Gates, known: command.KnownTypes(), loggedAt: map[string]time.Time{}}
	if g.gates == nil {
		g.gates = command.Gates()
	}
	if n.cfg.Commands != nil {
		g.known = *n.cfg.Commands
	}
	g.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nexus_feature_refusals_total",
		Help: "Writes of a gated feature refused (409 feature_unavailable) because some Raft server does not know its command type yet.",
	}, []string{"feature"})
	n.cfg.Registerer.MustRegister(g.refusals)
	byFeature := map[string]command.Type{}
	for t, f := range g.gates {
		if cur, ok := byFeature[f]; !ok || t < cur {
			byFeature[f] = t
		}
	}
	for f, t := range byFeature {
		g.refusals.WithLabelValues(f)
		n.cfg.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "nexus_feature_available",
			Help:        "1 when every Raft server gossips that it knows the feature's command types (its writes are accepted), else 0.",
			ConstLabels: prometheus.Labels{"feature": f},
		}, func() float64 {
			if len(n.lacking(t)) == 0 {
				return 1
			}
			return 0
		}))
	}
	return g
}

// check returns a *command.FeatureError for a command of a gated type
// while some Raft server lacks it, nil otherwise.
func (n *Node) checkFeature(cmd []byte) error {
	g := n.feat
	if len(cmd) == 0 {
		return nil
	}
	t := command.Type(cmd[0])
	feature, gated := g.gates[t]
	if !gated {
		return nil
	}
	missing := n.lacking(t)
	if len(missing) == 0 {
		return nil
	}
	g.refusals.WithLabelValues(feature).Inc()
	g.mu.Lock()
	now := time.Now()
	logIt := now.Sub(g.loggedAt[feature]) >= featureLogEvery
	if logIt {
		g.loggedAt[feature] = now
	}
	g.mu.Unlock()
	if logIt {
		n.logger.Warn("refused a write of a feature that some Raft servers do not know yet (finish the rolling upgrade)",
			"feature", feature, "command", t.String(), "missing", missing)
	}
	return &command.FeatureError{Feature: feature, Type: t, Missing: missing}
}

// lacking lists the servers of the Raft configuration that do not gossip
// t among the types they decode, each with what it runs, sorted. A server
// gossip has never seen lacks everything: it may be an older build.
func (n *Node) lacking(t command.Type) []string {
	cfg, err := n.configuration()
	if err != nil {
		return []string{"(the Raft configuration is unavailable: " + err.Error() + ")"}
	}
	var out []string
	for _, s := range cfg.Servers {
		id := string(s.ID)
		if id == n.cfg.Node {
			if !n.feat.known.Has(t) {
				out = append(out, id+" (this node)")
			}
			continue
		}
		m, ok := n.gossip.member(id)
		if !ok {
			out = append(out, id+" (not seen in gossip)")
			continue
		}
		if m.Meta.Commands == "" {
			out = append(out, id+" (version "+m.Meta.Version+", which predates feature gating)")
			continue
		}
		known, err := command.ParseTypeSet(m.Meta.Commands)
		if err != nil || !known.Has(t) {
			out = append(out, id+" (version "+m.Meta.Version+")")
		}
	}
	sort.Strings(out)
	return out
}

// SnapshotFormat is the snapshot format this node may write: the highest
// one that every server of the Raft configuration reads, as gossiped
// (nodeMeta.Snapshot). A Raft snapshot is sent as is to a follower that
// needs it, so one server of an older build, or one gossip has not seen,
// keeps the cluster on format 1.
func (n *Node) SnapshotFormat() int {
	format := max(n.cfg.SnapshotFormat, 1)
	if n.gossip == nil {
		return 1
	}
	cfg, err := n.configuration()
	if err != nil {
		return 1
	}
	for _, s := range cfg.Servers {
		if string(s.ID) == n.cfg.Node {
			continue
		}
		m, ok := n.gossip.member(string(s.ID))
		if !ok {
			return 1
		}
		format = min(format, max(m.Meta.Snapshot, 1))
	}
	return format
}
