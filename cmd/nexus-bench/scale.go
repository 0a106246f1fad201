package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/internal/proccluster"
)

// scaleConfig are the flags of `nexus-bench scale`.
type scaleConfig struct {
	nexus          string
	instances      int
	clients        int
	configKeys     int
	routes         int
	routeClients   int
	watchers       int
	watchRate      int
	watchDuration  time.Duration
	gatewayConns   int
	gatewayTime    time.Duration
	gatewayRounds  int
	propagations   int
	only           map[string]bool
	out            string
	upstreamPort   int
	commandForFigs string
	clusterFlags
}

// scalePhases are the phases of `nexus-bench scale`, in the order they run.
var scalePhases = []string{"register", "watch", "routes", "config", "lists", "snapshot", "restart", "catchup"}

func parseScaleFlags(args []string) (scaleConfig, error) {
	var cfg scaleConfig
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.nexus, "nexus", "", "path of the nexus binary (required)")
	fs.IntVar(&cfg.instances, "instances", 100000, "instances to register, over instances/10 services")
	fs.IntVar(&cfg.clients, "clients", 64, "concurrent clients of the registration and config phases")
	fs.IntVar(&cfg.configKeys, "config-keys", 1000000, "config keys of 256 bytes to write")
	fs.IntVar(&cfg.routes, "routes", 10000, "gateway routes to add")
	fs.IntVar(&cfg.routeClients, "route-clients", 16, "concurrent clients adding routes")
	fs.IntVar(&cfg.watchers, "watchers", 10000, "blocking queries, each on a service of its own")
	fs.IntVar(&cfg.watchRate, "watch-writes", 1000, "writes per second to unwatched services while the watchers wait")
	fs.DurationVar(&cfg.watchDuration, "watch-duration", 10*time.Second, "how long the unrelated writes run, without and then with watchers")
	fs.IntVar(&cfg.gatewayConns, "gateway-conns", 64, "connections of the gateway throughput load")
	fs.DurationVar(&cfg.gatewayTime, "gateway-duration", 5*time.Second, "duration of each gateway throughput load")
	fs.IntVar(&cfg.gatewayRounds, "gateway-rounds", 3, "gateway throughput loads per table size (the median is reported)")
	fs.IntVar(&cfg.propagations, "propagations", 20, "route changes whose propagation to every gateway is timed")
	only := fs.String("only", strings.Join(scalePhases, ","), "phases to run, in this order: "+strings.Join(scalePhases, ","))
	fs.StringVar(&cfg.out, "out", "", "also write the results as JSON to this file")
	fs.IntVar(&cfg.upstreamPort, "upstream-port", 28481, "port of the benchmark's upstream on 127.0.0.1")
	cfg.clusterFlags.register(fs, 28700)
	if err := parseFlags(fs, args, &cfg.nexus); err != nil {
		return cfg, err
	}
	if err := cfg.clusterFlags.validate(); err != nil {
		return cfg, err
	}
	for name, v := range map[string]int{"--instances": cfg.instances, "--clients": cfg.clients, "--config-keys": cfg.configKeys,
		"--routes": cfg.routes, "--route-clients": cfg.routeClients, "--watchers": cfg.watchers, "--watch-writes": cfg.watchRate,
		"--gateway-conns": cfg.gatewayConns, "--propagations": cfg.propagations, "--gateway-rounds": cfg.gatewayRounds} {
		if v < 1 {
			return cfg, fmt.Errorf("%s must be at least 1", name)
		}
	}
	if cfg.instances < 20 {
		return cfg, errors.New("--instances must be at least 20 (two services)")
	}
	if cfg.watchDuration <= 0 || cfg.gatewayTime <= 0 {
		return cfg, errors.New("--watch-duration and --gateway-duration must be positive")
	}
	cfg.only = map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		known := false
		for _, k := range scalePhases {
			known = known || k == p
		}
		if !known {
			return cfg, fmt.Errorf("--only: unknown phase %q (phases: %s)", p, strings.Join(scalePhases, ","))
		}
		cfg.only[p] = true
	}
	cfg.commandForFigs = "bin/nexus-bench scale " + strings.Join(args, " ")
	return cfg, nil
}

// Figure is one measured figure of the report.
type Figure struct {
	Section string `json:"section"`
	Name    string `json:"name"`
	Value   string `json:"value"`
	Target  string `json:"target,omitempty"`
}

// ScaleReport is everything nexus-bench scale measured.
type ScaleReport struct {
	Started time.Time     `json:"started"`
	Command string        `json:"command"`
	Figures []Figure      `json:"figures"`
	Phases  []CountResult `json:"phases"`
	Notes   []string      `json:"notes,omitempty"`
}

func (r *ScaleReport) add(section, name, target, format string, args ...any) {
	f := Figure{Section: section, Name: name, Value: fmt.Sprintf(format, args...), Target: target}
	r.Figures = append(r.Figures, f)
	progress("%s: %s = %s", section, name, f.Value)
}

func runScale(ctx context.Context, args []string) int {
	return run(ctx, "scale", args, parseScaleFlags, func(c scaleConfig) string { return c.out }, benchScale, formatScale)
}

// scaleBench holds the cluster and the clients of a scale run.
type scaleBench struct {
	cfg  scaleConfig
	c    *proccluster.Cluster
	fast *fasthttp.Client
	hc   *http.Client
	urls []string
	rep  *ScaleReport
}

func benchScale(ctx context.Context, cfg scaleConfig) (rep *ScaleReport, err error) {
	opts := cfg.options(cfg.nexus)
	opts.StopTimeout = 60 * time.Second // a node with a large catalog takes a while to stop
	c, err := startCluster(ctx, opts, cfg.verbose)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	defer dumpLogsOnError(c, &err)
	b := &scaleBench{cfg: cfg, c: c, rep: &ScaleReport{Started: time.Now().UTC(), Command: cfg.commandForFigs},
		fast: &fasthttp.Client{MaxConnsPerHost: 4096, ReadTimeout: 60 * time.Second, WriteTimeout: 10 * time.Second,
			NoDefaultUserAgentHeader: true, RetryIf: func(*fasthttp.Request) bool { return false }},
		hc: newClient(64, 2*time.Minute)}
	for i := 0; i < c.N(); i++ {
		b.urls = append(b.urls, "http://"+c.HTTPAddr(i))
	}
	defer b.hc.CloseIdleConnections()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if _, _, err := c.WaitLeader(wctx); err != nil {
		return b.rep, err
	}
	if err := c.WaitAllReady(wctx); err != nil {
		return b.rep, err
	}
	phases := map[string]func(context.Context) error{
		"register": b.register, "watch": b.watch, "routes": b.routesPhase, "config": b.configPhase,
		"lists": b.lists, "snapshot": b.snapshot, "restart": b.restartPhase, "catchup": b.catchUp,
	}
	for _, p := range scalePhases {
		if !cfg.only[p] {
			continue
		}
		progress("phase %s", p)
		if err := phases[p](ctx); err != nil {
			return b.rep, fmt.Errorf("phase %s: %w", p, err)
		}
		if ctx.Err() != nil {
			return b.rep, ctx.Err()
		}
	}
	return b.rep, nil
}

// formatScale renders the report as markdown: every figure with its
// target, under the command that produced it.
func formatScale(r *ScaleReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## nexus-bench scale (%s)\n\nCommand: `%s`\n\n", r.Started.Format(time.RFC3339), r.Command)
	b.WriteString("| section | figure | value | target |\n|---|---|---:|---|\n")
	for _, f := range r.Figures {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", f.Section, f.Name, f.Value, f.Target)
	}
	if len(r.Phases) > 0 {
		b.WriteString("\n| load | ops | clients | ops/s | per tenth (ops/s) | p50 | p99 | errors |\n|---|---:|---:|---:|---|---:|---:|---|\n")
		for _, p := range r.Phases {
			var tenths []string
			for _, t := range p.TenthRates {
				tenths = append(tenths, fmt.Sprintf("%.0f", t))
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %.0f | %s | %s | %s | %s |\n", p.Phase, p.Ops, p.Clients, p.OpsPerSec,
				strings.Join(tenths, " "), fmtMs(p.P50Ms), fmtMs(p.P99Ms), p.errorText())
		}
	}
	for _, n := range r.Notes {
		b.WriteString("\n- " + n)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// CountResult is a load of a fixed number of operations.
type CountResult struct {
	PhaseResult
	// TenthRates are the rates of each tenth of the operations, in order.
	TenthRates []float64 `json:"tenth_rates"`
	// Codes counts failures by HTTP status ("transport" for no answer).
	Codes map[string]int `json:"codes,omitempty"`
}

func (r CountResult) errorText() string {
	if r.Errors == 0 {
		return "0"
	}
	keys := make([]string, 0, len(r.Codes))
	for k := range r.Codes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d×%s", r.Codes[k], k))
	}
	return fmt.Sprintf("%d (%s)", r.Errors, strings.Join(parts, ", "))
}

// firstLastRatio is the rate of the last tenth over the first.
func (r CountResult) firstLastRatio() float64 {
	if len(r.TenthRates) < 2 || r.TenthRates[0] == 0 {
		return 0
	}
	return r.TenthRates[len(r.TenthRates)-1] / r.TenthRates[0]
}
