package main

import (
	"testing"
	"time"
)

func TestParseLocksFlags(t *testing.T) {
	cfg, err := parseLocksFlags([]string{"--nexus", "/bin/nexus", "--contenders", "2,16", "--lock-delay", "1s", "--kill-rounds", "1"})
	if err != nil || len(cfg.contenders) != 2 || cfg.contenders[1] != 16 || cfg.lockDelay != time.Second || cfg.duration != 10*time.Second {
		t.Fatalf("cfg %+v, err %v", cfg, err)
	}
	for _, bad := range [][]string{
		{},
		{"--nexus", "x", "--contenders", "0"},
		{"--nexus", "x", "--lock-delay", "2m"},
		{"--nexus", "x", "extra"},
	} {
		if _, err := parseLocksFlags(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestCountHandovers(t *testing.T) {
	// In lock_index order: 1 a, 2 a, 3 b, 4 b, 5 a → two handovers.
	acqs := []acquisition{{5, 0}, {1, 0}, {3, 1}, {2, 0}, {4, 1}}
	if got := countHandovers(acqs); got != 2 {
		t.Fatalf("handovers = %d, want 2", got)
	}
	if got := countHandovers(nil); got != 0 {
		t.Fatalf("handovers of nothing = %d", got)
	}
}
