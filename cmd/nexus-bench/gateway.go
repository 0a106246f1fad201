package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// gatewayConfig are the flags of `nexus-bench gateway`.
type gatewayConfig struct {
	nexus        string
	duration     time.Duration
	rounds       int
	threads      int
	connections  int
	upstreamAddr string
	nginxAddr    string
	gatewayAddr  string
	httpAddr     string
	raftPort     int
	gossipPort   int
	gomaxprocs   string
	variants     []agentVariant // more agents measured alongside the default one
	lock         string
	dir          string
	only         string
	serveUp      string // internal: run the upstream server on this address
}

func parseGatewayFlags(args []string) (gatewayConfig, error) {
	var c gatewayConfig
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.nexus, "nexus", "", "path of the nexus binary (required)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "wrk duration of each measurement")
	fs.IntVar(&c.rounds, "rounds", 3, "interleaved rounds over all targets; the median is reported")
	fs.IntVar(&c.threads, "threads", 2, "wrk threads")
	fs.IntVar(&c.connections, "connections", 64, "wrk connections")
	fs.StringVar(&c.upstreamAddr, "upstream-addr", "127.0.0.1:29001", "address of the upstream server")
	fs.StringVar(&c.nginxAddr, "nginx-addr", "127.0.0.1:29002", "address of the nginx reverse proxy")
	fs.StringVar(&c.gatewayAddr, "gateway-addr", "127.0.0.1:29080", "address of the Nexus gateway")
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:29500", "address of the Nexus admin API")
	fs.IntVar(&c.raftPort, "raft-port", 29300, "Nexus Raft port")
	fs.IntVar(&c.gossipPort, "gossip-port", 29301, "Nexus gossip port")
	fs.StringVar(&c.gomaxprocs, "gomaxprocs", "", "GOMAXPROCS of the nexus agent (default: Go's)")
	variants := fs.String("variants", defaultVariants(), "more agents measured alongside, comma-separated NAME:VAR=VALUE[;VAR=VALUE] (environment of the agent; targets nexus-NAME and nexus-plugins-NAME, ports +10 each); empty: none")
	fs.StringVar(&c.lock, "lock", "/tmp/nexus-bench.lock", "lock file held while measuring (waited for if present); empty: none")
	fs.StringVar(&c.dir, "dir", "", "directory for nginx and nexus files (default: a temporary one)")
	fs.StringVar(&c.only, "only", "", "comma-separated subset of targets: direct,nginx,nexus,nexus-plugins (and nexus-NAME,nexus-plugins-NAME of --variants)")
	fs.StringVar(&c.serveUp, "serve-upstream", "", "internal: serve the benchmark upstream on this address")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.serveUp != "" {
		return c, nil
	}
	var err error
	if c.variants, err = parseVariants(*variants); err != nil {
		return c, err
	}
	if c.nexus == "" {
		return c, errors.New("--nexus PATH is required")
	}
	if c.duration <= 0 || c.rounds < 1 || c.threads < 1 || c.connections < c.threads {
		return c, errors.New("--duration, --rounds, --threads and --connections must be positive (connections >= threads)")
	}
	return c, nil
}

// target is one thing wrk measures.
type target struct {
	name    string
	url     string
	headers []string
	pid     int // the server process whose CPU time is charged to the target
	// metricsURL is a Nexus agent's /metrics, whose scheduler latency
	// histogram tells how often goroutines waited long for a CPU.
	metricsURL string
	results    []wrkResult
}

func runGateway(ctx context.Context, args []string) int {
	cfg, err := parseGatewayFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nexus-bench gateway:", err)
		return 2
	}
	if cfg.serveUp != "" {
		if err := serveUpstream(ctx, cfg.serveUp); err != nil {
			fmt.Fprintln(os.Stderr, "nexus-bench gateway upstream:", err)
			return 1
		}
		return 0
	}
	if err := benchGateway(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "nexus-bench gateway:", err)
		return 1
	}
	return 0
}

func benchGateway(ctx context.Context, cfg gatewayConfig) error {
	for _, tool := range []string{"wrk", "nginx"} {
		if _, err := lookPath(tool); err != nil {
			return fmt.Errorf("%s not found (make bench-gateway installs it: apt-get install -y wrk nginx)", tool)
		}
	}
	dir := cfg.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "nexus-bench-gateway-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	var procs processes
	defer procs.stopAll()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	upPID, err := procs.start(filepath.Join(dir, "upstream.log"), nil, self, "gateway", "--serve-upstream", cfg.upstreamAddr)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, "http://"+cfg.upstreamAddr+"/", 10*time.Second); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	nginxPID, err := startNginx(&procs, dir, cfg.nginxAddr, cfg.upstreamAddr)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, "http://"+cfg.nginxAddr+"/", 10*time.Second); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	primary := nexusAgent{raftPort: cfg.raftPort, gossipPort: cfg.gossipPort,
		httpAddr: cfg.httpAddr, gatewayAddr: cfg.gatewayAddr}
	if cfg.gomaxprocs != "" {
		primary.env = []string{"GOMAXPROCS=" + cfg.gomaxprocs}
	}
	agents := []nexusAgent{primary}
	for i, v := range cfg.variants {
		a, shift := primary, 10*(i+1)
		a.suffix, a.env = "-"+v.name, append(append([]string(nil), primary.env...), v.env...)
		a.raftPort, a.gossipPort = primary.raftPort+shift, primary.gossipPort+shift
		if a.httpAddr, err = shiftPort(primary.httpAddr, shift); err != nil {
			return err
		}
		if a.gatewayAddr, err = shiftPort(primary.gatewayAddr, shift); err != nil {
			return err
		}
		agents = append(agents, a)
	}
	targets := []*target{
		{name: "direct", url: "http://" + cfg.upstreamAddr + "/bench", pid: upPID},
		{name: "nginx", url: "http://" + cfg.nginxAddr + "/bench", pid: nginxPID},
	}
	for _, a := range agents {
		token, pid, err := startNexus(ctx, &procs, dir, cfg, a)
		if err != nil {
			return err
		}
		targets = append(targets,
			&target{name: "nexus" + a.suffix, url: "http://" + a.gatewayAddr + "/plain/bench", pid: pid,
				metricsURL: "http://" + a.httpAddr + "/metrics"},
			&target{name: "nexus-plugins" + a.suffix, url: "http://" + a.gatewayAddr + "/plugins/bench", pid: pid,
				metricsURL: "http://" + a.httpAddr + "/metrics", headers: []string{"Authorization: Bearer " + token}})
	}
	if cfg.only != "" {
		keep := map[string]bool{}
		for _, n := range strings.Split(cfg.only, ",") {
			keep[strings.TrimSpace(n)] = true
		}
		var sel []*target
		for _, t := range targets {
			if keep[t.name] {
				sel = append(sel, t)
			}
		}
		targets = sel
	}
	for _, t := range targets {
		if err := checkTarget(ctx, t); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}

	unlock, err := acquireLock(ctx, cfg.lock)
	if err != nil {
		return err
	}
	defer unlock()
	fmt.Fprintf(os.Stderr, "measuring %d targets × %d rounds × %v (wrk -t%d -c%d)\n", len(targets), cfg.rounds, cfg.duration, cfg.threads, cfg.connections)
	for round := 0; round < cfg.rounds; round++ {
		for _, t := range targets {
			// Warm up connection pools, then measure.
			if _, err := runWrk(ctx, t, cfg.threads, cfg.connections, time.Second); err != nil {
				return err
			}
			var sched0 schedHist
			if t.metricsURL != "" {
				sched0, _ = scrapeSched(ctx, t.metricsURL)
			}
			cpu0, _ := treeCPU(t.pid)
			res, err := runWrk(ctx, t, cfg.threads, cfg.connections, cfg.duration)
			if err != nil {
				return err
			}
			cpu1, _ := treeCPU(t.pid)
			if n := res.rps * cfg.duration.Seconds(); n > 0 {
				res.cpuPerReq = time.Duration(float64(cpu1-cpu0) / n)
			}
			res.schedSlow = -1
			if t.metricsURL != "" {
				if sched1, err := scrapeSched(ctx, t.metricsURL); err == nil {
					res.schedSlow = slowShare(sched0, sched1)
				}
			}
			fmt.Fprintf(os.Stderr, "round %d %-14s %9.0f req/s  p50 %-9v p99 %-9v cpu/req %-8v %serrors %d\n",
				round+1, t.name, res.rps, res.p50, res.p99, res.cpuPerReq, schedText(res.schedSlow, "sched>0.9ms ", " "), res.errors)
			t.results = append(t.results, res)
		}
	}
	unlock()
	fmt.Print(gatewayMarkdown(cfg, targets))
	return nil
}

// defaultVariants measures the agent with Go's own GOMAXPROCS (one P per
// CPU) beside its default of two (docs/gateway.md#measured); plain socket
// I/O and GOMAXPROCS=1, measured before, are a --variants away.
func defaultVariants() string {
	return fmt.Sprintf("onepercpu:GOMAXPROCS=%d", runtime.NumCPU())
}

// agentVariant is an extra agent: the same binary with more environment.
type agentVariant struct {
	name string
	env  []string
}

// parseVariants reads NAME:VAR=VALUE[;VAR=VALUE], comma-separated.
func parseVariants(s string) ([]agentVariant, error) {
	var out []agentVariant
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		name, envs, ok := strings.Cut(item, ":")
		if !ok || name == "" || strings.ContainsAny(name, " /") || seen[name] {
			return nil, fmt.Errorf("--variants: %q: want a unique NAME:VAR=VALUE[;VAR=VALUE]", item)
		}
		seen[name] = true
		v := agentVariant{name: name}
		for _, e := range strings.Split(envs, ";") {
			if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
				return nil, fmt.Errorf("--variants: %q: %q is not VAR=VALUE", item, e)
			}
			v.env = append(v.env, e)
		}
		out = append(out, v)
	}
	return out, nil
}

// shiftPort adds d to the port of a host:port address.
func shiftPort(addr string, d int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", fmt.Errorf("%s: %w", addr, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+d)), nil
}

func gatewayMarkdown(cfg gatewayConfig, targets []*target) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nServer CPU/req is the user+system CPU time of the proxy (or, for direct, the upstream) per request: steadier than req/s on a shared machine.\n")
	fmt.Fprintf(&b, "Sched > 0.9 ms is the share of the agent's goroutine runs that waited longer than that for a CPU (go_sched_latencies_seconds): what makes the gateway's p99.\n")
	fmt.Fprintf(&b, "\n### Gateway throughput (wrk -t%d -c%d, %v × %d interleaved rounds, median)\n\n", cfg.threads, cfg.connections, cfg.duration, cfg.rounds)
	fmt.Fprintln(&b, "| target | req/s | p50 | p99 | req/s vs nginx | p99 vs nginx | server CPU/req | sched > 0.9 ms | rounds req/s |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---|")
	var nginx wrkResult
	if t := findTarget(targets, "nginx"); t != nil {
		nginx = medianResult(t.results)
	}
	for _, t := range targets {
		m := medianResult(t.results)
		ratio, p99r := "", ""
		if nginx.rps > 0 {
			ratio = fmt.Sprintf("%.2fx", m.rps/nginx.rps)
			p99r = fmt.Sprintf("%.2fx", float64(m.p99)/float64(nginx.p99))
		}
		var each []string
		for _, r := range t.results {
			each = append(each, fmt.Sprintf("%.0f", r.rps))
		}
		fmt.Fprintf(&b, "| %s | %.0f | %v | %v | %s | %s | %v | %s | %s |\n", t.name, m.rps, m.p50, m.p99, ratio, p99r, m.cpuPerReq,
			schedText(m.schedSlow, "", ""), strings.Join(each, ", "))
	}
	b.WriteString(roundRatiosMarkdown(targets))
	return b.String()
}

// roundRatiosMarkdown compares each target with nginx round by round. The
// machine's speed moves between rounds (and nginx moves less than a Go
// process): a ratio of two medians may pair a fast round of one with a
// slow round of the other, the ratio within a round does not. Empty
// without nginx.
func roundRatiosMarkdown(targets []*target) string {
	nginx := findTarget(targets, "nginx")
	if nginx == nil || len(nginx.results) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n### Against nginx in the same round (each round's ratio; median of the rounds' ratios)\n\n")
	fmt.Fprintln(&b, "| target | req/s vs nginx by round | median | CPU/req vs nginx by round | median | p99 vs nginx by round | median |")
	fmt.Fprintln(&b, "|---|---|---:|---|---:|---|---:|")
	for _, t := range targets {
		if t == nginx {
			continue
		}
		var rps, cpu, p99 []float64
		for i, r := range t.results {
			if i >= len(nginx.results) {
				break
			}
			n := nginx.results[i]
			if n.rps <= 0 || n.cpuPerReq <= 0 || n.p99 <= 0 {
				continue
			}
			rps = append(rps, r.rps/n.rps)
			cpu = append(cpu, float64(r.cpuPerReq)/float64(n.cpuPerReq))
			p99 = append(p99, float64(r.p99)/float64(n.p99))
		}
		if len(rps) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %.2fx | %s | %.2fx | %s | %.2fx |\n", t.name,
			ratiosText(rps), median(rps), ratiosText(cpu), median(cpu), ratiosText(p99), median(p99))
	}
	return b.String()
}

// findTarget is the target named name, nil if none (the last of that name).
func findTarget(targets []*target, name string) *target {
	var found *target
	for _, t := range targets {
		if t.name == name {
			found = t
		}
	}
	return found
}

// ratiosText lists ratios in round order.
func ratiosText(rs []float64) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = fmt.Sprintf("%.2f", r)
	}
	return strings.Join(out, " / ")
}

// medianResult takes the median of each figure separately.
func medianResult(rs []wrkResult) wrkResult {
	if len(rs) == 0 {
		return wrkResult{schedSlow: -1}
	}
	rps := make([]float64, len(rs))
	p50 := make([]time.Duration, len(rs))
	p99 := make([]time.Duration, len(rs))
	cpu := make([]time.Duration, len(rs))
	sched := make([]float64, len(rs))
	for i, r := range rs {
		rps[i], p50[i], p99[i], cpu[i], sched[i] = r.rps, r.p50, r.p99, r.cpuPerReq, r.schedSlow
	}
	sort.Float64s(rps)
	sort.Float64s(sched)
	return wrkResult{rps: rps[len(rps)/2], p50: median(p50), p99: median(p99), cpuPerReq: median(cpu), schedSlow: sched[len(sched)/2]}
}

// schedText formats a slow-wait share as a percentage between prefix and
// suffix, or nothing when there is none (-1: not an agent, or unknown).
func schedText(share float64, prefix, suffix string) string {
	if share < 0 {
		return ""
	}
	return prefix + strconv.FormatFloat(100*share, 'f', 2, 64) + "%" + suffix
}
