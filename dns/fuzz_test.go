package dns

import (
	"strings"
	"testing"

	miekg "github.com/miekg/dns"

	"github.com/nexus/nexus/registry"
)

// Fuzz targets for the query parser and the whole answer path:
//
//	go test ./dns -run=^$ -fuzz=FuzzParseName -fuzztime=1m
//	go test ./dns -run=^$ -fuzz=FuzzQuery -fuzztime=1m
//
// `make fuzz` runs every target for longer, `make fuzz-ci` briefly.

// FuzzParseName: any name parses without panicking; case never matters;
// every service reading names a service and rebuilds the name asked.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"web.service.nexus.", "v1.web.service.nexus.", "_web._tcp.service.nexus.",
		"_a.b._v1.service.nexus.", "n1.node.nexus.", "0a000001.addr.nexus.", "nexus.", "a..b.nexus.",
		"_._.service.nexus.", "\\.service.nexus.", "example.com."} {
		f.Add(s, "nexus")
	}
	f.Fuzz(func(t *testing.T, qname, domain string) {
		domain = strings.ToLower(strings.TrimSuffix(domain, "."))
		if !validDomain(domain) {
			return
		}
		n, in := parseName(qname, domain)
		n2, in2 := parseName(strings.ToUpper(qname), domain)
		if in != in2 || n.kind != n2.kind || len(n.candidates) != len(n2.candidates) || n.node != n2.node || n.addr != n2.addr {
			t.Fatalf("%q and its upper case parse differently: %+v %v / %+v %v", qname, n, in, n2, in2)
		}
		lower := strings.TrimSuffix(strings.ToLower(qname), ".")
		for _, c := range n.candidates {
			if c.service == "" {
				t.Fatalf("%q: reading with an empty service: %+v", qname, n.candidates)
			}
			if strings.HasPrefix(lower, "_") {
				continue // RFC 2782 form: "_" prefixes are not part of the names
			}
			rebuilt := c.service + ".service." + domain
			if c.tag != "" {
				rebuilt = c.tag + "." + rebuilt
			}
			if rebuilt != lower {
				t.Fatalf("%q: reading %+v rebuilds %q", qname, c, rebuilt)
			}
		}
		if n.kind == kindAddr {
			if back, _ := parseName(addrName(n.addr, domain), domain); back.addr != n.addr {
				t.Fatalf("%q: address %s does not round-trip", qname, n.addr)
			}
		}
	})
}

// FuzzQuery: any message the server accepts is answered with one that packs,
// fits the client's UDP buffer, and answers the question asked. Names
// outside the domain are REFUSED here (no recursors: no network).
func FuzzQuery(f *testing.F) {
	store := registry.NewStore()
	registerAll(f, store, 1,
		instance("web", "web-1", "n1", "10.0.0.1", 80, registry.StatusPassing, "v1"),
		instance("web", "web-2", "n2", "fd00::2", 81, registry.StatusPassing),
		instance("web", "web-3", "n2", "db.example.org", 82, registry.StatusPassing),
		instance("web", "web-4", "n1", "10.0.0.4", 83, registry.StatusCritical))
	bigService(f, store, 100)
	s := newServer(f, store, Config{Addr: "127.0.0.1:0", OnlyPassing: true}, nil)
	for _, q := range []struct {
		name string
		t    uint16
		edns uint16
	}{{"web.service.nexus.", miekg.TypeA, 0}, {"_web._tcp.service.nexus.", miekg.TypeSRV, 1232},
		{"big.service.nexus.", miekg.TypeA, 0}, {"big.service.nexus.", miekg.TypeSRV, 700},
		{"n1.node.nexus.", miekg.TypeANY, 0}, {"nexus.", miekg.TypeSOA, 0}, {"nosuch.service.nexus.", miekg.TypeA, 0}} {
		m := new(miekg.Msg)
		m.SetQuestion(q.name, q.t)
		if q.edns > 0 {
			m.SetEdns0(q.edns, false)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, wire []byte, tcp bool) {
		req := new(miekg.Msg)
		if req.Unpack(wire) != nil || req.Response {
			return // miekg's server drops these before the handler
		}
		resp := s.respond(req, tcp)
		if resp.Id != req.Id || !resp.Response {
			t.Fatalf("answer id %d response %v for query %d", resp.Id, resp.Response, req.Id)
		}
		b, err := resp.Pack()
		if err != nil {
			t.Fatalf("answer does not pack: %v\n%v", err, resp)
		}
		limit := miekg.MaxMsgSize
		if !tcp {
			limit = miekg.MinMsgSize
			if opt := req.IsEdns0(); opt != nil && opt.Version() == 0 {
				limit = max(limit, min(int(opt.UDPSize()), maxUDPSize))
			}
		}
		if len(b) > limit {
			t.Fatalf("%d-byte answer for a %d-byte buffer", len(b), limit)
		}
		if len(req.Question) == 1 && resp.Rcode != miekg.RcodeFormatError &&
			(len(resp.Question) != 1 || resp.Question[0] != req.Question[0]) {
			t.Fatalf("question %v answered as %v", req.Question, resp.Question)
		}
	})
}
