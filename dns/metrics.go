package dns

import (
	"time"

	miekg "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus collectors.
type metrics struct {
	queries   *prometheus.CounterVec // type, rcode
	duration  prometheus.Histogram
	truncated prometheus.Counter
	forwarded *prometheus.CounterVec // result
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_dns_queries_total", Help: "DNS queries answered, by query type (A, AAAA, SRV, ANY, SOA, NS, PTR, TXT, other) and response code (NOERROR, NXDOMAIN, REFUSED, ...).",
		}, []string{"type", "rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nexus_dns_query_duration_seconds", Help: "Time to answer a DNS query, from its arrival to the answer ready to send (forwarded queries included).",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_dns_truncated_total", Help: "DNS answers that did not fit the client's UDP buffer and were sent with TC set (the client retries over TCP).",
		}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_dns_forwarded_total", Help: "Queries for names outside the domain sent to a recursor, by result (answered, failed: no recursor answered).",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.queries, m.duration, m.truncated, m.forwarded} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// typeLabel keeps the type label to a fixed set.
func typeLabel(t uint16) string {
	switch t {
	case miekg.TypeA, miekg.TypeAAAA, miekg.TypeSRV, miekg.TypeANY, miekg.TypeSOA,
		miekg.TypeNS, miekg.TypePTR, miekg.TypeTXT:
		return miekg.TypeToString[t]
	}
	return "other"
}

func rcodeLabel(rcode int) string {
	if s, ok := miekg.RcodeToString[rcode]; ok {
		return s
	}
	return "other"
}

func (m *metrics) observe(req, resp *miekg.Msg, d time.Duration) {
	typ := "other"
	if len(req.Question) == 1 {
		typ = typeLabel(req.Question[0].Qtype)
	}
	m.queries.WithLabelValues(typ, rcodeLabel(resp.Rcode)).Inc()
	m.duration.Observe(d.Seconds())
	if resp.Truncated {
		m.truncated.Inc()
	}
}
