package nemesis

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestFromGroups(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		groups [][]int
		want   Grudge
	}{
		{"isolate one of three", [][]int{{0}, {1, 2}}, Grudge{0: {1, 2}, 1: {0}, 2: {0}}},
		{"two and three", [][]int{{1, 3}, {0, 2, 4}}, Grudge{0: {1, 3}, 1: {0, 2, 4}, 2: {1, 3}, 3: {0, 2, 4}, 4: {1, 3}}},
		{"one group cuts nothing", [][]int{{0, 1, 2}}, Grudge{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := FromGroups(tc.groups)
			if !reflect.DeepEqual(g, tc.want) {
				t.Fatalf("got %v, want %v", g, tc.want)
			}
			if !g.Symmetric() {
				t.Fatal("not symmetric")
			}
		})
	}
}

// visible counts the nodes i can talk to, itself included.
func visible(g Grudge, n, i int) int {
	c := 0
	for j := 0; j < n; j++ {
		if j == i || g.Connected(i, j) {
			c++
		}
	}
	return c
}

func TestPartitionShapes(t *testing.T) {
	t.Parallel()
	for _, n := range []int{3, 5, 7} {
		for seed := uint64(0); seed < 20; seed++ {
			rng := rand.New(rand.NewPCG(seed, 1))
			halves := RandomHalves(n, rng)
			if len(halves[0]) != n/2 || len(halves[0])+len(halves[1]) != n {
				t.Fatalf("n=%d halves %v", n, halves)
			}
			ring, order := MajorityRing(n, rng)
			if len(order) != n || !ring.Symmetric() {
				t.Fatalf("n=%d ring %v order %v", n, ring, order)
			}
			for i := 0; i < n; i++ {
				if v := visible(ring, n, i); v < n/2+1 || (n >= 5 && v == n) {
					t.Fatalf("n=%d ring %v: node %d sees %d nodes", n, ring, i, v)
				}
			}
			bridge, b := Bridge(n, rng)
			if !bridge.Symmetric() || len(bridge[b]) != 0 {
				t.Fatalf("n=%d bridge %v: the bridge node %d is cut", n, bridge, b)
			}
			if v := visible(bridge, n, b); v != n {
				t.Fatalf("n=%d bridge node sees %d", n, v)
			}
			for i := 0; i < n; i++ {
				if i != b && visible(bridge, n, i) > n/2+1 {
					t.Fatalf("n=%d bridge %v: node %d sees %d", n, bridge, i, visible(bridge, n, i))
				}
			}
		}
	}
	if g, _ := MajorityRing(3, rand.New(rand.NewPCG(1, 1))); len(g) != 0 {
		t.Fatalf("a 3-node ring should cut nothing: %v", g)
	}
	if got := Isolate(3, 1); !reflect.DeepEqual(got, [][]int{{1}, {0, 2}}) {
		t.Fatalf("Isolate = %v", got)
	}
}
