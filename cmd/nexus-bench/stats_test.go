package main

import (
	"encoding/json"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	cases := []struct {
		p    float64
		want time.Duration
	}{
		{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond},
		{1, 1 * time.Millisecond}, {0.001, 1 * time.Millisecond}, {99.9, 100 * time.Millisecond},
	}
	for _, c := range cases {
		if got := percentile(s, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("empty: %v", got)
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("single: %v", got)
	}
	// Small sets: p50 of 4 is the 2nd, p99 of 4 the 4th.
	four := []time.Duration{1, 2, 3, 4}
	if percentile(four, 50) != 2 || percentile(four, 99) != 4 {
		t.Errorf("four: %v %v", percentile(four, 50), percentile(four, 99))
	}
}

func TestPercentileMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for n := 1; n < 300; n += 7 {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = time.Duration(rng.Intn(1000))
		}
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		for _, p := range []float64{50, 90, 99} {
			got := percentile(s, p)
			// Nearest rank: smallest v with count(<= v) >= p% of n.
			atOrBelow := 0
			for _, x := range s {
				if x <= got {
					atOrBelow++
				}
			}
			below := 0
			for _, x := range s {
				if x < got {
					below++
				}
			}
			if float64(atOrBelow) < p/100*float64(n) || float64(below) >= p/100*float64(n) {
				t.Fatalf("n=%d p%v = %v: %d at or below, %d below", n, p, got, atOrBelow, below)
			}
		}
	}
}

func TestMedian(t *testing.T) {
	if m := median([]time.Duration{5, 1, 3}); m != 3 {
		t.Errorf("odd: %v", m)
	}
	if m := median([]time.Duration{4, 1, 3, 2}); m != 2 { // (2+3)/2 truncated
		t.Errorf("even: %v", m)
	}
	if m := median([]float64{2.5, 1, 4, 3}); m != 2.75 {
		t.Errorf("float even: %v", m)
	}
	if m := median[time.Duration](nil); m != 0 {
		t.Errorf("empty: %v", m)
	}
	in := []time.Duration{3, 1, 2}
	median(in)
	if in[0] != 3 {
		t.Error("median sorted its input")
	}
}

func TestKeyFor(t *testing.T) {
	seen := map[string]bool{}
	for n := uint64(0); n < 5000; n++ {
		k := keyFor('w', n)
		if len(k) != 8 || k[0] != 'w' {
			t.Fatalf("keyFor(%d) = %q", n, k)
		}
		for _, ch := range k {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz0123456789", ch) {
				t.Fatalf("keyFor(%d) = %q has %q", n, k, ch)
			}
		}
		if seen[k] {
			t.Fatalf("duplicate key %q", k)
		}
		seen[k] = true
	}
	if keyFor('r', 0) != "r0000000" || keyFor('r', 0xabc) != "r0000abc" || keyFor('r', 1<<28) != "r0000000" {
		t.Errorf("keyFor: %q %q %q", keyFor('r', 0), keyFor('r', 0xabc), keyFor('r', 1<<28))
	}
}

func TestValueFor(t *testing.T) {
	a, b := valueFor(1), valueFor(2)
	if len(a) != valueSize || len(b) != valueSize {
		t.Fatalf("sizes %d %d", len(a), len(b))
	}
	var s string
	if err := json.Unmarshal(a, &s); err != nil || len(s) != valueSize-2 {
		t.Fatalf("not a JSON string of %d chars: %v %q", valueSize-2, err, a)
	}
	if string(a) == string(b) {
		t.Error("values for different seeds are equal")
	}
	if string(valueFor(1)) != string(a) {
		t.Error("valueFor is not deterministic")
	}
}

func TestParseClients(t *testing.T) {
	got, err := parseClients(" 1, 16,64 ")
	if err != nil || len(got) != 3 || got[0] != 1 || got[1] != 16 || got[2] != 64 {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "0", "a", "1,-2", ","} {
		if _, err := parseClients(bad); err == nil {
			t.Errorf("parseClients(%q) succeeded", bad)
		}
	}
}

func TestParseRaftFlags(t *testing.T) {
	cfg, err := parseRaftFlags([]string{"--nexus", "/x/nexus", "--duration", "2s", "--clients", "4", "--failover-rounds", "1", "--out", "r.json"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.nexus != "/x/nexus" || cfg.duration != 2*time.Second || len(cfg.clients) != 1 || cfg.clients[0] != 4 ||
		cfg.failoverRounds != 1 || cfg.out != "r.json" || cfg.readClients != 64 || cfg.raftPort != 28300 || cfg.httpPort != 28500 {
		t.Fatalf("%+v", cfg)
	}
	if _, err := parseRaftFlags([]string{"--duration", "1s"}); err == nil {
		t.Error("missing --nexus accepted")
	}
	if _, err := parseRaftFlags([]string{"--nexus", "x", "extra"}); err == nil {
		t.Error("extra argument accepted")
	}
}

func TestSummarize(t *testing.T) {
	lat := []time.Duration{4 * time.Millisecond, 1 * time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond}
	r := summarize("config write", 2, 2*time.Second, lat, 1)
	if r.Ops != 4 || r.Errors != 1 || r.OpsPerSec != 2 || r.P50Ms != 2 || r.P99Ms != 4 || r.MaxMs != 4 || r.Clients != 2 {
		t.Fatalf("%+v", r)
	}
	z := summarize("local read", 1, 0, nil, 0)
	if z.OpsPerSec != 0 || z.P50Ms != 0 {
		t.Fatalf("%+v", z)
	}
}

func TestFormatMarkdown(t *testing.T) {
	rep := Report{
		Nodes: 3, DurationPerPhase: "10s", ValueBytes: 256,
		Phases: []PhaseResult{
			{Phase: "config write", Clients: 16, OpsPerSec: 1234.56, P50Ms: 8.123, P99Ms: 31.4, Errors: 0},
			{Phase: "local read", Clients: 64, OpsPerSec: 20000, P50Ms: 0.5, P99Ms: 150, Errors: 2, Note: "first error: 503 x"},
			{Phase: "consistent read", Clients: 64, NA: true},
		},
		Failover: []FailoverRound{
			{Round: 1, Killed: "n1", NewLeader: "n2", Ms: 612.4},
			{Round: 2, Killed: "n2", Error: "no write | acknowledged"},
			{Round: 3, Killed: "n3", NewLeader: "n1", Ms: 1000},
		},
	}
	rep.FailoverMedianMs = failoverMedian(rep.Failover)
	if rep.FailoverMedianMs != 806.2 {
		t.Fatalf("median %v", rep.FailoverMedianMs)
	}
	out := formatMarkdown(rep)
	for _, want := range []string{
		"| phase | clients | ops/s | p50 | p99 | errors |",
		"| config write | 16 | 1234.6 | 8.12 ms | 31.4 ms | 0 |",
		"| local read | 64 | 20000.0 | 0.50 ms | 150 ms | 2 |",
		"| consistent read | 64 | n/a | n/a | n/a | n/a |",
		"- local read (64 clients): first error: 503 x",
		"| 1 | n1 | n2 | 612 ms |",
		"| 2 | n2 |  | failed: no write / acknowledged |",
		"| median | | | 806 ms |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Every table row has the same number of cells as its header.
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| phase") || strings.HasPrefix(line, "| config") || strings.HasPrefix(line, "| consistent") {
			if n := strings.Count(line, "|"); n != 7 {
				t.Errorf("row %q has %d pipes", line, n)
			}
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
}
