package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors. Hot-path children are
// resolved once per route at table build (routeMetrics), so a request only
// does atomic adds.
type metrics struct {
	requests      *prometheus.CounterVec   // route, class
	upstreamTime  *prometheus.HistogramVec // route
	retries       *prometheus.CounterVec   // route
	limited       *prometheus.CounterVec   // route
	cache         *prometheus.CounterVec   // route, result
	breakerState  *prometheus.GaugeVec     // route, instance
	ejections     *prometheus.CounterVec   // instance
	rebuilds      prometheus.Counter
	rebuildTime   prometheus.Histogram
	routes        prometheus.Gauge
	tableIndex    prometheus.Gauge
	shareFraction *prometheus.GaugeVec   // route
	lingering     *prometheus.CounterVec // result
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_gateway_requests_total", Help: "Gateway requests by route and status class.",
		}, []string{"route", "class"}),
		upstreamTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nexus_gateway_upstream_duration_seconds", Help: "Time from sending a request upstream to its response headers, per attempt.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_gateway_retries_total", Help: "Upstream attempts beyond the first.",
		}, []string{"route"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_gateway_rate_limited_total", Help: "Requests refused with 429.",
		}, []string{"route"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_gateway_cache_total", Help: "Response cache lookups by result (hit, miss).",
		}, []string{"route", "result"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nexus_gateway_breaker_state", Help: "Circuit breaker state per route and instance: 0 closed, 1 open, 2 half-open.",
		}, []string{"route", "instance"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_gateway_outlier_ejections_total", Help: "Passive outlier ejections per upstream address.",
		}, []string{"instance"}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_gateway_table_rebuilds_total", Help: "Routing table rebuilds.",
		}),
		rebuildTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nexus_gateway_table_rebuild_duration_seconds", Help: "Duration of routing table rebuilds.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nexus_gateway_routes", Help: "Routes in the current routing table.",
		}),
		tableIndex: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nexus_gateway_table_index", Help: "Highest Raft index reflected in the current routing table.",
		}),
		shareFraction: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nexus_gateway_rate_limit_share", Help: "Fraction of a cluster-scope rate limit this node enforces.",
		}, []string{"route"}),
		lingering: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_gateway_lingering_closes_total", Help: "Client connections closed with bytes unread: lingered (half-closed, drained, then closed) or too_many (closed at once: the lingering limit was reached).",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.upstreamTime, m.retries, m.limited, m.cache, m.breakerState,
			m.ejections, m.rebuilds, m.rebuildTime, m.routes, m.tableIndex, m.shareFraction, m.lingering)
	}
	return m
}

// routeMetrics are one route's pre-resolved children.
type routeMetrics struct {
	class     [6]prometheus.Counter // index status/100; 0 = other
	upstream  prometheus.Observer
	retries   prometheus.Counter
	limited   prometheus.Counter
	cacheHit  prometheus.Counter
	cacheMiss prometheus.Counter
}

var classNames = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (m *metrics) forRoute(id string) *routeMetrics {
	rm := &routeMetrics{
		upstream:  m.upstreamTime.WithLabelValues(id),
		retries:   m.retries.WithLabelValues(id),
		limited:   m.limited.WithLabelValues(id),
		cacheHit:  m.cache.WithLabelValues(id, "hit"),
		cacheMiss: m.cache.WithLabelValues(id, "miss"),
	}
	for i, c := range classNames {
		rm.class[i] = m.requests.WithLabelValues(id, c)
	}
	return rm
}

// forget drops the series of a route that no longer exists.
func (m *metrics) forget(id string) {
	for _, c := range classNames {
		m.requests.DeleteLabelValues(id, c)
	}
	m.upstreamTime.DeleteLabelValues(id)
	m.retries.DeleteLabelValues(id)
	m.limited.DeleteLabelValues(id)
	m.cache.DeleteLabelValues(id, "hit")
	m.cache.DeleteLabelValues(id, "miss")
	m.shareFraction.DeleteLabelValues(id)
	m.breakerState.DeletePartialMatch(prometheus.Labels{"route": id})
}

func (rm *routeMetrics) count(status int) {
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	rm.class[c].Inc()
}
