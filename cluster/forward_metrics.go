package cluster

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/cluster/peerproto"
)

// forwardCollector exports how this node forwarded its writes to the
// leader (peerproto.Client.ForwardStats).
type forwardCollector struct {
	stats  func() peerproto.ForwardStats
	writes *prometheus.Desc
	opened *prometheus.Desc
	open   *prometheus.Desc
}

func newForwardCollector(stats func() peerproto.ForwardStats) *forwardCollector {
	return &forwardCollector{
		stats: stats,
		writes: prometheus.NewDesc("nexus_forwarded_writes_total",
			"Writes this node forwarded to the leader and got an answer to, by transport: stream (the forwarding stream, many writes per connection) or http (one request per write, to a leader without streams).",
			[]string{"transport"}, nil),
		opened: prometheus.NewDesc("nexus_forward_streams_opened_total", "Forwarding streams this node opened to a leader.", nil, nil),
		open:   prometheus.NewDesc("nexus_forward_streams_open", "Forwarding streams this node holds open.", nil, nil),
	}
}

func (c *forwardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.writes
	ch <- c.opened
	ch <- c.open
}

func (c *forwardCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	ch <- prometheus.MustNewConstMetric(c.writes, prometheus.CounterValue, float64(st.Stream), "stream")
	ch <- prometheus.MustNewConstMetric(c.writes, prometheus.CounterValue, float64(st.HTTP), "http")
	ch <- prometheus.MustNewConstMetric(c.opened, prometheus.CounterValue, float64(st.Opened))
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(st.Open))
}
