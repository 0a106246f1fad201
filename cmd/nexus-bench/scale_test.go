package main

import (
	"strings"
	"testing"
)

func TestParseScaleFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, c scaleConfig)
	}{
		{"defaults are issue 21's sizes", []string{"--nexus", "bin/nexus"}, "", func(t *testing.T, c scaleConfig) {
			if c.instances != 100000 || c.configKeys != 1000000 || c.routes != 10000 || c.watchers != 10000 || c.clients != 64 || c.routeClients != 16 {
				t.Fatalf("%+v", c)
			}
			if len(c.only) != len(scalePhases) || c.raftPort != 28700 || c.httpPort != 28900 || c.gatewayPort != 28480 {
				t.Fatalf("phases %v ports %d %d %d", c.only, c.raftPort, c.httpPort, c.gatewayPort)
			}
		}},
		{"scaled down, some phases", []string{"--nexus", "x", "--instances", "10000", "--only", "register,lists"}, "", func(t *testing.T, c scaleConfig) {
			if c.instances != 10000 || !c.only["register"] || !c.only["lists"] || c.only["config"] {
				t.Fatalf("%+v", c)
			}
			if !strings.Contains(c.commandForFigs, "--instances 10000") {
				t.Fatalf("command %q", c.commandForFigs)
			}
		}},
		{"no binary", []string{"--instances", "10"}, "--nexus PATH is required", nil},
		{"too few instances", []string{"--nexus", "x", "--instances", "10"}, "at least 20", nil},
		{"zero routes", []string{"--nexus", "x", "--routes", "0"}, "--routes must be at least 1", nil},
		{"unknown phase", []string{"--nexus", "x", "--only", "register,nope"}, `unknown phase "nope"`, nil},
		{"stray argument", []string{"--nexus", "x", "extra"}, "unexpected arguments", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseScaleFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestScaleReportFormat(t *testing.T) {
	r := &ScaleReport{Command: "bin/nexus-bench scale --instances 100"}
	r.add("registration", "rate overall", "≥ 2,000/s", "%.0f/s", 2500.4)
	res := CountResult{PhaseResult: PhaseResult{Phase: "register", Ops: 98, Errors: 2, Clients: 4}, TenthRates: []float64{100, 90},
		Codes: map[string]int{"503": 1, "transport": 1}}
	r.Phases = append(r.Phases, res)
	if got := res.errorText(); got != "2 (1×503, 1×transport)" {
		t.Errorf("errorText %q", got)
	}
	if got := res.firstLastRatio(); got != 0.9 {
		t.Errorf("ratio %v", got)
	}
	md := formatScale(r)
	for _, want := range []string{"Command: `bin/nexus-bench scale --instances 100`", "| registration | rate overall | 2500/s | ≥ 2,000/s |", "| register | 98 | 4 |", "100 90"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestRegistrationBody(t *testing.T) {
	got := string(registration(123456))
	want := `{"name":"svc-12345","type":"http","id":"i-0123456","address":"10.1.226.64","port":8080,"tags":["blue","v1"],"metadata":{"zone":"z0"}}`
	if got != want {
		t.Fatalf("%s\nwant %s", got, want)
	}
}
