package main

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestParseDNSFlags(t *testing.T) {
	c, err := parseDNSFlags([]string{"--only", "A/udp, SRV/udp", "--clients", "4"})
	if err != nil || len(c.kinds) != 2 || c.clients != 4 || c.instances != 1000 {
		t.Fatalf("%+v %v", c, err)
	}
	for _, args := range [][]string{
		{"--only", "MX/udp"}, {"--only", ","}, {"--duration", "0s"}, {"--instances", "0"},
		{"--clients", "5000"}, {"--port-base", "80"},
	} {
		if _, err := parseDNSFlags(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// TestDNSQueryWire checks the hand-made query against RFC 1035's layout.
func TestDNSQueryWire(t *testing.T) {
	q := dnsQuery(0xbeef, "big.service.nexus.", 33, 1232)
	want := "\x03big\x07service\x05nexus\x00"
	if binary.BigEndian.Uint16(q) != 0xbeef || binary.BigEndian.Uint16(q[4:]) != 1 || binary.BigEndian.Uint16(q[10:]) != 1 {
		t.Fatalf("header % x", q[:12])
	}
	if got := string(q[12 : 12+len(want)]); got != want {
		t.Fatalf("name %q, want %q", got, want)
	}
	rest := q[12+len(want):]
	if binary.BigEndian.Uint16(rest) != 33 || binary.BigEndian.Uint16(rest[2:]) != 1 {
		t.Fatalf("qtype/qclass % x", rest[:4])
	}
	opt := rest[4:]
	if len(opt) != 11 || opt[0] != 0 || binary.BigEndian.Uint16(opt[1:]) != 41 || binary.BigEndian.Uint16(opt[3:]) != 1232 {
		t.Fatalf("OPT % x", opt)
	}
	if q := dnsQuery(1, "a", 1, 0); binary.BigEndian.Uint16(q[10:]) != 0 || !strings.HasSuffix(string(q), "\x01a\x00\x00\x01\x00\x01") {
		t.Fatalf("without EDNS: % x", q)
	}
	resp := append([]byte{0xbe, 0xef, 0x86, 0x03, 0, 1, 0, 7, 0, 0, 0, 0}, q[12:]...)
	h, ok := parseDNSHeader(resp)
	if !ok || h.id != 0xbeef || !h.tc || h.rcode != 3 || h.ancount != 7 {
		t.Fatalf("parsed %+v %v", h, ok)
	}
	if _, ok := parseDNSHeader(q); ok {
		t.Error("a query parsed as a response")
	}
}
