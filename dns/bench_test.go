package dns

import (
	"fmt"
	"net"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/nexus/nexus/registry"
)

// Benchmarks: one node answering for a 1,000-instance service.
//
//	go test ./dns -run '^$' -bench . -benchtime 3s
//
// BenchmarkRespond is the answer path alone (no sockets); BenchmarkServer
// sends real queries with miekg's client (8 in flight per CPU) and reports
// queries/s.

// bigService registers n passing instances of "big", spread over n1 and n2.
func bigService(tb testing.TB, store *registry.Store, n int) {
	tb.Helper()
	insts := make([]registry.Instance, 0, n)
	for i := 0; i < n; i++ {
		node := []string{"n2", "n1"}[i%2]
		insts = append(insts, instance("big", fmt.Sprintf("big-%d", i), node, fmt.Sprintf("10.1.%d.%d", i/250, 1+i%250),
			8000+i%1000, registry.StatusPassing, "v1"))
	}
	registerAll(tb, store, 1, insts...)
}

func BenchmarkRespond(b *testing.B) {
	store := registry.NewStore()
	bigService(b, store, 1000)
	s := newServer(b, store, Config{Addr: "127.0.0.1:0", OnlyPassing: true}, nil)
	for _, c := range []struct {
		name  string
		qname string
		qtype uint16
		tcp   bool
		edns  uint16
	}{
		{"A/udp", "big.service.nexus.", miekg.TypeA, false, 0},
		{"A/udp-edns-1232", "big.service.nexus.", miekg.TypeA, false, 1232},
		{"SRV/udp", "_big._tcp.service.nexus.", miekg.TypeSRV, false, 0},
		{"A/tcp", "big.service.nexus.", miekg.TypeA, true, 0},
		{"SRV/tcp", "_big._tcp.service.nexus.", miekg.TypeSRV, true, 0},
		{"NXDOMAIN", "nosuch.service.nexus.", miekg.TypeA, false, 0},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := new(miekg.Msg)
			req.SetQuestion(c.qname, c.qtype)
			if c.edns > 0 {
				req.SetEdns0(c.edns, false)
			}
			b.ReportAllocs()
			for b.Loop() {
				resp := s.respond(req, c.tcp)
				if _, err := resp.Pack(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkServer(b *testing.B) {
	store := registry.NewStore()
	bigService(b, store, 1000)
	s := newServer(b, store, Config{Addr: "127.0.0.1:0", OnlyPassing: true}, nil)
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown(b.Context())
	for _, c := range []struct {
		name, net string
		qtype     uint16
	}{{"A/udp", "udp", miekg.TypeA}, {"SRV/udp", "udp", miekg.TypeSRV}, {"A/tcp", "tcp", miekg.TypeA}} {
		b.Run(c.name, func(b *testing.B) {
			addr := s.UDPAddr().String()
			if c.net == "tcp" {
				addr = s.TCPAddr().String()
			}
			b.SetParallelism(8) // queries in flight per CPU
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				client := &miekg.Client{Net: c.net, Timeout: 5 * time.Second}
				conn, err := client.Dial(addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer func() { conn.Close() }()
				req := new(miekg.Msg)
				req.SetQuestion("big.service.nexus.", c.qtype)
				for pb.Next() {
					r, _, err := client.ExchangeWithConn(req, conn)
					if err != nil && c.net == "tcp" {
						// The server closes a TCP connection after 128
						// queries (miekg's MaxTCPQueries): redial once.
						conn.Close()
						if conn, err = client.Dial(addr); err == nil {
							r, _, err = client.ExchangeWithConn(req, conn)
						}
					}
					if err != nil {
						b.Error(err)
						return
					}
					if len(r.Answer) == 0 {
						b.Errorf("empty answer: %v", r)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "queries/s")
		})
	}
}

// BenchmarkServerBaseline is the same-run baseline of BenchmarkServer: a
// bare miekg/dns server on the same machine that answers every query with
// the answer Nexus gives (computed once, id rewritten), so the ratio of the
// two is what the catalog lookup, the shuffling and the encoding cost on
// top of the library and the sockets. Run both with -count N to
// interleave rounds:
//
//	go test ./dns -run '^$' -bench 'Server' -benchtime 3s -count 5
func BenchmarkServerBaseline(b *testing.B) {
	store := registry.NewStore()
	bigService(b, store, 1000)
	s := newServer(b, store, Config{Addr: "127.0.0.1:0", OnlyPassing: true}, nil)
	req := new(miekg.Msg)
	req.SetQuestion("big.service.nexus.", miekg.TypeA)
	canned := s.respond(req, false)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &miekg.Server{PacketConn: pc, Handler: miekg.HandlerFunc(func(w miekg.ResponseWriter, q *miekg.Msg) {
		m := canned.Copy()
		m.Id = q.Id
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	defer srv.Shutdown()
	b.Run("A/udp", func(b *testing.B) {
		b.SetParallelism(8)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			client := &miekg.Client{Net: "udp", Timeout: 5 * time.Second}
			conn, err := client.Dial(pc.LocalAddr().String())
			if err != nil {
				b.Error(err)
				return
			}
			defer conn.Close()
			for pb.Next() {
				r, _, err := client.ExchangeWithConn(req, conn)
				if err != nil || len(r.Answer) == 0 {
					b.Errorf("baseline answer: %v %v", r, err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "queries/s")
	})
}
