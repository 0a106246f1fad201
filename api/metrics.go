package api

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// metrics are the API's Prometheus metrics, registered on Deps.Registry.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	rejected *prometheus.CounterVec
	blocking prometheus.Gauge
	wakeups  prometheus.Counter
	handler  fasthttp.RequestHandler
}

func newMetrics(reg prometheus.Registerer, gath prometheus.Gatherer, reader Reader, cluster Cluster) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_api_requests_total",
			Help: "Admin API requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexus_api_request_duration_seconds",
			Help:    "Admin API request latency by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"route", "method"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_api_rejected_writes_total",
			Help: "Writes refused, by reason (validation, cas, not_found, type_conflict, conflict, no_leader, outcome_unknown, body_too_large, internal).",
		}, []string{"reason"}),
	}
	m.blocking = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nexus_api_blocking_queries", Help: "Blocking queries (?index=) waiting for a change now.",
	})
	if err := reg.Register(m.blocking); err != nil {
		return nil, err
	}
	m.wakeups = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nexus_api_blocking_wakeups_total",
		Help: "Blocking queries woken by a change of what they watch (each answers if its index moved, else waits again).",
	})
	if err := reg.Register(m.wakeups); err != nil {
		return nil, err
	}
	var err error
	if m.requests, err = registerVec(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = registerVec(reg, m.duration); err != nil {
		return nil, err
	}
	if m.rejected, err = registerVec(reg, m.rejected); err != nil {
		return nil, err
	}
	if err := reg.Register(newStateCollector(reader, cluster)); err != nil {
		return nil, err
	}
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(gath, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}))
	return m, nil
}

// registerVec registers c, or reuses the identical collector already
// registered (a second Server on the same registry).
func registerVec[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *metrics) observe(route, method string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

// stateCollector reads the store and Raft at scrape time.
type stateCollector struct {
	reader  Reader
	cluster Cluster

	services, instances, config, routes *prometheus.Desc
	term, commit, applied, state        *prometheus.Desc
	lastContact                         *prometheus.Desc
}

func newStateCollector(reader Reader, cluster Cluster) *stateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &stateCollector{
		reader:      reader,
		cluster:     cluster,
		services:    d("nexus_registry_services", "Services in the local replica."),
		instances:   d("nexus_registry_instances", "Service instances in the local replica."),
		config:      d("nexus_registry_config_entries", "Configuration entries in the local replica."),
		routes:      d("nexus_registry_routes", "Gateway routes in the local replica."),
		term:        d("nexus_raft_term", "Current Raft term."),
		commit:      d("nexus_raft_commit_index", "Raft commit index known to this node."),
		applied:     d("nexus_raft_applied_index", "Raft index last applied by this node."),
		state:       d("nexus_raft_state", "Raft state of this node (1 for the current state).", "state"),
		lastContact: d("nexus_raft_last_contact_seconds", "Seconds since this node last heard from the leader (0 on the leader)."),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.services, c.instances, c.config, c.routes,
		c.term, c.commit, c.applied, c.state, c.lastContact} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	tx := c.reader.Store().ReadTxn()
	svcs, insts, cfg, routes := tx.Counts()
	tx.Abort()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	g(c.services, float64(svcs))
	g(c.instances, float64(insts))
	g(c.config, float64(cfg))
	g(c.routes, float64(routes))

	st := c.cluster.Raft()
	g(c.term, float64(st.Term))
	g(c.commit, float64(st.CommitIndex))
	g(c.applied, float64(st.AppliedIndex))
	cur := strings.ToLower(st.State)
	known := false
	// Every known state is exported, 1 for the current one.
	for _, s := range [...]string{"follower", "candidate", "leader", "shutdown"} {
		v := 0.0
		if s == cur {
			v, known = 1, true
		}
		g(c.state, v, s)
	}
	if !known && cur != "" {
		g(c.state, 1, cur)
	}
	contact := st.LastContact.Seconds()
	if cur == "leader" {
		contact = 0
	}
	g(c.lastContact, contact)
}
