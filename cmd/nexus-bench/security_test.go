package main

import (
	"crypto/tls"
	"encoding/base64"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/nexus/nexus/internal/tlsutil/certgen"
)

func TestParseSecurityFlags(t *testing.T) {
	c, err := parseSecurityFlags([]string{"--nexus", "bin/nexus"})
	if err != nil {
		t.Fatal(err)
	}
	if c.duration != 10*time.Second || c.rounds != 5 || c.clients != 64 || c.threads != 2 || c.connections != 64 ||
		!c.mtls || c.portBase != 29700 || c.lock != "/tmp/nexus-bench.lock" || !c.runs("admin") || !c.runs("gateway") {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = parseSecurityFlags([]string{"--nexus", "x", "--only", "gateway", "--mtls=false"})
	if err != nil || c.runs("admin") || !c.runs("gateway") || c.mtls {
		t.Fatalf("--only gateway --mtls=false: %+v %v", c, err)
	}
	if c, err := parseSecurityFlags([]string{"--serve-upstream", "127.0.0.1:1"}); err != nil || c.serveUp == "" {
		t.Fatalf("--serve-upstream needs no --nexus: %v", err)
	}
	for _, bad := range [][]string{
		{},
		{"--nexus", "x", "--only", "admin,foo"},
		{"--nexus", "x", "--gateway-duration", "1500ms"},
		{"--nexus", "x", "--rounds", "0"},
		{"--nexus", "x", "--connections", "1", "--threads", "2"},
		{"--nexus", "x", "--port-base", "65500"},
		{"--nexus", "x", "extra"},
	} {
		if _, err := parseSecurityFlags(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// Every port of a run is distinct, and none is a port of the raft or
// gateway benches.
func TestSecurityPortsDistinct(t *testing.T) {
	c, err := parseSecurityFlags([]string{"--nexus", "x"})
	if err != nil {
		t.Fatal(err)
	}
	g := c.gatewayPorts()
	_, up, _ := net.SplitHostPort(g.upstream)
	seen := map[int]string{}
	add := func(name string, ps ...int) {
		for _, p := range ps {
			if prev, dup := seen[p]; dup {
				t.Errorf("port %d used by %s and %s", p, prev, name)
			}
			seen[p] = name
		}
	}
	for _, n := range []struct {
		name string
		p    nodePorts
	}{{"plain", c.plainPorts()}, {"secure", c.securePorts()}, {"gw-http", g.plain}, {"gw-https", g.tls}} {
		add(n.name, n.p.raft, n.p.gossip, n.p.http, n.p.gateway)
	}
	if up != "29740" {
		t.Errorf("upstream %s", g.upstream)
	}
	for _, other := range []int{28300, 28301, 28500, 28080, 29001, 29002, 29080, 29300, 29301, 29500, 29400, 29401, 29600, 29180} {
		if name, ok := seen[other]; ok {
			t.Errorf("port %d (%s) is used by another bench", other, name)
		}
	}
}

// The generation itself is certgen's (tested there); this checks the run's
// layout: every node's files name the one shared ca.pem.
func TestWriteTLSFiles(t *testing.T) {
	ca, err := certgen.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f1, err := writeTLSFiles(ca, dir, "n1", "n1", "127.0.0.11")
	if err != nil {
		t.Fatal(err)
	}
	f2, err := writeTLSFiles(ca, dir, "n2", "n2", "127.0.0.12")
	if err != nil {
		t.Fatal(err)
	}
	if f1.CA != filepath.Join(dir, "ca.pem") || f2.CA != f1.CA || f1.Cert != filepath.Join(dir, "n1.pem") || f1.Key != filepath.Join(dir, "n1-key.pem") {
		t.Fatalf("files: %+v %+v", f1, f2)
	}
	if _, err := tls.LoadX509KeyPair(f2.Cert, f2.Key); err != nil {
		t.Fatal(err)
	}
}

func TestNewGossipKey(t *testing.T) {
	a, err := newGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newGossipKey()
	raw, err := base64.StdEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Fatalf("key %q: %d bytes, %v", a, len(raw), err)
	}
	if a == b {
		t.Fatal("two keys are equal")
	}
}

func TestParseAgentStart(t *testing.T) {
	log := []byte(`=== nexus-bench security: nexus agent ...
{"time":"x","level":"INFO","msg":"nexus agent started","tls":false,"gossip_encrypted":false}
{"time":"x","level":"INFO","msg":"became leader"}
{"time":"y","level":"INFO","msg":"nexus agent started","tls":true,"gateway_tls":false,"gossip_encrypted":true,"raft_tls":true}
`)
	a, ok := parseAgentStart(log)
	if !ok || fmtFlag(a.TLS) != "true" || fmtFlag(a.RaftTLS) != "true" || fmtFlag(a.GossipEncrypted) != "true" {
		t.Fatalf("%+v %v", a, ok)
	}
	a, ok = parseAgentStart(log[:strings.Index(string(log), `{"time":"x","level":"INFO","msg":"became`)])
	if !ok || fmtFlag(a.RaftTLS) != "not reported" || fmtFlag(a.TLS) != "false" {
		t.Fatalf("older agent: %+v %v", a, ok)
	}
	if _, ok := parseAgentStart([]byte("nothing\n")); ok {
		t.Fatal("found a start line in nothing")
	}
}

func TestTokenTransportSendsToken(t *testing.T) {
	ln := fasthttputil.NewInmemoryListener()
	defer ln.Close()
	got := make(chan string, 4)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		got <- string(ctx.Request.Header.Peek("X-Nexus-Token"))
	}}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Shutdown()
	c := newLoadClient(1)
	c.Dial = func(string) (net.Conn, error) { return ln.Dial() }
	c.Transport = tokenTransport{token: "s3cret"}
	for i := 0; i < 2; i++ {
		if r := doFast(c, "PUT", "http://node/config/w0000001", []byte(`"v"`), 200, time.Second); !r.ok {
			t.Fatal(r.err)
		}
		if tok := <-got; tok != "s3cret" {
			t.Fatalf("request %d: token %q", i, tok)
		}
	}
}

func TestSecurityMarkdown(t *testing.T) {
	ph := func(cfg string, round int, phase string, clients int, ops, p99, cpu float64) SecPhase {
		return SecPhase{PhaseResult: PhaseResult{Phase: phase, Clients: clients, OpsPerSec: ops, P50Ms: 1, P99Ms: p99}, Config: cfg, Round: round, CPUPerOp: cpu}
	}
	r := SecurityReport{Rounds: 3, Duration: "10s", GwDuration: "10s", Threads: 2, Conns: 64,
		Secure: []string{"s1 start log: tls=true raft_tls=true gossip_encrypted=true"},
		Admin: []SecPhase{
			ph("plain", 1, "config write", 64, 4000, 30, 200), ph("secure", 1, "config write", 64, 3000, 40, 260),
			ph("plain", 2, "config write", 64, 5000, 20, 210), ph("secure", 2, "config write", 64, 3600, 45, 250),
			ph("plain", 3, "config write", 64, 4500, 25, 190), ph("secure", 3, "config write", 64, 3300, 50, 270),
		},
		Gateway: []SecGateway{
			{Target: "gateway HTTP", Round: 1, RPS: 20000, P50Ms: 2, P99Ms: 10, CPUPerReq: 30},
			{Target: "gateway HTTPS", Round: 1, RPS: 15000, P50Ms: 3, P99Ms: 12, CPUPerReq: 40},
		},
	}
	md := securityMarkdown(r)
	for _, want := range []string{
		"| config write | 64 | 4500.0 | 3300.0 | **0.73x** | 1.00 ms → 1.00 ms | 25.0 ms → 45.0 ms | 200 µs → 260 µs (1.30x) | 0/0 |",
		"- config write, 64 clients: plain 4000, 5000, 4500; secure 3000, 3600, 3300",
		"| gateway HTTP | 20000 | 2.00 ms | 10.0 ms | 30.0 µs | 0 | 20000 |",
		"| gateway HTTPS / gateway HTTP | **0.75x** | 1.50x | 1.20x | 1.33x | | |",
		"- s1 start log: tls=true raft_tls=true",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
}
