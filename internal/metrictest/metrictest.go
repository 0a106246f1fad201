// Package metrictest reads metrics from a Prometheus gatherer in tests.
package metrictest

import "github.com/prometheus/client_golang/prometheus"

// TB is the part of testing.TB Value needs (a *retry.R fits too).
type TB interface {
	Helper()
	Fatal(args ...any)
}

// Value returns the value of the first series of name whose labels include
// labels: a counter's or a gauge's value, a histogram's sample count; -1
// when there is no such series.
func Value(t TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}
