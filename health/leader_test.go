package health

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/nexus/nexus/registry"
)

// TestLeaderActsOnFailedAndLeftOnly: the leader marks the instances of a
// failed node critical and deregisters those of a node that left; alive and
// suspect nodes (suspect: no recent ack, not a failure) keep theirs.
func TestLeaderActsOnFailedAndLeftOnly(t *testing.T) {
	tests := []struct {
		status string // of n2, which owns the instance
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
		t.Run("n2 "+tc.status, func(t *testing.T) {
			members := map[string]string{}
			if tc.status != "" {
				members["n2"] = tc.status
			}
			deps, w := testDeps(t, newMembership("n1", true, members))
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

// TestLeaderFailedNodePass: the instances of a failed node are looked for
// when the node fails (a walk of the catalog), not on every round; one
// replicated late is marked by the next pass, within nodePassEvery.
func TestLeaderFailedNodePass(t *testing.T) {
	deps, w := testDeps(t, newMembership("n1", true, map[string]string{"n2": "failed"}))
	now := time.Unix(1_700_000_000, 0)
	deps.Now = func() time.Time { return now }
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
	now = now.Add(nodePassEvery)
	l.reconcile(context.Background())
	if got, want := w.logStrings(), []string{"svc/i1 critical", "svc/i2 critical"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("proposals %q, want %q", got, want)
	}
}
