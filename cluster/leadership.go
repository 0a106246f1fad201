package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Duty is work that only the leader does: the autopilot, the audit
// archiver, the health leader (and anything else that must run on exactly
// one node). The leadership loop starts every duty, each in its own
// goroutine, once this node leads and the barrier of its term has applied
// (its replica then holds everything the old leader acknowledged), and
// cancels them all when it loses leadership or stops; it waits until every
// one has returned before it acts on the next change. No duty asks whether
// this node leads: it runs while its context lives.
type Duty interface {
	// Name identifies the duty in logs and in nexus_leader_duty_running.
	Name() string
	// Run does the duty until ctx ends and then returns promptly.
	Run(ctx context.Context)
}

// leaderLoop is the one consumer of raft's LeaderCh and the one place that
// acts on leadership (Consul's monitorLeadership): on gaining it,
// establishLeadership in a goroutine; on losing it (or on Shutdown),
// revoke: cancel and wait.
func (n *Node) leaderLoop(duties []Duty) {
	defer n.leadWG.Done()
	leaderCh := n.raft.LeaderCh()
	var cancel context.CancelFunc
	var done chan struct{}
	revoke := func() {
		if cancel == nil {
			return
		}
		n.mu.Lock()
		n.termStarted = 0
		n.mu.Unlock()
		start := time.Now()
		cancel()
		<-done
		cancel, done = nil, nil
		n.logger.Info("leader duties stopped", "took", time.Since(start).Round(time.Millisecond))
	}
	defer revoke()
	for {
		select {
		case <-n.stopCh:
			return
		case isLeader := <-leaderCh:
			// Any change ends what the previous leadership started; a
			// true after a true (raft coalesces the channel) is a new term
			// and gets a new barrier.
			revoke()
			n.m.leaderChanges.Inc()
			n.notifyChange()
			if !isLeader {
				n.logger.Info("lost leadership")
				continue
			}
			n.logger.Info("became leader", "term", n.term())
			ctx, c := context.WithCancel(context.Background())
			cancel, done = c, make(chan struct{})
			go func(done chan struct{}) {
				defer close(done)
				n.establishLeadership(ctx, duties)
			}(done)
		}
	}
}

// establishLeadership runs while this node leads: a barrier of its own
// term, the cluster identity on the cluster's first election, then every
// duty until ctx ends.
func (n *Node) establishLeadership(ctx context.Context, duties []Duty) {
	// A barrier: once an entry of our own term has applied, our state holds
	// everything the old leader acknowledged.
	for {
		_, err := n.applyLocal(ctx, n.cfg.Hooks.Noop())
		if err == nil {
			break
		}
		n.logger.Warn("leader barrier failed", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	n.mu.Lock()
	n.termStarted = n.term()
	n.mu.Unlock()
	if id, _ := n.cfg.Hooks.Identity(); id == "" {
		if _, err := n.applyLocal(ctx, n.cfg.Hooks.ClusterInit(randomHex(16), randomHex(32))); err != nil {
			n.logger.Error("recording cluster identity failed", "err", err)
		}
	}
	all := append([]Duty{membershipDuty{n}}, duties...)
	var wg sync.WaitGroup
	for _, d := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := n.m.duties.WithLabelValues(d.Name())
			g.Set(1)
			defer g.Set(0)
			d.Run(ctx)
		}()
	}
	names := make([]string, len(all))
	for i, d := range all {
		names[i] = d.Name()
	}
	n.logger.Info("leader duties started", "duties", names)
	wg.Wait()
}

// leaderReady reports whether this node leads and has applied the barrier
// of its own term (so its view of the log is complete).
func (n *Node) leaderReady() bool {
	n.mu.Lock()
	started := n.termStarted
	n.mu.Unlock()
	return started != 0 && started == n.term() && n.IsLeader()
}

// membershipDuty makes Raft membership follow gossip (reconcile) on every
// gossip event and every ReconcileInterval.
type membershipDuty struct{ n *Node }

func (membershipDuty) Name() string { return "raft-membership" }

func (d membershipDuty) Run(ctx context.Context) {
	d.n.reconcile()
	tick := time.NewTicker(d.n.cfg.ReconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.n.events:
		case <-tick.C:
		}
		d.n.reconcile()
	}
}

// newDutyGauge is nexus_leader_duty_running.
func newDutyGauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nexus_leader_duty_running",
		Help: "1 while a leader-only duty runs on this node (the leader, once its term's barrier applied).",
	}, []string{"duty"})
}
