package balance

import (
	"fmt"
	"math"
	"testing"
)

func eps(weights ...int) []Endpoint {
	out := make([]Endpoint, len(weights))
	for i, w := range weights {
		out[i] = Endpoint{ID: fmt.Sprintf("inst-%d", i), Weight: w}
	}
	return out
}

func all(int) bool       { return true }
func noLoad(int) int64   { return 0 }
func counts(n int) []int { return make([]int, n) }

func TestDistribution(t *testing.T) {
	cases := []struct {
		name    string
		kind    Kind
		weights []int
		want    []float64 // expected share
		tol     float64
	}{
		{"round robin even", RoundRobin, []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}, 0.001},
		{"round robin weighted", RoundRobin, []int{3, 1}, []float64{0.75, 0.25}, 0.001},
		{"round robin weight zero", RoundRobin, []int{1, 0, 1}, []float64{0.5, 0, 0.5}, 0.001},
		{"random even", Random, []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}, 0.03},
		{"random weighted", Random, []int{1, 4}, []float64{0.2, 0.8}, 0.03},
		{"consistent hash even", ConsistentHash, []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}, 0.08},
		{"consistent hash weighted", ConsistentHash, []int{1, 3}, []float64{0.25, 0.75}, 0.08},
		{"least conn idle spreads", LeastConn, []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}, 0.001},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := New(c.kind, eps(c.weights...))
			got := counts(len(c.weights))
			const n = 30000
			for k := 0; k < n; k++ {
				i := p.Pick(HashString(fmt.Sprint("key", k)), all, noLoad)
				got[i]++
			}
			for i, w := range c.want {
				if share := float64(got[i]) / n; math.Abs(share-w) > c.tol {
					t.Errorf("endpoint %d: share %.3f, want %.3f±%.3f (counts %v)", i, share, w, c.tol, got)
				}
			}
		})
	}
}

func TestSmoothOrder(t *testing.T) {
	got := fmt.Sprint(smoothOrder([]int{5, 1, 1}))
	if want := "[0 0 1 0 2 0 0]"; got != want {
		t.Fatalf("smoothOrder(5,1,1) = %s, want %s", got, want)
	}
}

func TestSkipsUnavailable(t *testing.T) {
	for _, kind := range []Kind{RoundRobin, LeastConn, Random, ConsistentHash} {
		t.Run(kind.String(), func(t *testing.T) {
			p := New(kind, eps(1, 1, 1))
			for k := 0; k < 100; k++ {
				i := p.Pick(uint64(k), func(i int) bool { return i == 2 }, noLoad)
				if i != 2 {
					t.Fatalf("picked %d, only 2 is available", i)
				}
			}
			if i := p.Pick(1, func(int) bool { return false }, noLoad); i != -1 {
				t.Fatalf("picked %d with none available", i)
			}
		})
	}
	if i := New(RoundRobin, nil).Pick(0, all, noLoad); i != -1 {
		t.Fatalf("empty picker returned %d", i)
	}
}

func TestLeastConnPrefersIdle(t *testing.T) {
	p := New(LeastConn, eps(1, 1, 1))
	loads := []int64{5, 0, 3}
	for k := 0; k < 10; k++ {
		if i := p.Pick(0, all, func(i int) int64 { return loads[i] }); i != 1 {
			t.Fatalf("picked %d, want the idle endpoint 1", i)
		}
	}
	// Per unit of weight: 4/4 < 2/1.
	p = New(LeastConn, eps(1, 4))
	if i := p.Pick(0, all, func(i int) int64 { return []int64{2, 4}[i] }); i != 1 {
		t.Fatalf("weighted least conn picked %d, want 1", i)
	}
}

func TestConsistentHashStableAndMinimalRemap(t *testing.T) {
	before := New(ConsistentHash, eps(1, 1, 1, 1))
	after := New(ConsistentHash, eps(1, 1, 1, 1, 1)) // inst-4 added
	const n = 20000
	moved := 0
	for k := 0; k < n; k++ {
		key := HashString(fmt.Sprint("user-", k))
		a := before.Pick(key, all, noLoad)
		if again := before.Pick(key, all, noLoad); again != a {
			t.Fatalf("key %d moved between picks: %d then %d", k, a, again)
		}
		b := after.Pick(key, all, noLoad)
		if a != b {
			if b != 4 {
				t.Fatalf("key %d moved from %d to %d, not to the new endpoint", k, a, b)
			}
			moved++
		}
	}
	// Ideal is 1/5 of the keys.
	if share := float64(moved) / n; share < 0.12 || share > 0.28 {
		t.Fatalf("%.3f of keys moved, want about 0.2", share)
	}
	// An unavailable endpoint's keys go elsewhere, others stay.
	for k := 0; k < 1000; k++ {
		key := HashString(fmt.Sprint("user-", k))
		a := before.Pick(key, all, noLoad)
		b := before.Pick(key, func(i int) bool { return i != 0 }, noLoad)
		if a != 0 && a != b {
			t.Fatalf("key %d moved from %d to %d although %d is available", k, a, b, a)
		}
	}
}

func TestParseKind(t *testing.T) {
	for _, s := range []string{"", "round_robin", "least_conn", "random", "consistent_hash"} {
		k, err := ParseKind(s)
		if err != nil || (s != "" && k.String() != s) {
			t.Errorf("ParseKind(%q) = %v, %v", s, k, err)
		}
	}
	if _, err := ParseKind("fastest"); err == nil {
		t.Error("ParseKind(fastest) succeeded")
	}
}

func TestPickAllocs(t *testing.T) {
	for _, kind := range []Kind{RoundRobin, LeastConn, Random, ConsistentHash} {
		p := New(kind, eps(1, 2, 3))
		loads := []int64{1, 2, 3}
		tried := uint64(1)
		n := testing.AllocsPerRun(1000, func() {
			p.Pick(42, func(i int) bool { return tried&(1<<i) == 0 }, func(i int) int64 { return loads[i] })
		})
		if n != 0 {
			t.Errorf("%s: Pick allocates %v times", kind, n)
		}
	}
}
