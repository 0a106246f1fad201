package health

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/registry"

	"github.com/nexus/nexus/cluster/member"
)

// TestLeaderActsOnFailedAndLeftOnly: the leader marks the instances of a
// failed node critical and deregisters those of a node that left; alive and
// suspect nodes (suspect: no recent ack, not a failure) keep theirs.
func TestLeaderActsOnFailedAndLeftOnly(t *testing.T) {
	tests := []struct {
		status member.Status // of n2, which owns the instance
		want   []string
		after  string // the instance's status then ("" gone)
	}{
		{"alive", nil, registry.StatusPassing},
		{"suspect", nil, registry.StatusPassing},
		{"failed", []string{"svc/i1 critical"}, registry.StatusCritical},
		{"left", []string{"deregister_instance svc/i1"}, ""},
		{"", nil, registry.StatusPassing}, // unknown to gossip: nothing to say
	}
	for _, tc := range tests {
		t.Run("n2 "+string(tc.status), func(t *testing.T) {
			members := map[string]member.Status{}
			if tc.status != "" {
				members["n2"] = tc.status
			}
			deps, w := testDeps(t, newMembership("n1", members))
			in := owned("svc", "i1")
			in.Node, in.Status = "n2", registry.StatusPassing
			w.register(t, in)
			l := NewLeader(deps, NewRunner(deps))
			l.reconcile(context.Background())
			l.reconcile(context.Background()) // a second round changes nothing more
			if got := w.logStrings(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("proposals %q, want %q", got, tc.want)
			}
			if st, _ := instanceStatus(deps.Store, "svc", "i1"); st != tc.after {
				t.Fatalf("instance %q, want %q", st, tc.after)
			}
			if log := w.log(); tc.status == "failed" && log[0].output != "node n2 failed (gossip)" {
				t.Fatalf("output %q", log[0].output)
			}
		})
	}
}

// TestLeaderRunIsADuty: the leadership loop runs the leader as a duty. It
// acts at once (a new leader reconciles every member, since events during
// the election are lost), returns when its context ends, and forgets what
// it observed.
func TestLeaderRunIsADuty(t *testing.T) {
	deps, w := testDeps(t, newMembership("n1", map[string]member.Status{"n2": member.Failed}))
	in := owned("svc", "i1")
	in.Node, in.Status = "n2", registry.StatusPassing
	w.register(t, in)
	l := NewLeader(deps, NewRunner(deps))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	retry.Run(t, func(r *retry.R) {
		if st, _ := instanceStatus(deps.Store, "svc", "i1"); st != registry.StatusCritical {
			r.Fatalf("instance of the failed node is %q", st)
		}
	})
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if len(l.criticalSince) != 0 {
		t.Fatalf("Run kept what it observed: %v", l.criticalSince)
	}
}

// TestLeaderFailedNodePass: the instances of a failed node are looked for
// when the node fails (a walk of the catalog), not on every round; one
// replicated late is marked by the next pass, within nodePassEvery.
func TestLeaderFailedNodePass(t *testing.T) {
	deps, w := testDeps(t, newMembership("n1", map[string]member.Status{"n2": member.Failed}))
	clock := newFakeClock()
	deps.Clock = clock
	in := owned("svc", "i1")
	in.Node, in.Status = "n2", registry.StatusPassing
	w.register(t, in)
	l := NewLeader(deps, NewRunner(deps))
	l.reconcile(context.Background())
	late := owned("svc", "i2")
	late.Node, late.Status = "n2", registry.StatusPassing
	w.register(t, late)
	l.reconcile(context.Background()) // same failed nodes, within nodePassEvery: no pass
	if got, want := w.logStrings(), []string{"svc/i1 critical"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("proposals %q, want %q", got, want)
	}
	clock.Advance(nodePassEvery)
	l.reconcile(context.Background())
	if got, want := w.logStrings(), []string{"svc/i1 critical", "svc/i2 critical"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("proposals %q, want %q", got, want)
	}
}
