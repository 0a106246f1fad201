package dns

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		qname, domain string
		want          name
		inDomain      bool
	}{
		{"nexus.", "nexus", name{kind: kindApex}, true},
		{"NEXUS", "nexus", name{kind: kindApex}, true},
		{"example.com.", "nexus", name{}, false},
		{"xnexus.", "nexus", name{}, false},
		{"web.service.nexus.", "nexus", name{kind: kindService, candidates: []serviceName{{service: "web"}}}, true},
		{"Web.Service.Nexus.", "nexus", name{kind: kindService, candidates: []serviceName{{service: "web"}}}, true},
		{"v1.web.service.nexus.", "nexus", name{kind: kindService, candidates: []serviceName{{service: "v1.web"}, {service: "web", tag: "v1"}}}, true},
		{"a.b.c.service.nexus.", "nexus", name{kind: kindService, candidates: []serviceName{
			{service: "a.b.c"}, {service: "b.c", tag: "a"}, {service: "c", tag: "a.b"}}}, true},
		{"_web._tcp.service.nexus.", "nexus", name{kind: kindService, candidates: []serviceName{{service: "web"}}}, true},
		{"_web._V1.service.nexus.", "nexus", name{kind: kindService, candidates: []serviceName{{service: "web", tag: "v1"}}}, true},
		{"_api.v1._tcp.service.nexus.", "nexus", name{kind: kindService, candidates: []serviceName{{service: "api.v1"}}}, true},
		{"_._tcp.service.nexus.", "nexus", name{kind: kindService}, true},
		{"web.service.dc.example.", "dc.example", name{kind: kindService, candidates: []serviceName{{service: "web"}}}, true},
		{"service.nexus.", "nexus", name{kind: kindBranch}, true},
		{"node.nexus.", "nexus", name{kind: kindBranch}, true},
		{"addr.nexus.", "nexus", name{kind: kindBranch}, true},
		{"other.nexus.", "nexus", name{}, true},
		{"N1.node.nexus.", "nexus", name{kind: kindNode, node: "n1"}, true},
		{"host.dc1.node.nexus.", "nexus", name{kind: kindNode, node: "host.dc1"}, true},
		{"7f000001.addr.nexus.", "nexus", name{kind: kindAddr, addr: netip.MustParseAddr("127.0.0.1")}, true},
		{"FD000000000000000000000000000001.addr.nexus.", "nexus", name{kind: kindAddr, addr: netip.MustParseAddr("fd00::1")}, true},
		{"7f0000.addr.nexus.", "nexus", name{}, true},
		{"7f00000g.addr.nexus.", "nexus", name{}, true},
		{"a.7f000001.addr.nexus.", "nexus", name{}, true},
		{"a..service.nexus.", "nexus", name{}, true},
		{".nexus.", "nexus", name{}, true},
	}
	for _, tt := range tests {
		got, in := parseName(tt.qname, tt.domain)
		if in != tt.inDomain || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseName(%q, %q) = %+v, %v; want %+v, %v", tt.qname, tt.domain, got, in, tt.want, tt.inDomain)
		}
	}
}

func TestAddrName(t *testing.T) {
	for _, s := range []string{"10.0.1.2", "fd00::10", "::1"} {
		a := netip.MustParseAddr(s)
		n, _ := parseName(addrName(a, "nexus"), "nexus")
		if n.kind != kindAddr || n.addr != a {
			t.Errorf("%s: %s parses to %+v", s, addrName(a, "nexus"), n)
		}
	}
}
