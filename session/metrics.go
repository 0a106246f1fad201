package session

import (
	"encoding/json"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Metrics are the session and lock metrics of a node. The counters count
// what this node's replica applied, so every node reports the cluster's
// totals; the duty's proposals count on the leader only. A nil *Metrics
// counts nothing.
type Metrics struct {
	invalidations *prometheus.CounterVec
	renews        prometheus.Counter
	acquires      *prometheus.CounterVec
	releases      prometheus.Counter
	proposals     *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg; the gauges read store at
// scrape time.
func NewMetrics(reg prometheus.Registerer, store *registry.Store) (*Metrics, error) {
	m := &Metrics{
		invalidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_session_invalidations_total",
			Help: "Sessions invalidated, by reason: ttl, node_failed, node_left, destroy.",
		}, []string{"reason"}),
		renews: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_session_renews_total", Help: "Session renews applied.",
		}),
		acquires: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_lock_acquires_total",
			Help: "Lock acquisitions (PUT ?acquire= and txn lock ops), by result: acquired, contended (held by another session), lock_delay.",
		}, []string{"result"}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_lock_releases_total", Help: "Locks released by their session (PUT ?release= and txn unlock ops).",
		}),
		proposals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_session_duty_proposals_total",
			Help: "Commands the leader's session duty proposed, by kind (ttl, node_failed, node_left, lock_delay_end) and result (ok, error).",
		}, []string{"kind", "result"}),
	}
	for _, c := range []prometheus.Collector{m.invalidations, m.renews, m.acquires, m.releases, m.proposals, newCollector(store)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ObserveApply counts an applied command (fsm.Deps.OnApply).
func (m *Metrics) ObserveApply(t command.Type, r *command.Result) {
	if m == nil || r == nil {
		return
	}
	switch t {
	case command.TypeSessionRenew:
		if r.Err == nil {
			m.renews.Inc()
		}
	case command.TypeSessionInvalidate:
		var v fsm.SessionEnded
		if decode(r, &v) && v.Invalidated {
			m.invalidations.WithLabelValues(v.Reason).Inc()
		}
	case command.TypeConfigLock:
		var v fsm.LockAnswer
		if !decode(r, &v) {
			return
		}
		switch {
		case v.Acquired != nil:
			m.acquire(*v.Acquired, v.Reason)
		case v.Released != nil && *v.Released:
			m.releases.Inc()
		}
	case command.TypeTxn:
		m.observeTxn(r)
	}
}

func (m *Metrics) observeTxn(r *command.Result) {
	if r.Err != nil {
		var v fsm.TxnConflicts
		if r.Err.Code == registry.CodeTxnConflict && decode(r, &v) && len(v.Errors) == 1 && v.Errors[0].Op == registry.TxnLock {
			m.acquire(false, v.Errors[0].Reason)
		}
		return
	}
	var v fsm.TxnAnswer
	if !decode(r, &v) {
		return
	}
	for _, res := range v.Results {
		switch res.Op {
		case registry.TxnLock:
			m.acquire(true, "")
		case registry.TxnUnlock:
			m.releases.Inc()
		}
	}
}

func (m *Metrics) acquire(ok bool, reason string) {
	switch {
	case ok:
		m.acquires.WithLabelValues("acquired").Inc()
	case reason == registry.LockDelayed:
		m.acquires.WithLabelValues("lock_delay").Inc()
	case reason == registry.LockHeld:
		m.acquires.WithLabelValues("contended").Inc()
	}
}

func (m *Metrics) proposed(kind string, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.proposals.WithLabelValues(kind, result).Inc()
}

// decode reads a result's value into v: the answer type itself on the
// node that applied it, JSON after forwarding.
func decode[T any](r *command.Result, v *T) bool {
	if x, ok := r.Value.(T); ok {
		*v = x
		return true
	}
	raw, err := r.RawValue()
	return err == nil && json.Unmarshal(raw, v) == nil
}

// collector reads the local replica at scrape time.
type collector struct {
	store                   *registry.Store
	sessions, held, delayed *prometheus.Desc
}

func newCollector(store *registry.Store) *collector {
	return &collector{
		store:    store,
		sessions: prometheus.NewDesc("nexus_sessions", "Sessions alive in the local replica.", nil, nil),
		held:     prometheus.NewDesc("nexus_locks_held", "Config keys held by a session in the local replica.", nil, nil),
		delayed:  prometheus.NewDesc("nexus_lock_delays", "Config keys in their lock delay in the local replica.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sessions
	ch <- c.held
	ch <- c.delayed
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	tx := c.store.ReadTxn()
	n, held, delayed := tx.SessionCounts()
	tx.Abort()
	ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(held))
	ch <- prometheus.MustNewConstMetric(c.delayed, prometheus.GaugeValue, float64(delayed))
}
