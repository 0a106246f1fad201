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
	"github.com/valyala/fasthttp"
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
// while the voters stay at or above the minimum quorum. cmd builds one per
// node and starts it; it is idle on followers.
type Autopilot struct {
	n      *Node
	cfg    AutopilotConfig
	log    *slog.Logger
	lib    *autopilot.Autopilot
	m      *autopilotMetrics
	client *fasthttp.Client // stats requests to the other servers

	mu      sync.Mutex
	missing map[raft.ServerID]time.Time // since when a server is failed or unknown to gossip
	health  map[raft.ServerID]bool      // last health seen, to log changes
	state   *autopilot.State            // last state, for metrics

	runMu  sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewAutopilot builds the autopilot of node n and registers its metrics on
// the node's registerer. Call Start to run it.
func NewAutopilot(n *Node, cfg AutopilotConfig) (*Autopilot, error) {
	cfg.setDefaults()
	a := &Autopilot{
		n:       n,
		cfg:     cfg,
		log:     n.logger.With("subsystem", "autopilot"),
		missing: map[raft.ServerID]time.Time{},
		health:  map[raft.ServerID]bool{},
		client: &fasthttp.Client{
			Name:                     "nexus-autopilot",
			MaxConnsPerHost:          4,
			MaxIdleConnDuration:      30 * time.Second,
			ReadTimeout:              2 * time.Second,
			WriteTimeout:             2 * time.Second,
			NoDefaultUserAgentHeader: true,
			TLSConfig:                n.cfg.Peer.TLS,
		},
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

// Start runs the autopilot in the background until Stop or until the node
// shuts down. It acts only while this node is the leader and its term's
// barrier has applied.
func (a *Autopilot) Start() {
	a.runMu.Lock()
	defer a.runMu.Unlock()
	if a.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done = cancel, make(chan struct{})
	go a.run(ctx, a.done)
}

// Stop stops the autopilot and waits (bounded) until it no longer touches
// Raft. Safe to call twice or without Start.
func (a *Autopilot) Stop() {
	a.runMu.Lock()
	cancel, done := a.cancel, a.done
	a.cancel = nil
	a.runMu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-time.After(2*a.n.cfg.ApplyTimeout + 5*time.Second):
		a.log.Warn("autopilot did not stop in time")
	}
	a.client.CloseIdleConnections()
}

// run starts the library's loops when this node leads and stops them when
// it does not. Leadership is polled: a quarter second of delay is nothing
// next to a stabilization time, and raft's LeaderCh has one consumer.
func (a *Autopilot) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	running := false
	stop := func() {
		if !running {
			return
		}
		running = false
		select {
		case <-a.lib.Stop():
		case <-time.After(2*a.n.cfg.ApplyTimeout + time.Second):
			a.log.Warn("autopilot loops did not stop in time")
		}
		a.reset()
		a.log.Info("autopilot stopped (not leader)")
	}
	defer stop()
	for {
		leading := a.n.leaderReady()
		switch {
		case leading && !running:
			a.reset()
			a.lib.Start(ctx)
			running = true
			a.log.Info("autopilot running", "stabilization_time", a.cfg.StabilizationTime,
				"dead_server_grace", a.cfg.DeadServerGrace, "min_quorum", a.minQuorum())
		case !leading && running:
			stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-a.n.stopCh:
			return
		case <-tick.C:
		}
	}
}

// reset forgets what one leadership observed.
func (a *Autopilot) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.missing = map[raft.ServerID]time.Time{}
	a.health = map[raft.ServerID]bool{}
	a.state = nil
}

// leaderReady reports whether this node leads and has applied the barrier
// of its own term (so its view of the log is complete).
func (n *Node) leaderReady() bool {
	if n.raft.State() != raft.Leader {
		return false
	}
	n.mu.Lock()
	started := n.termStarted
	n.mu.Unlock()
	return started != 0 && started == n.term()
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
