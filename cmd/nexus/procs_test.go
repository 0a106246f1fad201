package main

import "testing"

func TestAgentProcs(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       string
		goDefault int
		want      int
	}{
		{"three per CPU", "", 2, 6},
		{"one CPU", "", 1, 3},
		{"cgroup limit of 3", "", 3, 9},
		{"operator's GOMAXPROCS wins", "1", 2, 0},
		{"operator's GOMAXPROCS wins even if odd", "8", 2, 0},
		{"nonsense default", "", 0, 3},
	} {
		getenv := func(k string) string {
			if k == "GOMAXPROCS" {
				return tc.env
			}
			return ""
		}
		if got := agentProcs(getenv, tc.goDefault); got != tc.want {
			t.Errorf("%s: agentProcs = %d, want %d", tc.name, got, tc.want)
		}
	}
}
