package dns

import (
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/registry"
)

var bothProtocols = []struct {
	name string
	o    qopt
}{{"udp", qopt{}}, {"tcp", qopt{tcp: true}}}

// TestAnswers drives the server over UDP and TCP with miekg as the client:
// every name form, positive and negative answers.
func TestAnswers(t *testing.T) {
	e := newEnv(t, nil)
	e.register("web", "web-1", "n1", "10.0.0.1", 9001, registry.StatusPassing, "v1", "Primary")
	e.register("web", "web-2", "n2", "10.0.1.2", 9002, registry.StatusPassing, "v2")
	e.register("web", "web-3", "n2", "10.0.1.3", 9003, registry.StatusCritical, "v1")
	e.register("web", "web-4", "n1", "10.0.0.4", 9004, registry.StatusWarning, "v1")
	e.register("v6", "v6-1", "N3", "fd00::3", 7000, registry.StatusPassing)
	e.register("v6", "v6-2", "n1", "fd00::10", 7001, registry.StatusPassing)
	e.register("byname", "byname-1", "n1", "db.example.org", 5432, registry.StatusPassing)
	e.register("api.v1", "api-1", "n1", "10.0.0.1", 8000, registry.StatusPassing)
	e.register("api", "api-2", "n2", "10.0.0.2", 8001, registry.StatusPassing, "v1")
	e.register("down", "down-1", "n1", "10.0.0.5", 80, registry.StatusCritical)

	type want struct {
		rcode  int
		answer []string // A/AAAA answers, sorted; or SRV "port target"
		extra  []string // additional A/AAAA addresses, sorted
		soa    bool     // SOA in the authority section
	}
	tests := []struct {
		name  string
		qname string
		qtype uint16
		want  want
	}{
		{"service A", "web.service.nexus.", miekg.TypeA, want{answer: []string{"10.0.0.1", "10.0.1.2"}}},
		{"case-insensitive", "WeB.SeRvIcE.NeXuS.", miekg.TypeA, want{answer: []string{"10.0.0.1", "10.0.1.2"}}},
		{"tag", "v1.web.service.nexus.", miekg.TypeA, want{answer: []string{"10.0.0.1"}}},
		{"tag any case", "PRIMARY.web.service.nexus.", miekg.TypeA, want{answer: []string{"10.0.0.1"}}},
		{"AAAA", "v6.service.nexus.", miekg.TypeAAAA, want{answer: []string{"fd00::10", "fd00::3"}}},
		{"A of an IPv6-only service: no data", "v6.service.nexus.", miekg.TypeA, want{soa: true}},
		{"ANY: both families", "v6.service.nexus.", miekg.TypeANY, want{answer: []string{"fd00::10", "fd00::3"}}},
		{"AAAA of an IPv4-only service: no data", "web.service.nexus.", miekg.TypeAAAA, want{soa: true}},
		{"TXT of a service: no data", "web.service.nexus.", miekg.TypeTXT, want{soa: true}},
		{"SRV RFC 2782", "_web._tcp.service.nexus.", miekg.TypeSRV, want{
			answer: []string{"9001 n1.node.nexus.", "9002 0a000102.addr.nexus."},
			extra:  []string{"10.0.0.1", "10.0.1.2"}}},
		{"SRV RFC 2782 with tag", "_web._v1.service.nexus.", miekg.TypeSRV, want{
			answer: []string{"9001 n1.node.nexus."}, extra: []string{"10.0.0.1"}}},
		{"SRV plain name", "web.service.nexus.", miekg.TypeSRV, want{
			answer: []string{"9001 n1.node.nexus.", "9002 0a000102.addr.nexus."},
			extra:  []string{"10.0.0.1", "10.0.1.2"}}},
		{"SRV IPv6 on its node", "_v6._tcp.service.nexus.", miekg.TypeSRV, want{
			answer: []string{"7000 N3.node.nexus.", "7001 fd000000000000000000000000000010.addr.nexus."},
			extra:  []string{"fd00::10", "fd00::3"}}},
		{"SRV host name target", "_byname._tcp.service.nexus.", miekg.TypeSRV, want{
			answer: []string{"5432 db.example.org."}}},
		{"A of a host-name instance: no data", "byname.service.nexus.", miekg.TypeA, want{soa: true}},
		{"dotted service name", "api.v1.service.nexus.", miekg.TypeA, want{answer: []string{"10.0.0.1"}}},
		{"tag reading when no such service", "v1.api.service.nexus.", miekg.TypeA, want{answer: []string{"10.0.0.2"}}},
		{"all critical: no data", "down.service.nexus.", miekg.TypeA, want{soa: true}},
		{"unknown tag", "v9.web.service.nexus.", miekg.TypeA, want{rcode: miekg.RcodeNameError, soa: true}},
		{"unknown service", "nosuch.service.nexus.", miekg.TypeA, want{rcode: miekg.RcodeNameError, soa: true}},
		{"unknown service SRV", "_nosuch._tcp.service.nexus.", miekg.TypeSRV, want{rcode: miekg.RcodeNameError, soa: true}},
		{"node", "n1.node.nexus.", miekg.TypeA, want{answer: []string{"10.0.0.1"}}},
		{"node any case", "N1.Node.NEXUS.", miekg.TypeA, want{answer: []string{"10.0.0.1"}}},
		{"failed node still has its address", "n3.node.nexus.", miekg.TypeAAAA, want{answer: []string{"fd00::3"}}},
		{"node without an IPv6 address", "n1.node.nexus.", miekg.TypeAAAA, want{soa: true}},
		{"node that left", "gone.node.nexus.", miekg.TypeA, want{rcode: miekg.RcodeNameError, soa: true}},
		{"unknown node", "n9.node.nexus.", miekg.TypeA, want{rcode: miekg.RcodeNameError, soa: true}},
		{"addr name", "0a000102.addr.nexus.", miekg.TypeA, want{answer: []string{"10.0.1.2"}}},
		{"bad addr name", "0a0001.addr.nexus.", miekg.TypeA, want{rcode: miekg.RcodeNameError, soa: true}},
		{"branch", "service.nexus.", miekg.TypeA, want{soa: true}},
		{"apex A", "nexus.", miekg.TypeA, want{soa: true}},
		{"unknown kind", "web.other.nexus.", miekg.TypeA, want{rcode: miekg.RcodeNameError, soa: true}},
	}
	for _, p := range bothProtocols {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				r := e.query(tt.qname, tt.qtype, p.o)
				if r.Rcode != tt.want.rcode {
					t.Fatalf("rcode %s, want %s", miekg.RcodeToString[r.Rcode], miekg.RcodeToString[tt.want.rcode])
				}
				if !r.Authoritative || r.Truncated {
					t.Errorf("AA %v TC %v, want AA and no TC", r.Authoritative, r.Truncated)
				}
				var got []string
				for _, rr := range r.Answer {
					if !strings.EqualFold(rr.Header().Name, tt.qname) {
						t.Errorf("answer owner %q, want the question's name %q", rr.Header().Name, tt.qname)
					}
					if srv, ok := rr.(*miekg.SRV); ok {
						got = append(got, fmt.Sprintf("%d %s", srv.Port, srv.Target))
					}
				}
				if tt.qtype == miekg.TypeSRV {
					slices.Sort(got)
				} else {
					got = addrs(r.Answer)
				}
				if !reflect.DeepEqual(got, tt.want.answer) {
					t.Errorf("answer %v, want %v", got, tt.want.answer)
				}
				if got := addrs(r.Extra); !reflect.DeepEqual(got, tt.want.extra) {
					t.Errorf("additional %v, want %v", got, tt.want.extra)
				}
				if hasSOA(r, "nexus.") != tt.want.soa {
					t.Errorf("SOA in authority: %v, want %v (%v)", !tt.want.soa, tt.want.soa, r.Ns)
				}
			})
		}
	}
}

// TestApexSOA: the zone answers its own SOA.
func TestApexSOA(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Domain = "Consul.Example."; c.TTL = 30 * time.Second })
	r := e.query("consul.example.", miekg.TypeSOA, qopt{})
	if len(r.Answer) != 1 {
		t.Fatalf("answer %v, want one SOA", r.Answer)
	}
	soa, ok := r.Answer[0].(*miekg.SOA)
	if !ok || soa.Ns != "ns.consul.example." || soa.Minttl != 30 || soa.Hdr.Ttl != 30 {
		t.Errorf("SOA %v", r.Answer[0])
	}
}

// TestTTL: answers carry --dns-service-ttl.
func TestTTL(t *testing.T) {
	for _, ttl := range []time.Duration{0, 5 * time.Second} {
		e := newEnv(t, func(c *Config) { c.TTL = ttl })
		e.register("web", "web-1", "n1", "10.0.0.1", 80, registry.StatusPassing)
		r := e.query("web.service.nexus.", miekg.TypeA, qopt{})
		if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != uint32(ttl.Seconds()) {
			t.Errorf("ttl %s: answer %v", ttl, r.Answer)
		}
	}
}

// TestTruncation: an answer too large for UDP sets TC and holds what fits;
// over TCP it is complete; an EDNS0 buffer size is honoured.
func TestTruncation(t *testing.T) {
	e := newEnv(t, nil)
	const n = 200
	var all []string
	for i := 0; i < n; i++ {
		ip := fmt.Sprintf("10.1.%d.%d", i/250, 1+i%250)
		e.register("big", fmt.Sprintf("big-%d", i), "n1", ip, 8000+i, registry.StatusPassing)
		all = append(all, ip)
	}
	slices.Sort(all)
	tests := []struct {
		name     string
		qtype    uint16
		o        qopt
		limit    int // largest message
		complete bool
	}{
		{"udp", miekg.TypeA, qopt{}, 512, false},
		{"udp edns 1232", miekg.TypeA, qopt{edns: 1232}, 1232, false},
		{"udp edns below 512 is 512", miekg.TypeA, qopt{edns: 100}, 512, false},
		{"udp edns 4096", miekg.TypeA, qopt{edns: 4096}, 4096, true},
		{"udp edns 65000 capped to 4096", miekg.TypeSRV, qopt{edns: 65000}, 4096, false},
		{"tcp", miekg.TypeA, qopt{tcp: true}, miekg.MaxMsgSize, true},
		{"tcp srv", miekg.TypeSRV, qopt{tcp: true}, miekg.MaxMsgSize, true},
		{"udp srv", miekg.TypeSRV, qopt{}, 512, false},
	}
	counts := map[string]int{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.query("big.service.nexus.", tt.qtype, tt.o)
			r.Compress = true // as sent
			wire, err := r.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if len(wire) > tt.limit {
				t.Errorf("%d bytes, more than %d", len(wire), tt.limit)
			}
			if r.Truncated == tt.complete {
				t.Errorf("TC %v with %d answers, want %v", r.Truncated, len(r.Answer), !tt.complete)
			}
			if tt.complete && len(r.Answer) != n {
				t.Errorf("%d answers, want all %d", len(r.Answer), n)
			}
			if !tt.complete && (len(r.Answer) == 0 || len(r.Answer) >= n) {
				t.Errorf("%d answers, want some but not all", len(r.Answer))
			}
			if tt.qtype == miekg.TypeA && tt.complete && !reflect.DeepEqual(addrs(r.Answer), all) {
				t.Errorf("complete answer differs")
			}
			if tt.qtype == miekg.TypeSRV {
				// Every SRV target's address is in the additional section.
				extra := map[string]bool{}
				for _, rr := range r.Extra {
					if a, ok := rr.(*miekg.A); ok {
						extra[a.Hdr.Name] = true
					}
				}
				for _, rr := range r.Answer {
					if srv := rr.(*miekg.SRV); !extra[srv.Target] {
						t.Errorf("no additional record for %s", srv.Target)
					}
				}
			}
			if tt.o.edns > 0 && r.IsEdns0() == nil {
				t.Errorf("EDNS0 query answered without OPT")
			}
			counts[tt.name] = len(r.Answer)
		})
	}
	if counts["udp edns 1232"] <= counts["udp"] {
		t.Errorf("EDNS0 1232 gave %d answers, 512 bytes %d: the larger buffer is not used", counts["udp edns 1232"], counts["udp"])
	}
	if got := e.metric("nexus_dns_truncated_total"); got < 4 {
		t.Errorf("nexus_dns_truncated_total %v, want >= 4", got)
	}
}

// TestShuffled: the order of answers changes between queries.
func TestShuffled(t *testing.T) {
	e := newEnv(t, nil)
	for i := 1; i <= 5; i++ {
		e.register("web", fmt.Sprintf("web-%d", i), "n1", fmt.Sprintf("10.0.0.%d", i), 80, registry.StatusPassing)
	}
	firsts := map[string]bool{}
	for i := 0; i < 40 && len(firsts) < 2; i++ {
		r := e.query("web.service.nexus.", miekg.TypeA, qopt{})
		if len(r.Answer) != 5 {
			t.Fatalf("answer %v", r.Answer)
		}
		firsts[r.Answer[0].(*miekg.A).A.String()] = true
	}
	if len(firsts) < 2 {
		t.Errorf("40 answers all started with %v", firsts)
	}
}

// TestOnlyPassing: by default warning and critical instances are left out;
// with only-passing off warning ones are served, critical ones never.
func TestOnlyPassing(t *testing.T) {
	for _, tt := range []struct {
		onlyPassing bool
		want        []string
	}{{true, []string{"10.0.0.1"}}, {false, []string{"10.0.0.1", "10.0.0.2"}}} {
		t.Run(fmt.Sprint("only_passing=", tt.onlyPassing), func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.OnlyPassing = tt.onlyPassing })
			e.register("web", "web-1", "n1", "10.0.0.1", 80, registry.StatusPassing)
			e.register("web", "web-2", "n1", "10.0.0.2", 80, registry.StatusWarning)
			e.register("web", "web-3", "n1", "10.0.0.3", 80, registry.StatusCritical)
			for _, qtype := range []uint16{miekg.TypeA, miekg.TypeSRV} {
				r := e.query("web.service.nexus.", qtype, qopt{})
				got := addrs(r.Answer)
				if qtype == miekg.TypeSRV {
					got = addrs(r.Extra)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%s: %v, want %v", miekg.TypeToString[qtype], got, tt.want)
				}
			}
		})
	}
}

// TestCriticalDisappears: an instance turning critical leaves the answers
// within a second; back to passing, it returns.
func TestCriticalDisappears(t *testing.T) {
	e := newEnv(t, nil)
	e.register("web", "web-1", "n1", "10.0.0.1", 80, registry.StatusPassing)
	e.register("web", "web-2", "n1", "10.0.0.2", 80, registry.StatusPassing)
	has := func(r *retry.R, ip string, want bool) {
		for _, o := range []qopt{{}, {tcp: true}} {
			m, err := e.exchange("web.service.nexus.", miekg.TypeA, o)
			r.Check(err)
			if got := slices.Contains(addrs(m.Answer), ip); got != want {
				r.Fatalf("%s in %v: %v, want %v", ip, addrs(m.Answer), got, want)
			}
		}
	}
	retry.Run(t, func(r *retry.R) { has(r, "10.0.0.2", true) }) // the view is cached now
	e.setStatus("web", "web-2", registry.StatusCritical)
	start := time.Now()
	retry.Run(t, func(r *retry.R) { has(r, "10.0.0.2", false) }, retry.Timeout(time.Second), retry.What("web-2 gone after turning critical"))
	t.Logf("gone %v after turning critical", time.Since(start))
	e.setStatus("web", "web-2", registry.StatusPassing)
	retry.Run(t, func(r *retry.R) { has(r, "10.0.0.2", true) }, retry.Timeout(time.Second))
	// Deregistered: the name no longer exists.
	e.write(func(tx *registry.Tx) {
		if _, err := tx.DeregisterService("web"); err != nil {
			t.Fatal(err)
		}
	})
	retry.Run(t, func(r *retry.R) {
		m, err := e.exchange("web.service.nexus.", miekg.TypeA, qopt{})
		r.Check(err)
		if m.Rcode != miekg.RcodeNameError {
			r.Fatalf("rcode %s after deregistration", miekg.RcodeToString[m.Rcode])
		}
	}, retry.Timeout(time.Second))
}

// TestRestore: a snapshot restore (the whole store replaced) shows at once.
func TestRestore(t *testing.T) {
	e := newEnv(t, nil)
	e.register("web", "web-1", "n1", "10.0.0.1", 80, registry.StatusPassing)
	if got := addrs(e.query("web.service.nexus.", miekg.TypeA, qopt{}).Answer); len(got) != 1 {
		t.Fatalf("answer %v", got)
	}
	err := e.store.Restore(func(tx *registry.Tx) error {
		_, _, err := tx.RegisterInstance(registry.Instance{ID: "web-9", Service: "web", Type: "http", Node: "n2",
			Address: "10.0.0.9", Port: 80, Status: registry.StatusPassing})
		if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(e.query("web.service.nexus.", miekg.TypeA, qopt{}).Answer); !reflect.DeepEqual(got, []string{"10.0.0.9"}) {
		t.Errorf("after restore: %v, want [10.0.0.9]", got)
	}
}

// recursor starts a second miekg server in the test that answers every A
// query with 192.0.2.1, and returns its address.
func recursor(t *testing.T) string {
	t.Helper()
	pc, ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := miekg.HandlerFunc(func(w miekg.ResponseWriter, req *miekg.Msg) {
		m := new(miekg.Msg)
		m.SetReply(req)
		m.RecursionAvailable = true
		q := req.Question[0]
		if q.Qtype == miekg.TypeA {
			m.Answer = append(m.Answer, &miekg.A{Hdr: miekg.RR_Header{Name: q.Name, Rrtype: miekg.TypeA, Class: miekg.ClassINET, Ttl: 60},
				A: net.ParseIP("192.0.2.1")})
		}
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*miekg.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		if err := serve(srv); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// TestRecursors: names outside the domain go to the recursors (a dead one
// is skipped), else are REFUSED.
func TestRecursors(t *testing.T) {
	up := recursor(t)
	// A recursor that never answers: bound, but nothing reads (TCP
	// connections wait in the accept queue).
	dead, deadTCP, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	defer deadTCP.Close()
	t.Run("forwarded", func(t *testing.T) {
		e := newEnv(t, func(c *Config) {
			c.Recursors = []string{dead.LocalAddr().String(), up}
			c.RecursorTimeout = 500 * time.Millisecond
		})
		for _, p := range bothProtocols {
			r := e.query("www.Example.com.", miekg.TypeA, p.o)
			if r.Rcode != miekg.RcodeSuccess || !reflect.DeepEqual(addrs(r.Answer), []string{"192.0.2.1"}) || !r.RecursionAvailable {
				t.Errorf("%s: rcode %s answer %v RA %v", p.name, miekg.RcodeToString[r.Rcode], r.Answer, r.RecursionAvailable)
			}
		}
		if got := e.metric("nexus_dns_forwarded_total", "result", "answered"); got != 2 {
			t.Errorf("forwarded answered %v, want 2", got)
		}
		// The domain itself is still answered here.
		if r := e.query("nosuch.service.nexus.", miekg.TypeA, qopt{}); r.Rcode != miekg.RcodeNameError || !r.RecursionAvailable {
			t.Errorf("own domain: rcode %s RA %v", miekg.RcodeToString[r.Rcode], r.RecursionAvailable)
		}
	})
	t.Run("all recursors down", func(t *testing.T) {
		e := newEnv(t, func(c *Config) {
			c.Recursors = []string{dead.LocalAddr().String()}
			c.RecursorTimeout = 100 * time.Millisecond
		})
		if r := e.query("www.example.com.", miekg.TypeA, qopt{}); r.Rcode != miekg.RcodeServerFailure {
			t.Errorf("rcode %s, want SERVFAIL", miekg.RcodeToString[r.Rcode])
		}
	})
	t.Run("refused", func(t *testing.T) {
		e := newEnv(t, nil)
		for _, p := range bothProtocols {
			r := e.query("www.example.com.", miekg.TypeA, p.o)
			if r.Rcode != miekg.RcodeRefused || len(r.Answer) != 0 || r.RecursionAvailable {
				t.Errorf("%s: rcode %s answer %v", p.name, miekg.RcodeToString[r.Rcode], r.Answer)
			}
		}
		if got := e.metric("nexus_dns_queries_total", "type", "A", "rcode", "REFUSED"); got != 2 {
			t.Errorf("queries A/REFUSED %v, want 2", got)
		}
	})
}

// TestMetrics: queries are counted by type and rcode and timed.
func TestMetrics(t *testing.T) {
	e := newEnv(t, nil)
	e.register("web", "web-1", "n1", "10.0.0.1", 80, registry.StatusPassing)
	e.query("web.service.nexus.", miekg.TypeA, qopt{})
	e.query("web.service.nexus.", miekg.TypeSRV, qopt{tcp: true})
	e.query("nosuch.service.nexus.", miekg.TypeA, qopt{})
	e.query("web.service.nexus.", miekg.TypeMX, qopt{})
	for _, c := range []struct {
		typ, rcode string
		want       float64
	}{{"A", "NOERROR", 1}, {"SRV", "NOERROR", 1}, {"A", "NXDOMAIN", 1}, {"other", "NOERROR", 1}} {
		if got := e.metric("nexus_dns_queries_total", "type", c.typ, "rcode", c.rcode); got != c.want {
			t.Errorf("queries{type=%s,rcode=%s} = %v, want %v", c.typ, c.rcode, got, c.want)
		}
	}
	if got := e.metric("nexus_dns_query_duration_seconds"); got != 4 {
		t.Errorf("duration histogram holds %v queries, want 4", got)
	}
}

// TestBadQueries: queries the server does not serve get the right error.
func TestBadQueries(t *testing.T) {
	e := newEnv(t, nil)
	e.register("web", "web-1", "n1", "10.0.0.1", 80, registry.StatusPassing)
	tests := []struct {
		name  string
		msg   func() *miekg.Msg
		rcode int
	}{
		{"no question", func() *miekg.Msg { m := new(miekg.Msg); m.Id = 7; return m }, miekg.RcodeFormatError},
		{"notify", func() *miekg.Msg {
			m := new(miekg.Msg)
			m.SetNotify("nexus.")
			return m
		}, miekg.RcodeNotImplemented},
		{"class CH", func() *miekg.Msg {
			m := new(miekg.Msg)
			m.SetQuestion("web.service.nexus.", miekg.TypeA)
			m.Question[0].Qclass = miekg.ClassCHAOS
			return m
		}, miekg.RcodeRefused},
		{"EDNS version 1", func() *miekg.Msg {
			m := new(miekg.Msg)
			m.SetQuestion("web.service.nexus.", miekg.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
			return m
		}, miekg.RcodeBadVers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &miekg.Client{Net: "udp", Timeout: 5 * time.Second}
			r, _, err := c.Exchange(tt.msg(), e.srv.UDPAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", miekg.RcodeToString[r.Rcode], miekg.RcodeToString[tt.rcode])
			}
		})
	}
}

// TestConfig: New refuses what it cannot serve; Start reports a busy port.
func TestConfig(t *testing.T) {
	deps := Deps{Catalog: StoreCatalog{Store: registry.NewStore()}, Logger: testLogger()}
	for _, cfg := range []Config{
		{Addr: "127.0.0.1:0", Domain: "bad domain"},
		{Addr: "127.0.0.1:0", TTL: -time.Second},
		{Addr: "127.0.0.1:0", Recursors: []string{"8.8.8.8"}},
	} {
		if _, err := New(cfg, deps); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{}, Deps{Logger: testLogger()}); err == nil {
		t.Error("New without a catalog accepted")
	}
	e := newEnv(t, nil)
	other, err := New(Config{Addr: e.srv.UDPAddr().String()}, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); err == nil || !strings.Contains(err.Error(), e.srv.UDPAddr().String()) {
		t.Errorf("second server on a busy port: %v", err)
	}
}
