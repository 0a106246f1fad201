// Package balance picks an endpoint of a route: round robin, least
// connections, random and consistent hashing, each honouring per-endpoint
// weights. A Picker is built once per routing table and is safe for concurrent
// use; Pick does not allocate.
package balance

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync/atomic"
)

// Kind is a load-balancing algorithm.
type Kind uint8

// Algorithms, named as in the route's load_balancer field.
const (
	RoundRobin Kind = iota
	LeastConn
	Random
	ConsistentHash
)

// MaxWeight bounds endpoint weights (larger ones are clamped).
const MaxWeight = 100

// vnodesPerWeight is the number of points an endpoint of weight 1 has on the
// consistent-hash ring.
const vnodesPerWeight = 64

// ParseKind maps a load_balancer name to a Kind.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "", "round_robin":
		return RoundRobin, nil
	case "least_conn":
		return LeastConn, nil
	case "random":
		return Random, nil
	case "consistent_hash":
		return ConsistentHash, nil
	}
	return 0, fmt.Errorf("unknown load balancer %q", s)
}

// String returns the load_balancer name.
func (k Kind) String() string {
	switch k {
	case LeastConn:
		return "least_conn"
	case Random:
		return "random"
	case ConsistentHash:
		return "consistent_hash"
	}
	return "round_robin"
}

// Endpoint describes one candidate when building a Picker.
type Endpoint struct {
	ID     string // stable identity (instance id); positions on the hash ring derive from it
	Weight int    // 0 takes no traffic; clamped to MaxWeight
}

// Picker selects endpoints by index into the slice given to New.
type Picker struct {
	kind    Kind
	weights []int
	slots   []int32 // smooth weighted round-robin order
	ring    []point // sorted by hash
	next    atomic.Uint64
}

type point struct {
	hash uint64
	idx  int32
}

// New builds a Picker over endpoints.
func New(kind Kind, endpoints []Endpoint) *Picker {
	p := &Picker{kind: kind, weights: make([]int, len(endpoints))}
	for i, e := range endpoints {
		w := min(max(e.Weight, 0), MaxWeight)
		p.weights[i] = w
	}
	p.slots = smoothOrder(p.weights)
	if kind == ConsistentHash {
		p.ring = buildRing(endpoints, p.weights)
	}
	return p
}

// Len returns the number of endpoints.
func (p *Picker) Len() int { return len(p.weights) }

// Kind returns the algorithm.
func (p *Picker) Kind() Kind { return p.kind }

// Pick returns the index of an endpoint for which ok returns true, or -1.
// key is the request's hash key (consistent_hash only); load returns an
// endpoint's current in-flight requests (least_conn only).
func (p *Picker) Pick(key uint64, ok func(i int) bool, load func(i int) int64) int {
	if len(p.slots) == 0 {
		return -1
	}
	switch p.kind {
	case LeastConn:
		return p.leastConn(ok, load)
	case Random:
		return p.fromSlots(rand.Uint64N(uint64(len(p.slots))), ok)
	case ConsistentHash:
		return p.fromRing(key, ok)
	}
	return p.fromSlots(p.next.Add(1)-1, ok)
}

func (p *Picker) fromSlots(start uint64, ok func(int) bool) int {
	n := uint64(len(p.slots))
	for k := uint64(0); k < n; k++ {
		i := int(p.slots[(start+k)%n])
		if ok(i) {
			return i
		}
	}
	return -1
}

// leastConn picks the endpoint with the fewest in-flight requests per unit of
// weight; ties go round robin so that an idle set is spread evenly.
func (p *Picker) leastConn(ok func(int) bool, load func(int) int64) int {
	n := len(p.weights)
	start := int(p.next.Add(1) % uint64(n))
	best, bestLoad, bestW := -1, int64(0), int64(1)
	for k := 0; k < n; k++ {
		i := (start + k) % n
		w := int64(p.weights[i])
		if w == 0 || !ok(i) {
			continue
		}
		l := load(i)
		// l/w < bestLoad/bestW without division.
		if best < 0 || l*bestW < bestLoad*w {
			best, bestLoad, bestW = i, l, w
		}
	}
	return best
}

func (p *Picker) fromRing(key uint64, ok func(int) bool) int {
	n := len(p.ring)
	if n == 0 {
		return -1
	}
	h := mix(key)
	start := sort.Search(n, func(i int) bool { return p.ring[i].hash >= h })
	for k := 0; k < n; k++ {
		i := int(p.ring[(start+k)%n].idx)
		if ok(i) {
			return i
		}
	}
	return -1
}

// smoothOrder returns the smooth weighted round-robin sequence (nginx's
// algorithm) over one full cycle: weights 5,1,1 give a a b a c a a, not
// a a a a a b c.
func smoothOrder(weights []int) []int32 {
	total := 0
	for _, w := range weights {
		total += w
	}
	out := make([]int32, 0, total)
	cur := make([]int, len(weights))
	for len(out) < total {
		best := -1
		for i, w := range weights {
			if w == 0 {
				continue
			}
			cur[i] += w
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, int32(best))
	}
	return out
}

func buildRing(endpoints []Endpoint, weights []int) []point {
	var ring []point
	for i, e := range endpoints {
		for v := 0; v < weights[i]*vnodesPerWeight; v++ {
			ring = append(ring, point{hash: mix(HashString(e.ID + "#" + strconv.Itoa(v))), idx: int32(i)})
		}
	}
	sort.Slice(ring, func(a, b int) bool {
		if ring[a].hash != ring[b].hash {
			return ring[a].hash < ring[b].hash
		}
		return ring[a].idx < ring[b].idx
	})
	return ring
}
