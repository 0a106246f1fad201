package dns

import (
	"context"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	miekg "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/registry"
)

// env is a DNS server on 127.0.0.1 (a free port) over a real registry
// store, with a fixed member list (what gossip would report).
type env struct {
	t     *testing.T
	store *registry.Store
	srv   *Server
	reg   *prometheus.Registry
	mu    sync.Mutex
	index uint64
}

// staticMembers is a member list that does not change.
type staticMembers []Member

func (m staticMembers) Members() []Member { return m }

// testMembers: n1 at 10.0.0.1, n2 at 10.0.0.2, n3 (IPv6) at fd00::3.
var testMembers = staticMembers{
	{Name: "n1", Addr: netip.MustParseAddr("10.0.0.1"), Status: "alive"},
	{Name: "n2", Addr: netip.MustParseAddr("10.0.0.2"), Status: "alive"},
	{Name: "N3", Addr: netip.MustParseAddr("fd00::3"), Status: "failed"},
	{Name: "gone", Addr: netip.MustParseAddr("10.0.0.9"), Status: "left"},
}

func newEnv(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	cfg := Config{Addr: "127.0.0.1:0", Domain: "nexus", OnlyPassing: true}
	if mutate != nil {
		mutate(&cfg)
	}
	e := &env{t: t, store: registry.NewStore(), reg: prometheus.NewRegistry()}
	srv := newServer(t, e.store, cfg, e.reg)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	e.srv = srv
	return e
}

func (e *env) write(f func(tx *registry.Tx)) {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.index++
	tx := e.store.WriteTxn(e.index)
	defer tx.Abort()
	f(tx)
	tx.Commit()
}

// newServer is a server (not started) over store, with testMembers.
func newServer(tb testing.TB, store *registry.Store, cfg Config, reg prometheus.Registerer) *Server {
	tb.Helper()
	srv, err := New(cfg, Deps{
		Catalog: StoreCatalog{Store: store}, Membership: testMembers, Logger: testLogger(), Registerer: reg,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return srv
}

// instance is an instance of service with the given status and tags.
func instance(service, id, node, addr string, port int, status string, tags ...string) registry.Instance {
	return registry.Instance{ID: id, Service: service, Type: "http", Node: node, Address: addr, Port: port, Status: status, Tags: tags}
}

// registerAll writes instances into store in one transaction.
func registerAll(tb testing.TB, store *registry.Store, index uint64, insts ...registry.Instance) {
	tb.Helper()
	tx := store.WriteTxn(index)
	defer tx.Abort()
	for _, in := range insts {
		if _, _, err := tx.RegisterInstance(in); err != nil {
			tb.Fatal(err)
		}
	}
	tx.Commit()
}

// register adds an instance with the given status and tags on node.
func (e *env) register(service, id, node, addr string, port int, status string, tags ...string) {
	e.t.Helper()
	e.mu.Lock()
	e.index++
	idx := e.index
	e.mu.Unlock()
	registerAll(e.t, e.store, idx, instance(service, id, node, addr, port, status, tags...))
}

func (e *env) setStatus(service, id, status string) {
	e.t.Helper()
	e.write(func(tx *registry.Tx) {
		if _, _, err := tx.SetStatus(service, id, status, ""); err != nil {
			e.t.Fatal(err)
		}
	})
}

// query options.
type qopt struct {
	tcp  bool
	edns uint16 // 0: no OPT record
}

// exchange sends one query to the server with miekg as the client.
func (e *env) exchange(qname string, qtype uint16, o qopt) (*miekg.Msg, error) {
	m := new(miekg.Msg)
	m.SetQuestion(qname, qtype)
	if o.edns > 0 {
		m.SetEdns0(o.edns, false)
	}
	c := &miekg.Client{Net: "udp", Timeout: 5 * time.Second}
	addr := e.srv.UDPAddr().String()
	if o.tcp {
		c.Net = "tcp"
		addr = e.srv.TCPAddr().String()
	}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

func (e *env) query(qname string, qtype uint16, o qopt) *miekg.Msg {
	e.t.Helper()
	r, err := e.exchange(qname, qtype, o)
	if err != nil {
		e.t.Fatalf("%s %s: %v", qname, miekg.TypeToString[qtype], err)
	}
	return r
}

// addrs lists the A/AAAA addresses of rrs, sorted.
func addrs(rrs []miekg.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch r := rr.(type) {
		case *miekg.A:
			out = append(out, r.A.String())
		case *miekg.AAAA:
			out = append(out, r.AAAA.String())
		}
	}
	sort.Strings(out)
	return out
}

// hasSOA reports whether the authority section holds the zone's SOA.
func hasSOA(m *miekg.Msg, zone string) bool {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*miekg.SOA); ok && soa.Hdr.Name == zone {
			return true
		}
	}
	return false
}

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// metric reads a counter (or a histogram's sample count) with the given
// labels from what the registry exports; 0 when absent.
func (e *env) metric(name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] {
						found = lp.GetValue() == labels[i+1]
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}
