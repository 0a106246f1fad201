package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/jepsen/runner"
)

func TestInnerArgsRoundTrip(t *testing.T) {
	t.Parallel()
	var f runFlags
	fs := newFlagSet("run", &bytes.Buffer{})
	f.register(fs)
	if err := fs.Parse([]string{"--nexus", "/x/nexus", "--nodes", "3", "--nemesis", "kill,pause", "--time", "2m",
		"--seed", "9", "--agent-arg=--log-level=debug", "--agent-arg", "--apply-timeout=5s", "--keep-data"}); err != nil {
		t.Fatal(err)
	}
	f.cfg.OutDir = "o"
	if err := f.finish(); err != nil {
		t.Fatal(err)
	}
	var g runFlags
	gs := newFlagSet(innerCommand, &bytes.Buffer{})
	g.register(gs)
	gs.StringVar(&g.cfg.OutDir, "out", "", "")
	if err := gs.Parse(f.innerArgs("o")); err != nil {
		t.Fatal(err)
	}
	if err := g.finish(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.cfg, g.cfg) || f.nodes != g.nodes {
		t.Fatalf("round trip:\n%+v\n%+v", f.cfg, g.cfg)
	}
	if g.cfg.Duration != 2*time.Minute || !g.cfg.KeepData || len(g.cfg.AgentArgs) != 2 {
		t.Fatalf("parsed %+v", g.cfg)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--nemesis", "bogus"}, "unknown nemesis"},
		{[]string{"run", "--workload", "audit"}, "audit archive"},
		{[]string{"run", "--nodes", "12"}, "--nodes 12"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"campaign", "--nemeses", "kill,nope"}, "unknown nemesis"},
	}
	for _, tc := range tests {
		var out, errw bytes.Buffer
		if code := run(tc.args, &out, &errw); code != exitUsage || !strings.Contains(errw.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errw.String(), exitUsage, tc.want)
		}
	}
}

func TestCampaignTable(t *testing.T) {
	t.Parallel()
	rs := []campaignRun{
		{Nemesis: "kill", Dir: "c/kill-01", Verdict: runner.VerdictValid, Ops: 100, OK: 90, Fail: 8, Info: 2, Avail: 0.9, AvailF: 0.8, Faults: 3, Lin: "ok"},
		{Nemesis: "kill", Dir: "c/kill-02", Verdict: runner.VerdictInvalid, Ops: 100, OK: 80, Fail: 20, Avail: 0.7, AvailF: 0.6, Faults: 3, Lost: 2, Reasons: []string{"set: lost"}},
		{Nemesis: "all", Dir: "c/all-01", Verdict: runner.VerdictValid, Ops: 10, OK: 10, Avail: 1, AvailF: 1},
	}
	s := campaignTable(rs, time.Minute)
	for _, want := range []string{"| kill | 2 | 1 | 200 | 170 | 28 | 2 | 6 | 0.800 | 0.700 | 2 | 0 |", "| all | 1 | 1 |", "| kill-02 | invalid |", "set: lost"} {
		if !strings.Contains(s, want) {
			t.Fatalf("table lacks %q:\n%s", want, s)
		}
	}
}
