package consul

import "github.com/prometheus/client_golang/prometheus"

// metrics of the mapping; requests by route and status are the admin API's
// nexus_api_* metrics (route label /v1/...).
type metrics struct {
	unsupported *prometheus.CounterVec
	blocking    prometheus.Gauge
	wakeups     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		unsupported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_consul_unsupported_total",
			Help: "Consul API requests refused because Nexus does not serve what they ask, by kind: endpoint (404), param or field (400).",
		}, []string{"kind"}),
		blocking: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nexus_consul_blocking_queries",
			Help: "Consul API blocking queries (index and wait) in progress on this node.",
		}),
		wakeups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_consul_blocking_wakeups_total",
			Help: "Times a Consul API blocking query was woken by a change of what it watches and read again (whether or not its index moved).",
		}),
	}
	for _, c := range []prometheus.Collector{m.unsupported, m.blocking, m.wakeups} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
