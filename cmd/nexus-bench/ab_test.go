package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseABFlags(t *testing.T) {
	for _, c := range []struct {
		name    string
		args    []string
		base    string
		bin     string
		rounds  int
		clients string
		err     string
	}{
		{name: "defaults", args: []string{"--nexus", "bin/nexus"}, base: "3cd8fea", rounds: 3, clients: "[1 16 64]"},
		{name: "all", args: []string{"--base", "HEAD~1", "--rounds=5", "--nexus", "bin/nexus", "--clients", "1,64", "--out", "ab.json"},
			base: "HEAD~1", rounds: 5, clients: "[1 64]"},
		{name: "prebuilt", args: []string{"--nexus=x", "--base-binary", "/tmp/a"}, base: "3cd8fea", bin: "/tmp/a", rounds: 3, clients: "[1 16 64]"},
		{name: "bad rounds", args: []string{"--nexus", "x", "--rounds", "0"}, err: "--rounds"},
		{name: "missing value", args: []string{"--nexus", "x", "--base"}, err: "--base needs a value"},
		{name: "raft flag error", args: []string{"--nexus", "x", "--duration", "-1s"}, err: "--duration"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseABFlags(c.args)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.base != c.base || cfg.baseBin != c.bin || cfg.rounds != c.rounds || fmtInts(cfg.raft.clients) != c.clients || cfg.candidate == "" {
				t.Fatalf("%+v", cfg)
			}
		})
	}
}

func fmtInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// The medians of interleaved rounds, per phase, and the ratio B/A.
func TestABSummarize(t *testing.T) {
	rep := func(ops, cpu, failover float64) *Report {
		return &Report{FailoverMedianMs: failover, Phases: []PhaseResult{
			{Phase: "config write", Clients: 64, OpsPerSec: ops, P50Ms: 10, P99Ms: 50, CPUPerOpUs: cpu, Errors: 1},
			{Phase: "consistent read", Clients: 64, NA: true},
		}}
	}
	r := &ABReport{RoundsA: []*Report{rep(1000, 300, 400), rep(1200, 280, 500), rep(900, 320, 450)},
		RoundsB: []*Report{rep(2000, 200, 300), rep(1800, 210, 350), rep(2400, 190, 320)}, Rounds: 3}
	r.summarize()
	if len(r.Rows) != 2 {
		t.Fatalf("rows %+v", r.Rows)
	}
	w := r.Rows[0]
	if w.OpsA != 1000 || w.OpsB != 2000 || w.Ratio != 2 || w.CPUA != 300 || w.CPUB != 200 || w.ErrorsA != 3 || w.ErrorsB != 3 {
		t.Fatalf("write row %+v", w)
	}
	if r.Failover != [2]float64{450, 320} {
		t.Fatalf("failover %v", r.Failover)
	}
	out := formatAB(r)
	if !strings.Contains(out, "| config write | 64 | 1000 | 2000 | 2.00x |") {
		t.Fatalf("table:\n%s", out)
	}
}

// TestABRoundConfig: each side of each round runs its own binary, and with
// --dir on an empty directory of its own (a reused one carried the data of
// the round before into the next: a grown catalog, which the first
// release could not open).
func TestABRoundConfig(t *testing.T) {
	t.Parallel()
	var cfg abConfig
	cfg.candidate = "/bin/candidate"
	cfg.raft.dir = "/tmp/bench"
	seen := map[string]bool{}
	for round := range 3 {
		for _, which := range []string{"A", "B"} {
			rc := roundConfig(cfg, round, which, "/bin/base", nil)
			want := map[string]string{"A": "/bin/base", "B": "/bin/candidate"}[which]
			if rc.nexus != want {
				t.Errorf("round %d %s runs %s, want %s", round+1, which, rc.nexus, want)
			}
			if filepath.Dir(rc.dir) != cfg.raft.dir || seen[rc.dir] {
				t.Errorf("round %d %s: dir %s is not a new directory under %s", round+1, which, rc.dir, cfg.raft.dir)
			}
			seen[rc.dir] = true
		}
	}
	cfg.raft.dir = ""
	if rc := roundConfig(cfg, 1, "B", "/bin/base", nil); rc.dir != "" {
		t.Errorf("without --dir: dir %q, want a temporary one (empty)", rc.dir)
	}
}
