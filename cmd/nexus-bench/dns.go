package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nexus/nexus/internal/retry"
)

// nexus-bench dns: queries/s of one node's DNS interface against a service
// of --instances instances (docs/dns.md#benchmark). It starts one --dev
// agent on 127.0.0.1 (ports --port-base..+4, DNS at +4), registers the
// instances through the admin API, then runs --clients synchronous clients
// for --duration per query kind, each with its own socket. The queries are
// written and read with a few lines of DNS wire format here: the DNS
// library stays inside the dns package.

type dnsBenchConfig struct {
	nexus     string
	duration  time.Duration
	instances int
	clients   int
	kinds     []string // A/udp, SRV/udp, A/tcp, A/udp-edns
	portBase  int
	dir       string
}

func parseDNSFlags(args []string) (dnsBenchConfig, error) {
	c := dnsBenchConfig{}
	fs := flag.NewFlagSet("nexus-bench dns", flag.ContinueOnError)
	fs.StringVar(&c.nexus, "nexus", "bin/nexus", "nexus binary")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "load per query kind")
	fs.IntVar(&c.instances, "instances", 1000, "instances of the queried service")
	fs.IntVar(&c.clients, "clients", 16, "concurrent clients (one query in flight each)")
	only := fs.String("only", "A/udp,A/udp-edns,SRV/udp,A/tcp", "query kinds: A/udp, A/udp-edns (EDNS0 1232), SRV/udp, A/tcp")
	fs.IntVar(&c.portBase, "port-base", 29800, "agent ports: raft, gossip, http, gateway, dns from here")
	fs.StringVar(&c.dir, "dir", "", "directory for the agent's data and log (default a temp dir)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, k := range strings.Split(*only, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		if !slices.Contains([]string{"A/udp", "A/udp-edns", "SRV/udp", "A/tcp"}, k) {
			return c, fmt.Errorf("--only: unknown query kind %q", k)
		}
		c.kinds = append(c.kinds, k)
	}
	switch {
	case c.duration <= 0 || c.duration > 10*time.Minute:
		return c, errors.New("--duration must be in (0, 10m]")
	case c.instances < 1 || c.instances > 100000:
		return c, errors.New("--instances must be in 1..100000")
	case c.clients < 1 || c.clients > 4096:
		return c, errors.New("--clients must be in 1..4096")
	case c.portBase < 1024 || c.portBase > 65530:
		return c, errors.New("--port-base must be in 1024..65530")
	case len(c.kinds) == 0:
		return c, errors.New("--only names no query kind")
	}
	return c, nil
}

func runDNS(ctx context.Context, args []string) int {
	cfg, err := parseDNSFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nexus-bench dns:", err)
		return 2
	}
	if err := benchDNS(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nexus-bench dns:", err)
		return 1
	}
	return 0
}

func benchDNS(ctx context.Context, cfg dnsBenchConfig, out io.Writer) error {
	dir := cfg.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "nexus-bench-dns-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	p := func(i int) string { return strconv.Itoa(cfg.portBase + i) }
	httpAddr, dnsAddr := "127.0.0.1:"+p(2), "127.0.0.1:"+p(4)
	var procs processes
	defer procs.stopAll()
	pid, err := procs.start(filepath.Join(dir, "nexus.log"), nil, cfg.nexus, "agent", "--dev", "--node", "bench",
		"--data-dir", filepath.Join(dir, "data"), "--raft-port", p(0), "--gossip-port", p(1),
		"--http-addr", httpAddr, "--gateway-addr", "127.0.0.1:"+p(3), "--dns-addr", dnsAddr, "--log-level", "warn")
	if err != nil {
		return err
	}
	readyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = retry.Until(readyCtx, "agent ready", func() error {
		res, err := http.Get("http://" + httpAddr + "/ready")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("/ready: %d", res.StatusCode)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w (log %s)", err, filepath.Join(dir, "nexus.log"))
	}
	fmt.Fprintf(os.Stderr, "registering %d instances...\n", cfg.instances)
	if err := registerBenchInstances(ctx, "http://"+httpAddr, cfg.instances); err != nil {
		return err
	}
	fmt.Fprintf(out, "DNS queries/s, one --dev node (pid %d), service of %d passing instances, %d clients, %s per kind\n\n",
		pid, cfg.instances, cfg.clients, cfg.duration)
	fmt.Fprintln(out, "| query | queries/s | p50 ms | p99 ms | answers/query | truncated | errors | agent CPU/query |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|")
	for _, kind := range cfg.kinds {
		cpu0, _ := treeCPU(pid)
		r := dnsLoad(ctx, dnsAddr, kind, cfg.clients, cfg.duration)
		cpu1, _ := treeCPU(pid)
		perQuery := "-"
		if r.queries > 0 {
			perQuery = fmt.Sprintf("%.1f µs", float64((cpu1-cpu0).Microseconds())/float64(r.queries))
		}
		slices.Sort(r.lat)
		fmt.Fprintf(out, "| %s | %.0f | %.3f | %.3f | %.1f | %.0f%% | %d | %s |\n", kind,
			float64(r.queries)/r.elapsed.Seconds(), ms(percentile(r.lat, 50)), ms(percentile(r.lat, 99)),
			float64(r.answers)/float64(max(r.queries, 1)), 100*float64(r.truncated)/float64(max(r.queries, 1)), r.errors, perQuery)
	}
	return nil
}

// registerBenchInstances registers n passing instances of "big" (no check)
// with 16 writers.
func registerBenchInstances(ctx context.Context, api string, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	next := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body, _ := json.Marshal(map[string]any{"name": "big", "type": "http", "id": "big-" + strconv.Itoa(i),
					"address": fmt.Sprintf("10.%d.%d.%d", 1+i/65536, i/256%256, i%256), "port": 8000 + i%1000})
				req, _ := http.NewRequestWithContext(ctx, "POST", api+"/services/register", bytes.NewReader(body))
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				res.Body.Close()
				if res.StatusCode >= 300 {
					errs <- fmt.Errorf("register big-%d: status %d", i, res.StatusCode)
					return
				}
			}
		}()
	}
	var err error
loop:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case err = <-errs:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

type dnsLoadResult struct {
	queries, answers, truncated, errors int
	lat                                 []time.Duration
	elapsed                             time.Duration
}

// dnsLoad runs clients synchronous clients against addr until d passes.
func dnsLoad(ctx context.Context, addr, kind string, clients int, d time.Duration) dnsLoadResult {
	qtype, edns, network := uint16(1), uint16(0), "udp" // A
	switch kind {
	case "SRV/udp":
		qtype = 33
	case "A/udp-edns":
		edns = 1232
	case "A/tcp":
		network = "tcp"
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	total := dnsLoadResult{}
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := dnsClient(ctx, addr, network, "big.service.nexus", qtype, edns)
			mu.Lock()
			total.queries += r.queries
			total.answers += r.answers
			total.truncated += r.truncated
			total.errors += r.errors
			total.lat = append(total.lat, r.lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	return total
}

// tcpQueriesPerConn is how many queries a client sends on one TCP
// connection: the server (miekg's default MaxTCPQueries) closes it after 128.
const tcpQueriesPerConn = 128

// dnsClient sends one query at a time on its own connection until ctx ends.
func dnsClient(ctx context.Context, addr, network, name string, qtype, edns uint16) dnsLoadResult {
	var r dnsLoadResult
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	buf := make([]byte, 65536+2)
	onConn := 0
	for ctx.Err() == nil {
		if conn != nil && network == "tcp" && onConn == tcpQueriesPerConn {
			conn.Close() // the server closes it after this many anyway
			conn = nil
		}
		if conn == nil {
			onConn = 0
			c, err := net.DialTimeout(network, addr, 2*time.Second)
			if err != nil {
				r.errors++
				time.Sleep(10 * time.Millisecond)
				continue
			}
			conn = c
		}
		id := uint16(rand.Uint32())
		q := dnsQuery(id, name, qtype, edns)
		t0 := time.Now()
		_ = conn.SetDeadline(t0.Add(2 * time.Second))
		resp, err := dnsExchange(conn, network, q, buf)
		onConn++
		if err != nil {
			conn.Close()
			conn = nil
			r.errors++
			continue
		}
		r.lat = append(r.lat, time.Since(t0))
		h, ok := parseDNSHeader(resp)
		if !ok || h.id != id || h.rcode != 0 || h.ancount == 0 {
			r.errors++
			continue
		}
		r.queries++
		r.answers += int(h.ancount)
		if h.tc {
			r.truncated++
		}
	}
	return r
}

func dnsExchange(conn net.Conn, network string, q, buf []byte) ([]byte, error) {
	if network == "udp" {
		if _, err := conn.Write(q); err != nil {
			return nil, err
		}
		n, err := conn.Read(buf)
		return buf[:n], err
	}
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
	if _, err := conn.Write(append(msg, q...)); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(conn, buf[:2]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(buf))
	_, err := io.ReadFull(conn, buf[:n])
	return buf[:n], err
}

// dnsQuery is a query in DNS wire format (RFC 1035 4.1): header with RD,
// one question of class IN, and an EDNS0 OPT record when edns > 0.
func dnsQuery(id uint16, name string, qtype, edns uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = binary.BigEndian.AppendUint16(b, 0x0100) // RD
	b = binary.BigEndian.AppendUint16(b, 1)      // QDCOUNT
	b = append(b, 0, 0, 0, 0)                    // ANCOUNT, NSCOUNT
	arcount := uint16(0)
	if edns > 0 {
		arcount = 1
	}
	b = binary.BigEndian.AppendUint16(b, arcount)
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, 1) // IN
	if edns > 0 {
		b = append(b, 0)                           // root name
		b = binary.BigEndian.AppendUint16(b, 41)   // OPT
		b = binary.BigEndian.AppendUint16(b, edns) // UDP payload size
		b = append(b, 0, 0, 0, 0, 0, 0)            // extended rcode, version, flags, RDLENGTH
	}
	return b
}

type dnsHeader struct {
	id      uint16
	tc      bool
	rcode   int
	ancount uint16
}

func parseDNSHeader(b []byte) (dnsHeader, bool) {
	if len(b) < 12 {
		return dnsHeader{}, false
	}
	flags := binary.BigEndian.Uint16(b[2:])
	return dnsHeader{
		id: binary.BigEndian.Uint16(b), tc: flags&0x0200 != 0, rcode: int(flags & 0xF),
		ancount: binary.BigEndian.Uint16(b[6:]),
	}, flags&0x8000 != 0
}
