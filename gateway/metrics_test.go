package gateway

import (
	"testing"

	"github.com/nexus/nexus/registry"
)

// metricValue returns the value of the series of name with labels, or -1.
func metricValue(t *testing.T, e *env, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
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

func TestMetrics(t *testing.T) {
	e := newEnv(t, Options{})
	up := startUpstream(t, "a")
	e.instance("web", "a", up.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web", Retries: intp(0)})
	for i := 0; i < 3; i++ {
		e.do("GET", "", "/", nil, nil)
	}
	e.route(registry.Route{ID: "only", Hosts: []string{"x.example"}, Paths: []string{"/"}, Service: "web"})
	e.do("GET", "nothing.example", "/zzz", nil, nil) // matches r (no hosts)
	e.deleteRoute("r")
	e.do("GET", "", "/zzz", nil, nil) // no route now
	cases := []struct {
		name   string
		labels map[string]string
		check  func(float64) bool
	}{
		{"nexus_gateway_requests_total", map[string]string{"route": "none", "class": "4xx"}, func(v float64) bool { return v == 1 }},
		{"nexus_gateway_upstream_duration_seconds", map[string]string{"route": "only"}, func(v float64) bool { return v == 0 }},
		{"nexus_gateway_table_rebuilds_total", nil, func(v float64) bool { return v >= 4 }},
		{"nexus_gateway_table_rebuild_duration_seconds", nil, func(v float64) bool { return v >= 4 }},
		{"nexus_gateway_routes", nil, func(v float64) bool { return v == 1 }},
		{"nexus_gateway_table_index", nil, func(v float64) bool { return v == float64(e.index) }},
	}
	for _, c := range cases {
		if v := metricValue(t, e, c.name, c.labels); !c.check(v) {
			t.Errorf("%s%v = %v", c.name, c.labels, v)
		}
	}
	// A deleted route's series are gone.
	if v := metricValue(t, e, "nexus_gateway_requests_total", map[string]string{"route": "r", "class": "2xx"}); v != -1 {
		t.Errorf("series of deleted route r still exported: %v", v)
	}
}
