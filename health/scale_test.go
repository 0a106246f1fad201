package health

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nexus/nexus/cluster/member"
	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/internal/scaletest"
	"github.com/nexus/nexus/registry"
)

// scaleSizes are the catalog sizes the cost tests compare: large is 20x
// small (8x under -race, which is slower), so work proportional to the
// catalog shows as a ratio far above the 3x the tests allow.
func scaleSizes() (small, large int) { return scaletest.Sizes(1000, 20000) }

// scaleInstances returns n instances of node, ten per service, numbered
// from 'from', like the registrations of nexus-bench scale.
func scaleInstances(node string, from, n int) []registry.Instance {
	out := make([]registry.Instance, 0, n)
	for i := from; i < from+n; i++ {
		out = append(out, registry.Instance{
			ID: fmt.Sprintf("i-%d", i), Service: fmt.Sprintf("svc-%d", i/10), Type: "http", Address: "10.0.0.1", Port: 8080,
			Node: node, Status: registry.StatusPassing, Tags: []string{"a", "b"}, Metadata: map[string]string{"k": "v"},
			Checks: []registry.Check{}, DependsOn: []string{},
		})
	}
	return out
}

func (r *Runner) knownCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.checks)
}

func waitKnown(t *testing.T, r *Runner, n int) {
	t.Helper()
	retry.Run(t, func(rr *retry.R) {
		if got := r.knownCount(); got != n {
			rr.Fatalf("runner knows %d of %d owned instances", got, n)
		}
	})
}

// runnerWriteCost registers k instances, one commit each, into a catalog
// of n instances owned by this node and returns the bytes allocated per
// write until the runner has taken each in.
func runnerWriteCost(t *testing.T, n, k int) uint64 {
	deps, w := testDeps(t, newMembership("n1", nil))
	deps.AntiEntropyInterval = time.Hour // no periodic pass in the measure
	w.register(t, scaleInstances("n1", 0, n)...)
	r := runRunner(t, deps)
	waitKnown(t, r, n)
	return scaletest.Allocated(func() {
		for i, in := range scaleInstances("n1", n, k) {
			// One write at a time, each taken in before the next, as on
			// a quiet node: no coalescing hides the cost of one write.
			w.register(t, in)
			waitKnown(t, r, n+i+1)
		}
	}) / uint64(k)
}

// TestRunnerWriteCostFlat: a registration on a node costs the same whether
// the node owns 1,000 or 20,000 instances. Before the runner followed the
// store's changes it re-read and re-synced every owned instance on each
// change: 934 KB per write at 1,000 instances, 21.7 MB at 20,000 (23x).
func TestRunnerWriteCostFlat(t *testing.T) {
	small, large := scaleSizes()
	cs := runnerWriteCost(t, small, 50)
	cl := runnerWriteCost(t, large, 50)
	t.Logf("bytes per write: %d at %d instances, %d at %d (%.1fx)", cs, small, cl, large, float64(cl)/float64(cs))
	if cl > 3*cs {
		t.Fatalf("a write costs %.1fx more at %d instances than at %d", float64(cl)/float64(cs), large, small)
	}
}

// leaderTickCost returns the bytes one round of the leader's duties
// allocates over a catalog of n healthy instances on alive nodes and ten
// critical ones.
func leaderTickCost(t *testing.T, n int) uint64 {
	deps, w := testDeps(t, newMembership("n1", map[string]member.Status{"n2": member.Alive, "n3": member.Failed}))
	w.register(t, scaleInstances("n2", 0, n)...)
	sick := scaleInstances("n3", n, 10)
	w.register(t, sick...)
	l := NewLeader(deps, NewRunner(deps))
	l.reconcile(context.Background()) // marks n3's instances critical
	if got := len(w.logStrings()); got != len(sick) {
		t.Fatalf("%d proposals, want %d", got, len(sick))
	}
	return scaletest.Allocated(func() {
		for range 5 {
			l.reconcile(context.Background())
		}
	}) / 5
}

// TestLeaderTickCostFlat: the leader's round (every second) costs what is
// critical or on failed nodes, not the catalog. Before, it copied every
// instance of every service each second.
func TestLeaderTickCostFlat(t *testing.T) {
	small, large := scaleSizes()
	cs := leaderTickCost(t, small)
	cl := leaderTickCost(t, large)
	t.Logf("bytes per round: %d at %d instances, %d at %d", cs, small, cl, large)
	if cl > 3*cs {
		t.Fatalf("a round costs %.1fx more at %d instances than at %d", float64(cl)/float64(cs), large, small)
	}
}
