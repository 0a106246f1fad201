package main

import (
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseVariants(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []agentVariant
		err  string
	}{
		{in: "", want: nil},
		{in: defaultVariants(), want: []agentVariant{
			{name: "onepercpu", env: []string{"GOMAXPROCS=" + strconv.Itoa(runtime.NumCPU())}},
		}},
		{in: "plain:NEXUS_GATEWAY_SOCKET_IO=plain,gmp1:GOMAXPROCS=1", want: []agentVariant{
			{name: "plain", env: []string{"NEXUS_GATEWAY_SOCKET_IO=plain"}},
			{name: "gmp1", env: []string{"GOMAXPROCS=1"}},
		}},
		{in: "both:GOMAXPROCS=1;NEXUS_GATEWAY_SOCKET_IO=plain", want: []agentVariant{
			{name: "both", env: []string{"GOMAXPROCS=1", "NEXUS_GATEWAY_SOCKET_IO=plain"}},
		}},
		{in: "noenv", err: "NAME:VAR=VALUE"},
		{in: ":A=1", err: "NAME:VAR=VALUE"},
		{in: "a:A=1,a:B=2", err: "unique"},
		{in: "a:novalue", err: `"novalue" is not VAR=VALUE`},
		{in: "a:=1", err: "not VAR=VALUE"},
	} {
		got, err := parseVariants(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestShiftPort(t *testing.T) {
	if got, err := shiftPort("127.0.0.1:29080", 20); err != nil || got != "127.0.0.1:29100" {
		t.Fatalf("shiftPort: %q, %v", got, err)
	}
	if _, err := shiftPort("nohost", 1); err == nil {
		t.Fatal("shiftPort accepted an address without a port")
	}
}

func TestSlowShare(t *testing.T) {
	expo := func(counts ...int) schedHist {
		les := []string{"6.4e-08", "8.191999999999999e-05", "0.0009175039999999999", "0.010485759999999998", "+Inf"}
		var b strings.Builder
		b.WriteString("# HELP go_sched_latencies_seconds x\ngo_sched_gomaxprocs_threads 4\n")
		for i, n := range counts {
			b.WriteString(`go_sched_latencies_seconds_bucket{le="` + les[i] + `"} ` + strconv.Itoa(n) + "\n")
		}
		b.WriteString("go_sched_latencies_seconds_sum 0.5\ngo_sched_latencies_seconds_count 999\n")
		h, err := parseSchedHist(strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		name          string
		before, after schedHist
		want          float64
	}{
		{"2 of 100 slow", expo(0, 10, 20, 20, 20), expo(10, 60, 118, 120, 120), 0.02},
		{"none slow", expo(0, 0, 0, 0, 0), expo(5, 50, 50, 50, 50), 0},
		{"all slow", expo(0, 0, 0, 0, 0), expo(0, 0, 0, 4, 10), 1},
		{"nothing ran", expo(1, 2, 3, 4, 5), expo(1, 2, 3, 4, 5), -1},
		{"no histogram", schedHist{}, schedHist{}, -1},
	} {
		if got := slowShare(tc.before, tc.after); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("%s: slowShare = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRoundRatios: each target is compared with nginx's run of the same
// round, and the median is taken over those ratios, not from two medians
// of different rounds.
func TestRoundRatios(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	nginx := &target{name: "nginx", results: []wrkResult{
		{rps: 40000, cpuPerReq: 20 * time.Microsecond, p99: 4 * ms},
		{rps: 30000, cpuPerReq: 30 * time.Microsecond, p99: 5 * ms},
		{rps: 40000, cpuPerReq: 20 * time.Microsecond, p99: 4 * ms},
	}}
	nexus := &target{name: "nexus", results: []wrkResult{
		{rps: 36000, cpuPerReq: 26 * time.Microsecond, p99: 6 * ms},
		{rps: 27000, cpuPerReq: 33 * time.Microsecond, p99: 5 * ms},
		{rps: 20000, cpuPerReq: 40 * time.Microsecond, p99: 12 * ms},
	}}
	got := roundRatiosMarkdown([]*target{nexus, nginx})
	want := "| nexus | 0.90 / 0.90 / 0.50 | 0.90x | 1.30 / 1.10 / 2.00 | 1.30x | 1.50 / 1.00 / 3.00 | 1.50x |"
	if !strings.Contains(got, want) {
		t.Fatalf("got\n%s\nwant a row\n%s", got, want)
	}
	if strings.Contains(got, "| nginx |") {
		t.Fatalf("nginx compared with itself:\n%s", got)
	}
	if s := roundRatiosMarkdown([]*target{nexus}); s != "" {
		t.Fatalf("without nginx: %q, want nothing", s)
	}
}
