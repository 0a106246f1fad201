package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/nexus/nexus/internal/gitbuild"
)

// nexus-bench ab-raft: the raft benchmark as an interleaved A/B. A is a
// baseline built from this repository's history (--base, default the first
// release), B the binary under test (--nexus); rounds alternate the order
// (A B, B A, A B, ...) so that a drift of the machine hits both, and the
// report gives per phase the median of the rounds and the ratio B/A, with
// the nodes' CPU per operation beside it. Only ratios measured in one run
// count: these machines differ by 40% from day to day.

// abConfig is raft's settings plus the A/B ones.
type abConfig struct {
	raft      raftConfig
	base      string // git ref of A
	baseBin   string // a prebuilt A instead of building --base
	rounds    int
	outAB     string
	candidate string
}

// parseABFlags takes --base, --base-binary and --rounds out of args and
// parses the rest as raft's flags (--out is the A/B report's).
func parseABFlags(args []string) (abConfig, error) {
	cfg := abConfig{base: "3cd8fea", rounds: 3}
	var rest []string
	for i := 0; i < len(args); i++ {
		name, val, hasVal := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") {
			rest = append(rest, args[i])
			continue
		}
		switch name {
		case "base", "base-binary", "rounds", "out":
		default:
			rest = append(rest, args[i])
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return cfg, fmt.Errorf("--%s needs a value", name)
			}
			i++
			val = args[i]
		}
		switch name {
		case "base":
			cfg.base = val
		case "base-binary":
			cfg.baseBin = val
		case "out":
			cfg.outAB = val
		case "rounds":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return cfg, fmt.Errorf("--rounds: %q must be a positive integer", val)
			}
			cfg.rounds = n
		}
	}
	rc, err := parseRaftFlags(rest)
	if err != nil {
		return cfg, err
	}
	cfg.raft, cfg.candidate = rc, rc.nexus
	return cfg, nil
}

// ABReport is an A/B run: every round's report and the medians.
type ABReport struct {
	Machine   string     `json:"machine"`
	Base      string     `json:"base"`
	Candidate string     `json:"candidate"`
	Rounds    int        `json:"rounds"`
	Rows      []ABRow    `json:"rows"`
	RoundsA   []*Report  `json:"rounds_a"`
	RoundsB   []*Report  `json:"rounds_b"`
	Failover  [2]float64 `json:"failover_median_ms"` // A, B: median of the rounds' medians
	Started   time.Time  `json:"started"`
	Elapsed   string     `json:"elapsed"`
}

// ABRow is one phase: medians over the rounds of A and of B.
type ABRow struct {
	Phase   string  `json:"phase"`
	Clients int     `json:"clients"`
	OpsA    float64 `json:"ops_per_sec_a"`
	OpsB    float64 `json:"ops_per_sec_b"`
	Ratio   float64 `json:"ratio"`
	P50A    float64 `json:"p50_ms_a"`
	P50B    float64 `json:"p50_ms_b"`
	P99A    float64 `json:"p99_ms_a"`
	P99B    float64 `json:"p99_ms_b"`
	CPUA    float64 `json:"cpu_us_per_op_a"`
	CPUB    float64 `json:"cpu_us_per_op_b"`
	ErrorsA int     `json:"errors_a"`
	ErrorsB int     `json:"errors_b"`
}

func runABRaft(ctx context.Context, args []string) int {
	return run(ctx, "ab-raft", args, parseABFlags, func(c abConfig) string { return c.outAB }, benchAB, formatAB)
}

func benchAB(ctx context.Context, cfg abConfig) (*ABReport, error) {
	started := time.Now()
	base := cfg.baseBin
	if base == "" {
		root, err := gitbuild.Root(ctx, "")
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", "nexus-bench-ab-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		progress("building the baseline %s", cfg.base)
		if base, err = gitbuild.Nexus(ctx, root, cfg.base, dir, cfg.base); err != nil {
			return nil, err
		}
	}
	knownArgs, err := argsFilter(ctx, base)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	rep := &ABReport{Machine: fmt.Sprintf("%s, %d CPUs, %s", host, runtime.NumCPU(), started.UTC().Format("2006-01-02")),
		Base: cfg.base, Candidate: cfg.candidate, Rounds: cfg.rounds, Started: started.UTC()}
	if cfg.baseBin != "" {
		rep.Base = cfg.baseBin
	}
	for round := 0; round < cfg.rounds; round++ {
		order := []string{"A", "B"}
		if round%2 == 1 {
			order = []string{"B", "A"}
		}
		for _, which := range order {
			rc := roundConfig(cfg, round, which, base, knownArgs)
			progress("round %d/%d: %s (%s)", round+1, cfg.rounds, which, rc.nexus)
			r, err := benchRaft(ctx, rc)
			if err != nil {
				return rep, fmt.Errorf("round %d, %s: %w", round+1, which, err)
			}
			if which == "A" {
				rep.RoundsA = append(rep.RoundsA, r)
			} else {
				rep.RoundsB = append(rep.RoundsB, r)
			}
		}
	}
	rep.summarize()
	rep.Elapsed = time.Since(started).Round(time.Second).String()
	return rep, nil
}

// roundConfig is the benchmark of one side (A: the baseline binary base,
// with the arguments it knows; B: the candidate) in one round. With --dir,
// every round has an empty directory of its own under it, like the first:
// a round on the data of the one before would measure a grown catalog,
// and a baseline could not even open what a newer build wrote.
func roundConfig(cfg abConfig, round int, which, base string, knownArgs func(int, []string) []string) raftConfig {
	rc := cfg.raft
	rc.nexus = cfg.candidate
	if which == "A" {
		rc.nexus, rc.args = base, knownArgs
	}
	if rc.dir != "" {
		rc.dir = filepath.Join(cfg.raft.dir, fmt.Sprintf("round%d-%s", round+1, which))
	}
	return rc
}

// summarize fills Rows and Failover from the rounds.
func (r *ABReport) summarize() {
	type key struct {
		phase   string
		clients int
	}
	var keys []key
	seen := map[key]bool{}
	collect := func(reps []*Report, k key, f func(PhaseResult) float64) []float64 {
		var out []float64
		for _, rep := range reps {
			for _, p := range rep.Phases {
				if p.Phase == k.phase && p.Clients == k.clients && !p.NA {
					out = append(out, f(p))
				}
			}
		}
		return out
	}
	for _, rep := range append(append([]*Report{}, r.RoundsA...), r.RoundsB...) {
		for _, p := range rep.Phases {
			k := key{p.Phase, p.Clients}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	for _, k := range keys {
		row := ABRow{Phase: k.phase, Clients: k.clients}
		row.OpsA = median(collect(r.RoundsA, k, func(p PhaseResult) float64 { return p.OpsPerSec }))
		row.OpsB = median(collect(r.RoundsB, k, func(p PhaseResult) float64 { return p.OpsPerSec }))
		row.P50A = median(collect(r.RoundsA, k, func(p PhaseResult) float64 { return p.P50Ms }))
		row.P50B = median(collect(r.RoundsB, k, func(p PhaseResult) float64 { return p.P50Ms }))
		row.P99A = median(collect(r.RoundsA, k, func(p PhaseResult) float64 { return p.P99Ms }))
		row.P99B = median(collect(r.RoundsB, k, func(p PhaseResult) float64 { return p.P99Ms }))
		row.CPUA = median(collect(r.RoundsA, k, func(p PhaseResult) float64 { return p.CPUPerOpUs }))
		row.CPUB = median(collect(r.RoundsB, k, func(p PhaseResult) float64 { return p.CPUPerOpUs }))
		for _, e := range collect(r.RoundsA, k, func(p PhaseResult) float64 { return float64(p.Errors) }) {
			row.ErrorsA += int(e)
		}
		for _, e := range collect(r.RoundsB, k, func(p PhaseResult) float64 { return float64(p.Errors) }) {
			row.ErrorsB += int(e)
		}
		if row.OpsA > 0 {
			row.Ratio = row.OpsB / row.OpsA
		}
		r.Rows = append(r.Rows, row)
	}
	fo := func(reps []*Report) float64 {
		var v []float64
		for _, rep := range reps {
			if rep.FailoverMedianMs > 0 {
				v = append(v, rep.FailoverMedianMs)
			}
		}
		return median(v)
	}
	r.Failover = [2]float64{fo(r.RoundsA), fo(r.RoundsB)}
}

// argsFilter returns an Args rewrite that drops the flags (and their
// values) that binary's `agent --help` does not list: a baseline built
// from an earlier commit lacks the flags added since (--dns-addr).
func argsFilter(ctx context.Context, binary string) (func(int, []string) []string, error) {
	out, _ := exec.CommandContext(ctx, binary, "agent", "--help").CombinedOutput()
	known := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], "-") {
			known["--"+strings.TrimLeft(strings.TrimRight(f[0], ","), "-")] = true
		}
	}
	if len(known) == 0 {
		return nil, fmt.Errorf("%s agent --help lists no flags:\n%s", binary, out)
	}
	return func(_ int, args []string) []string {
		var kept []string
		for i := 0; i < len(args); i++ {
			if strings.HasPrefix(args[i], "--") && !known[args[i]] {
				progress("baseline %s: dropping %s (unknown to it)", binary, args[i])
				if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
					i++
				}
				continue
			}
			kept = append(kept, args[i])
		}
		return kept
	}, nil
}

func formatAB(r *ABReport) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "A/B raft benchmark, %s; A = %s, B = %s; median of %d interleaved rounds; %s\n\n",
		r.Machine, r.Base, r.Candidate, r.Rounds, r.Elapsed)
	b.WriteString("| phase | clients | A ops/s | B ops/s | B/A | p50 A → B (ms) | p99 A → B (ms) | CPU/op A → B (µs) | errors A/B |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %.2fx | %.2f → %.2f | %.2f → %.2f | %.0f → %.0f | %d/%d |\n",
			row.Phase, row.Clients, row.OpsA, row.OpsB, row.Ratio, row.P50A, row.P50B, row.P99A, row.P99B,
			row.CPUA, row.CPUB, row.ErrorsA, row.ErrorsB)
	}
	if r.Failover[0] > 0 || r.Failover[1] > 0 {
		fmt.Fprintf(&b, "\nfailover (kill -9 of the leader → next acknowledged write), median: A %.0f ms, B %.0f ms\n", r.Failover[0], r.Failover[1])
	}
	return b.String()
}
