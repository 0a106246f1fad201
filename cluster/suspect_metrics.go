package cluster

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/cluster/member"
)

// memberStatuses are the statuses nexus_gossip_members always exports, so
// that a status with no member reads 0 rather than missing.
var memberStatuses = []member.Status{StatusAlive, StatusSuspect, StatusFailed, StatusLeft}

// memberStatusCollector exports gossip members by status, suspect included
// (it replaces memberCollector, which knows alive, failed and left only).
type memberStatusCollector struct {
	n    *Node
	desc *prometheus.Desc
}

func (c *memberStatusCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *memberStatusCollector) Collect(ch chan<- prometheus.Metric) {
	counts := make(map[member.Status]int, len(memberStatuses))
	for _, st := range c.n.MemberStatuses() {
		counts[st]++
	}
	for _, s := range memberStatuses {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}
