package cluster

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
)

// Defaults of AutopilotConfig.
const (
	DefaultStabilizationTime    = 10 * time.Second
	DefaultDeadServerGrace      = 5 * time.Minute
	DefaultMaxTrailingLogs      = 250
	DefaultLastContactThreshold = time.Second
	DefaultAutopilotInterval    = time.Second
)

// AutopilotConfig is the leader's Raft membership policy. Zero values take
// the defaults above.
type AutopilotConfig struct {
	// StabilizationTime is how long a non-voter must stay healthy (alive in
	// gossip, in contact with the leader, caught up) before it is promoted.
	StabilizationTime time.Duration
	// DeadServerGrace is how long a server must be failed (or absent from
	// gossip) before autopilot removes it from Raft.
	DeadServerGrace time.Duration
	// MinQuorum: a failed voter is never removed when fewer voters would
	// remain. 0 means this node's --bootstrap-expect, or the largest one
	// the servers of this cluster gossip when that is larger.
	MinQuorum int
	// MaxTrailingLogs: a server whose applied index lags the leader's last
	// index by more is not healthy (not promoted).
	MaxTrailingLogs uint64
	// LastContactThreshold: a server that has not heard from the leader
	// for longer is not healthy.
	LastContactThreshold time.Duration
	// UpdateInterval is how often the leader refreshes server health;
	// ReconcileInterval how often it promotes and removes servers.
	UpdateInterval    time.Duration
	ReconcileInterval time.Duration
}

func (c *AutopilotConfig) setDefaults() {
	if c.StabilizationTime <= 0 {
		c.StabilizationTime = DefaultStabilizationTime
	}
	if c.DeadServerGrace <= 0 {
		c.DeadServerGrace = DefaultDeadServerGrace
	}
	if c.MaxTrailingLogs == 0 {
		c.MaxTrailingLogs = DefaultMaxTrailingLogs
	}
	if c.LastContactThreshold <= 0 {
		c.LastContactThreshold = DefaultLastContactThreshold
	}
	if c.UpdateInterval <= 0 {
		c.UpdateInterval = DefaultAutopilotInterval
	}
	if c.ReconcileInterval <= 0 {
		c.ReconcileInterval = DefaultAutopilotInterval
	}
}

// Autopilot runs hashicorp/raft-autopilot while this node leads: it
// promotes non-voters (added by reconcile) once they are healthy and stable,
// and removes servers that have been failed for longer than the grace period
// while the voters stay at or above the minimum quorum. It is a leader Duty:
// the agent builds one per node and passes it to Node.Start.
type Autopilot struct {
	n   *Node
	cfg AutopilotConfig
	log *slog.Logger
	lib *autopilot.Autopilot
	m   *autopilotMetrics

	mu      sync.Mutex
	missing map[raft.ServerID]time.Time // since when a server is failed or unknown to gossip
	health  map[raft.ServerID]bool      // last health seen, to log changes
	state   *autopilot.State            // last state, for metrics
}

// NewAutopilot builds the autopilot of node n and registers its metrics on
// the node's registerer. Pass it to n.Start to run it while n leads.
func NewAutopilot(n *Node, cfg AutopilotConfig) (*Autopilot, error) {
	cfg.setDefaults()
	a := &Autopilot{
		n:       n,
		cfg:     cfg,
		log:     n.logger.With("subsystem", "autopilot"),
		missing: map[raft.ServerID]time.Time{},
		health:  map[raft.ServerID]bool{},
	}
	m, err := newAutopilotMetrics(n.cfg.Registerer, a)
	if err != nil {
		return nil, err
	}
	a.m = m
	out := n.cfg.LogOutput
	if out == nil {
		out = io.Discard
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name: "autopilot", Output: out, JSONFormat: true, Level: hclogLevel(n.cfg.LogLevel),
	})
	a.lib = autopilot.New(&boundedRaft{n: n, timeout: n.cfg.ApplyTimeout, onPromote: a.promoted}, a,
		autopilot.WithLogger(logger),
		autopilot.WithPromoter(&promoter{a: a}),
		autopilot.WithUpdateInterval(cfg.UpdateInterval),
		autopilot.WithReconcileInterval(cfg.ReconcileInterval),
	)
	return a, nil
}

// Config returns the effective policy (defaults applied).
func (a *Autopilot) Config() AutopilotConfig { return a.cfg }

// Name implements Duty.
func (a *Autopilot) Name() string { return "autopilot" }

// Run implements Duty: the library's loops run until ctx ends (this node
// lost leadership or stops), then they are stopped (bounded) and what this
// leadership observed (down-since times, health) is forgotten.
func (a *Autopilot) Run(ctx context.Context) {
	a.reset()
	a.lib.Start(ctx)
	a.log.Info("autopilot running", "stabilization_time", a.cfg.StabilizationTime,
		"dead_server_grace", a.cfg.DeadServerGrace, "min_quorum", a.minQuorum())
	<-ctx.Done()
	select {
	case <-a.lib.Stop():
	case <-time.After(2*a.n.cfg.ApplyTimeout + time.Second):
		a.log.Warn("autopilot loops did not stop in time")
	}
	a.reset()
	a.log.Info("autopilot stopped (not leader)")
}

// reset forgets what one leadership observed.
func (a *Autopilot) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.missing = map[raft.ServerID]time.Time{}
	a.health = map[raft.ServerID]bool{}
	a.state = nil
}

// minQuorum is the effective minimum number of voters (see MinQuorum).
func (a *Autopilot) minQuorum() int {
	if a.cfg.MinQuorum > 0 {
		return a.cfg.MinQuorum
	}
	q := a.n.cfg.BootstrapExpect
	clusterID, _ := a.n.cfg.Hooks.Identity()
	for _, m := range a.n.gossip.snapshot() {
		if m.Meta.Role != "server" || (m.Meta.ClusterID != "" && clusterID != "" && m.Meta.ClusterID != clusterID) {
			continue
		}
		q = max(q, m.Meta.Expect)
	}
	return q
}

// promoted counts and logs a promotion made by the library.
func (a *Autopilot) promoted(id raft.ServerID) {
	a.m.promotions.Inc()
	a.log.Info("promoted server to voter", "server", string(id), "stabilization_time", a.cfg.StabilizationTime)
}
