package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/internal/proccluster"
	"github.com/nexus/nexus/internal/tlsutil/certgen"
)

// securityConfig are the flags of `nexus-bench security`: the cost of TLS
// and ACLs, measured against the same thing without them, interleaved.
type securityConfig struct {
	nexus       string
	duration    time.Duration // each admin write phase
	rounds      int
	clients     int
	gwDuration  time.Duration // each wrk measurement
	threads     int
	connections int
	mtls        bool
	only        string
	lock        string
	dir         string
	baseIP      string
	portBase    int
	out         string
	verbose     bool
	agentArgs   []string
	serveUp     string // internal: run the gateway upstream on this address
}

// nodePorts are the ports of one node (or of every node of a cluster).
type nodePorts struct{ raft, gossip, http, gateway int }

func portsAt(base int) nodePorts { return nodePorts{base, base + 1, base + 2, base + 3} }

// Port layout from --port-base B: plain cluster B..B+3, secure cluster
// B+10..B+13 (Raft, gossip, admin API, gateway; on BaseIP .11-.13), the
// gateway nodes B+20..B+23 (HTTP) and B+30..B+33 (HTTPS) on 127.0.0.1, the
// upstream B+40.
func (c securityConfig) plainPorts() nodePorts  { return portsAt(c.portBase) }
func (c securityConfig) securePorts() nodePorts { return portsAt(c.portBase + 10) }

type gatewayPortSet struct {
	plain, tls nodePorts
	upstream   string
}

func (c securityConfig) gatewayPorts() gatewayPortSet {
	return gatewayPortSet{plain: portsAt(c.portBase + 20), tls: portsAt(c.portBase + 30),
		upstream: fmt.Sprintf("127.0.0.1:%d", c.portBase+40)}
}

func (c securityConfig) runs(part string) bool {
	if c.only == "" {
		return true
	}
	for _, p := range strings.Split(c.only, ",") {
		if strings.TrimSpace(p) == part {
			return true
		}
	}
	return false
}

func parseSecurityFlags(args []string) (securityConfig, error) {
	var c securityConfig
	fs := flag.NewFlagSet("security", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.nexus, "nexus", "", "path of the nexus binary (required)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "duration of each admin write phase")
	fs.IntVar(&c.rounds, "rounds", 5, "interleaved rounds (plain and secure alternate; the order flips every round); medians are reported")
	fs.IntVar(&c.clients, "clients", 64, "concurrent writers of the throughput phase (the latency phase has 1)")
	fs.DurationVar(&c.gwDuration, "gateway-duration", 10*time.Second, "wrk duration of each gateway measurement (whole seconds)")
	fs.IntVar(&c.threads, "threads", 2, "wrk threads")
	fs.IntVar(&c.connections, "connections", 64, "wrk connections")
	fs.BoolVar(&c.mtls, "mtls", true, "admin API requires client certificates (tls_client_ca_file); the load generator presents one")
	fs.StringVar(&c.only, "only", "", "comma-separated subset: admin,gateway")
	fs.StringVar(&c.lock, "lock", "/tmp/nexus-bench.lock", "lock file held while measuring (waited for if present); empty: none")
	fs.StringVar(&c.dir, "dir", "", "directory for data dirs, certificates and logs (default: a temporary one, removed at the end)")
	fs.StringVar(&c.baseIP, "base-ip", "127.0.0.", "node IP prefix of the 3-node clusters; nodes are .11, .12, .13")
	fs.IntVar(&c.portBase, "port-base", 29700, "first port: plain cluster +0..3, secure cluster +10..13, gateway nodes +20..23 and +30..33, upstream +40")
	fs.StringVar(&c.out, "out", "", "also write the results as JSON to this file")
	fs.BoolVar(&c.verbose, "verbose", false, "log cluster events to stderr")
	fs.Var((*stringList)(&c.agentArgs), "agent-arg", "extra argument for every nexus agent (repeatable)")
	fs.StringVar(&c.serveUp, "serve-upstream", "", "internal: serve the benchmark upstream on this address")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.serveUp != "" {
		return c, nil
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if c.nexus == "" {
		return c, errors.New("--nexus PATH is required")
	}
	if c.duration <= 0 || c.rounds < 1 || c.clients < 1 {
		return c, errors.New("--duration, --rounds and --clients must be positive")
	}
	if c.gwDuration < time.Second || c.gwDuration%time.Second != 0 {
		return c, errors.New("--gateway-duration must be whole seconds (wrk -d)")
	}
	if c.threads < 1 || c.connections < c.threads {
		return c, errors.New("--threads must be positive and --connections >= --threads")
	}
	if c.portBase < 1024 || c.portBase+40 > 65535 {
		return c, errors.New("--port-base must be in 1024..65495")
	}
	for _, p := range strings.Split(c.only, ",") {
		if p = strings.TrimSpace(p); p != "" && p != "admin" && p != "gateway" {
			return c, fmt.Errorf("--only: unknown part %q (admin, gateway)", p)
		}
	}
	return c, nil
}

func runSecurity(ctx context.Context, args []string) int {
	cfg, err := parseSecurityFlags(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nexus-bench security: %v\n%s", err, usage)
		return 2
	}
	if cfg.serveUp != "" {
		if err := serveUpstream(ctx, cfg.serveUp); err != nil {
			fmt.Fprintln(os.Stderr, "nexus-bench security upstream:", err)
			return 1
		}
		return 0
	}
	rep, err := benchSecurity(ctx, cfg)
	var out any
	if rep != nil {
		out = rep
	}
	return finish("security", out, func() string { return securityMarkdown(*rep) }, cfg.out, err)
}

// SecPhase is one admin write phase of one configuration in one round.
type SecPhase struct {
	PhaseResult
	Config   string  `json:"config"` // "plain" or "secure"
	Round    int     `json:"round"`
	CPUPerOp float64 `json:"cpu_per_op_us"` // user+system CPU of the 3 nodes per acknowledged write
}

// SecGateway is one wrk measurement.
type SecGateway struct {
	Target    string  `json:"target"`
	Round     int     `json:"round"`
	RPS       float64 `json:"rps"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	CPUPerReq float64 `json:"cpu_per_req_us"`
	Errors    int     `json:"errors"`
}

// SecurityReport is everything `nexus-bench security` measured.
type SecurityReport struct {
	Started    time.Time    `json:"started"`
	Rounds     int          `json:"rounds"`
	Duration   string       `json:"duration_per_phase"`
	GwDuration string       `json:"gateway_duration"`
	Clients    int          `json:"clients"`
	Threads    int          `json:"wrk_threads"`
	Conns      int          `json:"wrk_connections"`
	Secure     []string     `json:"secure_config"` // what the secure configuration actually protected
	Admin      []SecPhase   `json:"admin,omitempty"`
	Gateway    []SecGateway `json:"gateway,omitempty"`
	GatewayTLS string       `json:"gateway_tls,omitempty"`
}

// adminSide is one cluster of the comparison with its load generator.
type adminSide struct {
	name   string
	b      *bench
	pids   func() []int
	leader func(ctx context.Context) (int, error)
}

func clusterCPU(pids []int) time.Duration {
	var total time.Duration
	for _, p := range pids {
		d, _ := treeCPU(p)
		total += d
	}
	return total
}

func newLoadClient(n int) *fasthttp.Client {
	return &fasthttp.Client{MaxConnsPerHost: max(1024, n), ReadTimeout: 15 * time.Second, WriteTimeout: 5 * time.Second,
		// Keep the connections (and their TLS sessions) across the other
		// configuration's phases; the admin API closes idle ones at 2 min.
		MaxIdleConnDuration:      90 * time.Second,
		NoDefaultUserAgentHeader: true, RetryIf: func(*fasthttp.Request) bool { return false }}
}

func benchSecurity(ctx context.Context, cfg securityConfig) (rep *SecurityReport, err error) {
	if cfg.runs("gateway") {
		if _, err := lookPath("wrk"); err != nil {
			return nil, errors.New("wrk not found (make bench-security installs it: apt-get install -y wrk)")
		}
	}
	// The agents run in their own directories.
	if cfg.nexus, err = filepath.Abs(cfg.nexus); err != nil {
		return nil, err
	}
	dir := cfg.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "nexus-bench-security-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	ca, err := certgen.NewCA("nexus-bench CA")
	if err != nil {
		return nil, err
	}
	clientCert, err := ca.KeyPair("nexus-bench")
	if err != nil {
		return nil, err
	}

	// Starting clusters costs CPU too: hold the lock from the first process
	// to the last measurement.
	unlock, err := acquireLock(ctx, cfg.lock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	progress("holding %s", cfg.lock)

	rep = &SecurityReport{Started: time.Now().UTC(), Rounds: cfg.rounds, Duration: cfg.duration.String(),
		GwDuration: cfg.gwDuration.String(), Clients: cfg.clients, Threads: cfg.threads, Conns: cfg.connections}
	if cfg.runs("admin") {
		if err := benchSecurityAdmin(ctx, cfg, filepath.Join(dir, "admin"), ca, clientCert, rep); err != nil {
			return rep, err
		}
	}
	if cfg.runs("gateway") {
		g, err := startGatewayNodes(ctx, cfg, filepath.Join(dir, "gateway"), ca)
		if err != nil {
			return rep, err
		}
		defer g.close()
		rep.GatewayTLS = g.tlsVersion(ctx)
		progress("gateway: %s vs %s (TLS: %s); wrk -t%d -c%d, %d rounds × %v",
			g.targets[0].url, g.targets[1].url, rep.GatewayTLS, cfg.threads, cfg.connections, cfg.rounds, cfg.gwDuration)
		err = measureGateway(ctx, cfg, g)
		for _, t := range g.targets {
			for i, r := range t.results {
				rep.Gateway = append(rep.Gateway, SecGateway{Target: t.name, Round: i + 1, RPS: r.rps, P50Ms: ms(r.p50),
					P99Ms: ms(r.p99), CPUPerReq: float64(r.cpuPerReq) / float64(time.Microsecond), Errors: r.errors})
			}
		}
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// benchSecurityAdmin starts the plain cluster (proccluster, as `nexus-bench
// raft` does) and the secure one side by side, then measures config writes
// on each in turn with raft.go's load generator.
func benchSecurityAdmin(ctx context.Context, cfg securityConfig, dir string, ca *certgen.CA, clientCert tls.Certificate, rep *SecurityReport) error {
	pp := cfg.plainPorts()
	opts := proccluster.Options{
		ExtraArgs: cfg.agentArgs,
		Binary:    cfg.nexus, Nodes: 3, BaseIP: cfg.baseIP, Dir: filepath.Join(dir, "plain"),
		RaftPort: pp.raft, GossipPort: pp.gossip, HTTPPort: pp.http, GatewayPort: pp.gateway,
		StartTimeout: 60 * time.Second,
	}
	if cfg.verbose {
		opts.Logf = func(f string, a ...any) { progress(f, a...) }
	}
	progress("starting the plain cluster (ports %d..) and the secure one (ports %d..)", pp.raft, cfg.securePorts().raft)
	pc, err := proccluster.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer pc.Close()
	sc, err := startSecureCluster(ctx, cfg, filepath.Join(dir, "secure"), ca, clientCert)
	if sc != nil {
		defer sc.close()
	}
	if err != nil {
		return err
	}

	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if _, _, err := pc.WaitLeader(wctx); err != nil {
		return err
	}
	if err := pc.WaitAllReady(wctx); err != nil {
		return err
	}
	sLeader, err := sc.waitLeader(wctx)
	if err != nil {
		return err
	}
	checks, err := sc.setupACL(wctx, sLeader)
	if err != nil {
		return err
	}
	rep.Secure = append(sc.securitySummary(cfg.mtls), checks...)
	rep.Secure = append(rep.Secure, "gossip key: 32 random bytes (AES-256-GCM) via --encrypt")
	for _, s := range rep.Secure {
		progress("secure: %s", s)
	}

	raftCfg := raftConfig{duration: cfg.duration}
	plain := &adminSide{name: "plain",
		b:    &bench{cfg: raftCfg, c: pc, fast: newLoadClient(cfg.clients)},
		pids: func() []int { return clusterPIDs(pc) },
		leader: func(ctx context.Context) (int, error) {
			i, _, err := pc.WaitLeader(ctx)
			return i, err
		},
	}
	for i := 0; i < pc.N(); i++ {
		plain.b.urls = append(plain.b.urls, "http://"+pc.HTTPAddr(i))
	}
	fastSecure := newLoadClient(cfg.clients)
	fastSecure.TLSConfig = sc.tlsConfig.Clone()
	fastSecure.Transport = tokenTransport{token: sc.benchToken}
	secure := &adminSide{name: "secure",
		b:      &bench{cfg: raftCfg, fast: fastSecure},
		pids:   sc.pids,
		leader: sc.waitLeader,
	}
	for i := range sc.nodes {
		secure.b.urls = append(secure.b.urls, sc.url(i))
	}

	// Warm up: open the connection pools (and TLS sessions) of both.
	for _, side := range []*adminSide{plain, secure} {
		w := &bench{cfg: raftConfig{duration: 2 * time.Second}, fast: side.b.fast, urls: side.b.urls}
		r := w.writePhase(ctx, cfg.clients)
		progress("warm-up %s: %.0f writes/s, errors %d %s", side.name, r.OpsPerSec, r.Errors, r.Note)
		if r.Ops == 0 {
			return fmt.Errorf("warm-up %s: no write succeeded: %s", side.name, r.Note)
		}
	}

	phases := []struct {
		name    string
		clients int
		run     func(ctx context.Context, s *adminSide, leader int) PhaseResult
	}{
		{"config write", cfg.clients, func(ctx context.Context, s *adminSide, _ int) PhaseResult {
			return s.b.writePhase(ctx, cfg.clients)
		}},
		{"config write via leader", 1, func(ctx context.Context, s *adminSide, leader int) PhaseResult {
			return s.b.writePhaseTo(ctx, "config write via leader", 1, leader)
		}},
	}
	progress("admin writes: %d rounds × %d phases × 2 configurations × %v", cfg.rounds, len(phases), cfg.duration)
	for round := 1; round <= cfg.rounds; round++ {
		order := []*adminSide{plain, secure}
		if round%2 == 0 {
			order = []*adminSide{secure, plain}
		}
		for _, ph := range phases {
			for _, side := range order {
				lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				leader, err := side.leader(lctx)
				cancel()
				if err != nil {
					return fmt.Errorf("%s: %w", side.name, err)
				}
				cpu0 := clusterCPU(side.pids())
				r := ph.run(ctx, side, leader)
				cpu := clusterCPU(side.pids()) - cpu0
				r.Phase = ph.name
				sp := SecPhase{PhaseResult: r, Config: side.name, Round: round}
				if r.Ops > 0 {
					sp.CPUPerOp = float64(cpu) / float64(r.Ops) / float64(time.Microsecond)
				}
				progress("round %d %-6s %s, %d clients: %.1f/s p50 %s p99 %s cpu/write %.0f µs errors %d",
					round, side.name, ph.name, r.Clients, r.OpsPerSec, fmtMs(r.P50Ms), fmtMs(r.P99Ms), sp.CPUPerOp, r.Errors)
				rep.Admin = append(rep.Admin, sp)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
	}
	return nil
}

func clusterPIDs(c *proccluster.Cluster) []int {
	var out []int
	for _, n := range c.Nodes() {
		if n.Running {
			out = append(out, n.PID)
		}
	}
	return out
}

// secAgg is the median of one phase of one configuration over the rounds.
type secAgg struct {
	ops, p50, p99, cpu float64
	errors             int
	each               []float64
	clients            int
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

func aggregate(ps []SecPhase, phase, config string) (secAgg, bool) {
	var a secAgg
	var ops, p50, p99, cpu []float64
	for _, p := range ps {
		if p.Phase != phase || p.Config != config {
			continue
		}
		ops, p50, p99, cpu = append(ops, p.OpsPerSec), append(p50, p.P50Ms), append(p99, p.P99Ms), append(cpu, p.CPUPerOp)
		a.errors += p.Errors
		a.clients = p.Clients
	}
	if len(ops) == 0 {
		return a, false
	}
	a.ops, a.p50, a.p99, a.cpu, a.each = medianF(ops), medianF(p50), medianF(p99), medianF(cpu), ops
	return a, true
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func joinF(v []float64, format string) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf(format, x))
	}
	return strings.Join(s, ", ")
}

// securityMarkdown renders the report: medians, the secure/plain ratios,
// and every round's figure.
func securityMarkdown(r SecurityReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## nexus-bench security: plain vs TLS + ACLs, %d interleaved rounds, medians\n\n", r.Rounds)
	if len(r.Secure) > 0 {
		b.WriteString("Secure configuration, as the agents reported it:\n\n")
		for _, s := range r.Secure {
			fmt.Fprintf(&b, "- %s\n", s)
		}
		b.WriteString("\n")
	}
	var phases []string
	seen := map[string]bool{}
	for _, p := range r.Admin {
		if !seen[p.Phase] {
			seen[p.Phase] = true
			phases = append(phases, p.Phase)
		}
	}
	if len(phases) > 0 {
		fmt.Fprintf(&b, "### Admin writes (3 nodes, PUT /config/{key}, %d-byte values, %s per phase)\n\n", valueSize, r.Duration)
		b.WriteString("| phase | clients | plain ops/s | secure ops/s | secure/plain | p50 plain → secure | p99 plain → secure | cluster CPU/write plain → secure | errors plain/secure |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		var rounds []string
		for _, ph := range phases {
			p, okP := aggregate(r.Admin, ph, "plain")
			s, okS := aggregate(r.Admin, ph, "secure")
			if !okP || !okS {
				continue
			}
			fmt.Fprintf(&b, "| %s | %d | %.1f | %.1f | **%s** | %s → %s | %s → %s | %.0f µs → %.0f µs (%s) | %d/%d |\n",
				ph, p.clients, p.ops, s.ops, ratio(s.ops, p.ops), fmtMs(p.p50), fmtMs(s.p50), fmtMs(p.p99), fmtMs(s.p99),
				p.cpu, s.cpu, ratio(s.cpu, p.cpu), p.errors, s.errors)
			rounds = append(rounds, fmt.Sprintf("- %s, %d clients: plain %s; secure %s", ph, p.clients, joinF(p.each, "%.0f"), joinF(s.each, "%.0f")))
		}
		b.WriteString("\nops/s of each round:\n\n" + strings.Join(rounds, "\n") + "\n")
		var notes []string
		for _, p := range r.Admin {
			if p.Note != "" {
				notes = append(notes, fmt.Sprintf("- round %d %s %s: %s", p.Round, p.Config, p.Phase, p.Note))
			}
		}
		if len(notes) > 0 {
			b.WriteString("\n" + strings.Join(notes, "\n") + "\n")
		}
	}
	if len(r.Gateway) > 0 {
		fmt.Fprintf(&b, "\n### Gateway (wrk -t%d -c%d, keep-alive, GET through a route without plugins, %s per measurement)\n\n", r.Threads, r.Conns, r.GwDuration)
		if r.GatewayTLS != "" {
			fmt.Fprintf(&b, "HTTPS: %s (with a Go client).\n\n", r.GatewayTLS)
		}
		b.WriteString("| target | req/s | p50 | p99 | server CPU/req | errors | rounds req/s |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---|\n")
		var names []string
		seenT := map[string]bool{}
		for _, g := range r.Gateway {
			if !seenT[g.Target] {
				seenT[g.Target] = true
				names = append(names, g.Target)
			}
		}
		type gAgg struct{ rps, p50, p99, cpu float64 }
		aggs := map[string]gAgg{}
		for _, n := range names {
			var rps, p50, p99, cpu []float64
			errs := 0
			for _, g := range r.Gateway {
				if g.Target == n {
					rps, p50, p99, cpu = append(rps, g.RPS), append(p50, g.P50Ms), append(p99, g.P99Ms), append(cpu, g.CPUPerReq)
					errs += g.Errors
				}
			}
			a := gAgg{medianF(rps), medianF(p50), medianF(p99), medianF(cpu)}
			aggs[n] = a
			fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %.1f µs | %d | %s |\n", n, a.rps, fmtMs(a.p50), fmtMs(a.p99), a.cpu, errs, joinF(rps, "%.0f"))
		}
		if len(names) == 2 {
			p, s := aggs[names[0]], aggs[names[1]]
			fmt.Fprintf(&b, "| %s / %s | **%s** | %s | %s | %s | | |\n", names[1], names[0],
				ratio(s.rps, p.rps), ratio(s.p50, p.p50), ratio(s.p99, p.p99), ratio(s.cpu, p.cpu))
		}
	}
	return b.String()
}
