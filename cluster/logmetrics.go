package cluster

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// measuredLogStore is the Raft log store with each append measured: how
// many entries it wrote at once and how long it took. Every append is a
// transaction of the store with its fsyncs (two with bbolt), so entries per
// append is the group commit depth that decides a write's storage cost.
type measuredLogStore struct {
	raft.LogStore
	entries prometheus.Histogram
	seconds prometheus.Histogram
}

func newMeasuredLogStore(store raft.LogStore, reg prometheus.Registerer) *measuredLogStore {
	m := &measuredLogStore{
		LogStore: store,
		entries: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nexus_raft_log_append_entries",
			Help:    "Entries per append to the Raft log store (one store transaction and its fsyncs each).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nexus_raft_log_append_seconds",
			Help:    "Time of one append to the Raft log store, fsyncs included.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .5},
		}),
	}
	reg.MustRegister(m.entries, m.seconds)
	return m
}

func (m *measuredLogStore) StoreLog(l *raft.Log) error {
	return m.StoreLogs([]*raft.Log{l})
}

func (m *measuredLogStore) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	err := m.LogStore.StoreLogs(logs)
	m.seconds.Observe(time.Since(start).Seconds())
	m.entries.Observe(float64(len(logs)))
	return err
}
