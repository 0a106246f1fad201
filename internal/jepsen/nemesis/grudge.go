package nemesis

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
)

// Grudge says, for each node, which nodes it drops traffic from. Grudges
// built here are symmetric: if i drops j then j drops i.
type Grudge map[int][]int

// FromGroups cuts every pair of nodes that are in different groups.
func FromGroups(groups [][]int) Grudge {
	g := Grudge{}
	for a, ga := range groups {
		for b, gb := range groups {
			if a == b {
				continue
			}
			for _, i := range ga {
				g[i] = append(g[i], gb...)
			}
		}
	}
	g.normalize()
	return g
}

func (g Grudge) normalize() {
	for i := range g {
		sort.Ints(g[i])
		if len(g[i]) == 0 {
			delete(g, i)
		}
	}
}

// Symmetric reports whether every cut goes both ways.
func (g Grudge) Symmetric() bool {
	for i, js := range g {
		for _, j := range js {
			found := false
			for _, k := range g[j] {
				found = found || k == i
			}
			if !found {
				return false
			}
		}
	}
	return true
}

// Connected reports whether nodes i and j can talk.
func (g Grudge) Connected(i, j int) bool {
	for _, k := range g[i] {
		if k == j {
			return false
		}
	}
	return true
}

// shuffled returns 0..n-1 in random order.
func shuffled(n int, rng *rand.Rand) []int {
	p := rng.Perm(n)
	return p
}

// RandomHalves splits the nodes into a random minority and majority.
func RandomHalves(n int, rng *rand.Rand) [][]int {
	p := shuffled(n, rng)
	k := n / 2
	return [][]int{sorted(p[:k]), sorted(p[k:])}
}

// Isolate cuts node i from every other node.
func Isolate(n, i int) [][]int {
	var rest []int
	for j := 0; j < n; j++ {
		if j != i {
			rest = append(rest, j)
		}
	}
	return [][]int{{i}, rest}
}

// MajorityRing arranges the nodes in a random ring where each node sees only
// its nearest neighbours: itself and d on each side, the smallest d that
// makes a majority. Every node sees a majority, but no two nodes see the same
// one (with 5 nodes: each sees itself and its two neighbours).
func MajorityRing(n int, rng *rand.Rand) (Grudge, []int) {
	ring := shuffled(n, rng)
	majority := n/2 + 1
	d := majority / 2 // 2d+1 >= majority
	pos := make([]int, n)
	for k, node := range ring {
		pos[node] = k
	}
	g := Grudge{}
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			dist := abs(pos[i] - pos[j])
			dist = min(dist, n-dist)
			if dist > d {
				g[i] = append(g[i], j)
			}
		}
	}
	g.normalize()
	return g, ring
}

// Bridge splits the nodes into two halves that cannot talk to each other
// and one node that talks to both.
func Bridge(n int, rng *rand.Rand) (Grudge, int) {
	p := shuffled(n, rng)
	bridge := p[0]
	rest := p[1:]
	k := len(rest) / 2
	return FromGroups([][]int{rest[:k], rest[k:]}), bridge
}

func sorted(xs []int) []int {
	out := append([]int(nil), xs...)
	sort.Ints(out)
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// describeGroups renders groups of node indexes with names.
func describeGroups(groups [][]int, name func(int) string) string {
	parts := make([]string, len(groups))
	for k, grp := range groups {
		names := make([]string, len(grp))
		for x, i := range grp {
			names[x] = name(i)
		}
		parts[k] = "{" + strings.Join(names, " ") + "}"
	}
	return strings.Join(parts, " | ")
}

// describeGrudge renders who drops whom.
func describeGrudge(g Grudge, n int, name func(int) string) string {
	var parts []string
	for i := 0; i < n; i++ {
		if len(g[i]) == 0 {
			continue
		}
		names := make([]string, len(g[i]))
		for x, j := range g[i] {
			names[x] = name(j)
		}
		parts = append(parts, fmt.Sprintf("%s✗%s", name(i), strings.Join(names, ",")))
	}
	return strings.Join(parts, " ")
}
