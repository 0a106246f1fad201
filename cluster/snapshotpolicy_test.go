package cluster

import "testing"

func TestSnapshotThreshold(t *testing.T) {
	cases := []struct {
		base, objects, want uint64
	}{
		{8192, 0, 8192},
		{8192, 10000, 8192},
		{8192, 65536, 8192},
		{8192, 80000, 10000},
		{8192, 1_100_000, 137_500},
		{100, 1000, 125},
	}
	for _, c := range cases {
		if got := snapshotThreshold(c.base, c.objects); got != c.want {
			t.Errorf("snapshotThreshold(%d, %d) = %d, want %d", c.base, c.objects, got, c.want)
		}
	}
}

func TestThresholdChanged(t *testing.T) {
	cases := []struct {
		cur, want, base uint64
		changed         bool
	}{
		{8192, 8192, 8192, false},
		{8192, 9000, 8192, false}, // under an eighth
		{8192, 9300, 8192, true},
		{275_000, 280_000, 8192, false},
		{275_000, 240_000, 8192, true},
		{9000, 8192, 8192, true}, // back to the floor, whatever the step
		{100, 250, 100, true},
	}
	for _, c := range cases {
		if got := thresholdChanged(c.cur, c.want, c.base); got != c.changed {
			t.Errorf("thresholdChanged(%d, %d, %d) = %v, want %v", c.cur, c.want, c.base, got, c.changed)
		}
	}
}
