package archive

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/registry"
)

// Metrics are the archiver's own metrics (this node's work).
type Metrics struct {
	archived   prometheus.Counter
	duplicates prometheus.Counter
	errors     *prometheus.CounterVec
	batch      prometheus.Histogram
	batchSize  prometheus.Histogram
	active     prometheus.Gauge
	schema     prometheus.Gauge
}

// Error stages of nexus_audit_archive_errors_total.
const (
	stageConnect   = "connect"
	stageMigrate   = "migrate"
	stageInsert    = "insert"
	stageWatermark = "watermark"
)

func newMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		archived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_audit_archived_records_total",
			Help: "Audit records this node inserted into PostgreSQL.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_audit_archive_duplicate_records_total",
			Help: "Audit records this node sent that PostgreSQL already held (replays after a leader change or a lost watermark).",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_audit_archive_errors_total",
			Help: "Archive failures by stage (connect, migrate, insert, watermark); each is retried with backoff.",
		}, []string{"stage"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nexus_audit_archive_batch_duration_seconds",
			Help:    "Time to write one batch to PostgreSQL (transaction included, watermark excluded).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nexus_audit_archive_batch_records",
			Help:    "Records per archived batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nexus_audit_archiver_active",
			Help: "1 while this node (the leader) runs the archiver.",
		}),
		schema: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nexus_audit_schema_current",
			Help: "1 once this node applied or found every archive migration.",
		}),
	}
	for _, c := range []prometheus.Collector{m.archived, m.duplicates, m.errors, m.batch, m.batchSize, m.active, m.schema} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	for _, s := range []string{stageConnect, stageMigrate, stageInsert, stageWatermark} {
		m.errors.WithLabelValues(s)
	}
	return m, nil
}

// backlogCollector reads the replicated backlog state at scrape time: every
// node exports it, the leader's is authoritative for the lag.
type backlogCollector struct {
	store func() *registry.Store
	now   func() time.Time

	records, bytes, maxRecords, maxBytes   *prometheus.Desc
	dropped, evicted, watermark, archiving *prometheus.Desc
	lagRecords, lagSeconds                 *prometheus.Desc
}

func newBacklogCollector(store func() *registry.Store, now func() time.Time) *backlogCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &backlogCollector{
		store:      store,
		now:        now,
		records:    d("nexus_audit_backlog_records", "Audit records in the replicated backlog (not yet archived, or the ring)."),
		bytes:      d("nexus_audit_backlog_bytes", "Bytes of the audit backlog, as its bound counts them."),
		maxRecords: d("nexus_audit_backlog_max_records", "The backlog's record bound (cluster setting)."),
		maxBytes:   d("nexus_audit_backlog_max_bytes", "The backlog's byte bound (cluster setting)."),
		dropped:    d("nexus_audit_dropped_records_total", "Unarchived audit records dropped by on_full drop_oldest (replicated counter)."),
		evicted:    d("nexus_audit_evicted_records_total", "Audit records evicted from the ring while no archive runs (replicated counter)."),
		watermark:  d("nexus_audit_watermark_index", "Raft index up to which the archive holds the audit stream."),
		archiving:  d("nexus_audit_archiving", "1 when records wait in the backlog for the archiver, 0 when the backlog is a ring."),
		lagRecords: d("nexus_audit_archive_lag_records", "Audit records not yet archived (0 when not archiving)."),
		lagSeconds: d("nexus_audit_archive_lag_seconds", "Age of the oldest audit record not yet archived (0 when none or not archiving)."),
	}
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.records, c.bytes, c.maxRecords, c.maxBytes, c.dropped, c.evicted,
		c.watermark, c.archiving, c.lagRecords, c.lagSeconds} {
		ch <- d
	}
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	tx := c.store().ReadTxn()
	st := tx.AuditState(nil)
	oldest := tx.AuditBacklog(nil, st.Watermark, 1)
	tx.Abort()
	g := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	ctr := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g(c.records, float64(st.Records))
	g(c.bytes, float64(st.Bytes))
	g(c.maxRecords, float64(st.Settings.MaxRecords))
	g(c.maxBytes, float64(st.Settings.MaxBytes))
	ctr(c.dropped, float64(st.Dropped))
	ctr(c.evicted, float64(st.Evicted))
	g(c.watermark, float64(st.Watermark.Index))
	lagRecords, lagSeconds, archiving := 0.0, 0.0, 0.0
	if st.Archiving() {
		archiving = 1
		lagRecords = float64(st.Records)
		if len(oldest) > 0 {
			lagSeconds = max(0, c.now().Sub(time.Unix(0, oldest[0].Time)).Seconds())
		}
	}
	g(c.archiving, archiving)
	g(c.lagRecords, lagRecords)
	g(c.lagSeconds, lagSeconds)
}
