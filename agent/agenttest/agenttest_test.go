package agenttest

import "testing"

func TestPortsNeverRepeat(t *testing.T) {
	pp := NewPorts(t)
	seen := map[int]bool{}
	for range 300 {
		p := pp.Port()
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}
