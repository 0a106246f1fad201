package cluster

import (
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

type autopilotMetrics struct {
	promotions prometheus.Counter
	removals   *prometheus.CounterVec
}

func newAutopilotMetrics(reg prometheus.Registerer, a *Autopilot) (*autopilotMetrics, error) {
	m := &autopilotMetrics{
		promotions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_autopilot_promotions_total",
			Help: "Non-voters this node promoted to voter as autopilot of the leader.",
		}),
		removals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_autopilot_removals_total",
			Help: "Servers this node removed from Raft as autopilot of the leader, by reason (failed, left, unknown: never seen by gossip).",
		}, []string{"reason"}),
	}
	for _, r := range []string{"failed", "left", "unknown"} {
		m.removals.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.promotions, m.removals, newMembershipCollector(a)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// membershipCollector reads the Raft configuration at scrape time (every
// node), and the autopilot's last health view (the leader only).
type membershipCollector struct {
	a                                    *Autopilot
	voters, nonvoters, healthy, tolerant *prometheus.Desc
}

func newMembershipCollector(a *Autopilot) *membershipCollector {
	return &membershipCollector{
		a:         a,
		voters:    prometheus.NewDesc("nexus_raft_voters", "Voters in the Raft configuration this node knows.", nil, nil),
		nonvoters: prometheus.NewDesc("nexus_raft_nonvoters", "Non-voters (and staging servers) in the Raft configuration this node knows.", nil, nil),
		healthy:   prometheus.NewDesc("nexus_autopilot_healthy", "1 when autopilot sees every server healthy (leader only).", nil, nil),
		tolerant:  prometheus.NewDesc("nexus_autopilot_failure_tolerance", "Voters that can fail without losing quorum, as autopilot sees them (leader only).", nil, nil),
	}
}

func (c *membershipCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.voters
	ch <- c.nonvoters
	ch <- c.healthy
	ch <- c.tolerant
}

func (c *membershipCollector) Collect(ch chan<- prometheus.Metric) {
	if cfg, err := c.a.n.configuration(); err == nil {
		voters, others := 0, 0
		for _, s := range cfg.Servers {
			if s.Suffrage == raft.Voter {
				voters++
			} else {
				others++
			}
		}
		ch <- prometheus.MustNewConstMetric(c.voters, prometheus.GaugeValue, float64(voters))
		ch <- prometheus.MustNewConstMetric(c.nonvoters, prometheus.GaugeValue, float64(others))
	}
	c.a.mu.Lock()
	st := c.a.state
	c.a.mu.Unlock()
	if st == nil {
		return
	}
	healthy := 0.0
	if st.Healthy {
		healthy = 1
	}
	ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, healthy)
	ch <- prometheus.MustNewConstMetric(c.tolerant, prometheus.GaugeValue, float64(st.FailureTolerance))
}
