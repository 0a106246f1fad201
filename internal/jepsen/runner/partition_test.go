package runner

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/jepsen/client"
	"github.com/nexus/nexus/internal/jepsen/history"
	"github.com/nexus/nexus/internal/jepsen/nemesis"
	"github.com/nexus/nexus/internal/proccluster"
)

// TestPartitionStopsRaftTraffic checks that the partition nemesis really cuts
// Raft traffic: with the leader isolated by iptables rules in the node
// namespaces, the old leader steps down and refuses writes and consistent
// reads, the majority elects a new leader and commits writes the old leader
// never sees, and after healing the old leader catches up as a follower.
func TestPartitionStopsRaftTraffic(t *testing.T) {
	topo, bin := inside(t, 3)
	if topo == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	wrapper := filepath.Join(dir, FileWrapper)
	if err := topo.WriteAgentWrapper(wrapper, bin); err != nil {
		t.Fatal(err)
	}
	pc := proccluster.StartT(t, proccluster.Options{Binary: wrapper, Nodes: len(topo.Nodes), BaseIP: topo.Prefix, Dir: dir})
	cl := newCluster(pc, topo)
	defer cl.close()
	if err := nemesis.Prepare(ctx, cl); err != nil {
		t.Fatal(err)
	}
	old, oldName, err := pc.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.WaitAllReady(ctx); err != nil {
		t.Fatal(err)
	}
	c := client.New(client.Options{Timeout: 3 * time.Second, MaxConnsPerNode: 4})
	defer c.Close()
	if r := c.WriteConfig(ctx, pc.HTTPAddr(old), "jepsen/before", 1); r.Type != history.OK {
		t.Fatalf("write before the partition: %+v", r.Result)
	}

	p := &nemesis.Partition{Modes: []string{nemesis.PartitionIsolateLeader}}
	tl := nemesis.NewTimeline(time.Now(), nil)
	f, err := p.Inject(ctx, cl, rand.New(rand.NewPCG(1, 2)), tl)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("partition: %s", f.Detail)
	healed := false
	defer func() {
		if !healed {
			_ = f.Heal(context.Background())
		}
	}()

	// The isolated leader steps down (no quorum within the lease).
	waitFor(t, ctx, 10*time.Second, "old leader "+oldName+" steps down", func() (bool, string) {
		st, err := c.Status(ctx, pc.HTTPAddr(old))
		if err != nil {
			return false, err.Error()
		}
		return !client.IsLeaderState(st.Raft.State), st.Raft.State
	})
	var others []int
	for i := 0; i < pc.N(); i++ {
		if i != old {
			others = append(others, i)
		}
	}
	lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
	newLeader, newName, err := pc.WaitLeaderAmong(lctx, others)
	lcancel()
	if err != nil {
		t.Fatalf("the majority elects no leader: %v", err)
	}
	t.Logf("new leader %s, old leader %s isolated", newName, oldName)
	before, err := c.Status(ctx, pc.HTTPAddr(old))
	if err != nil {
		t.Fatal(err)
	}
	for k := int64(0); k < 5; k++ {
		if r := c.WriteConfig(ctx, pc.HTTPAddr(newLeader), "jepsen/during", 100+k); r.Type != history.OK {
			t.Fatalf("write on the majority: %+v", r.Result)
		}
	}
	// The minority side neither acknowledges writes nor serves
	// consistent reads.
	if r := c.WriteConfig(ctx, pc.HTTPAddr(old), "jepsen/minority", 7); r.Type == history.OK {
		t.Fatalf("the isolated old leader acknowledged a write: %+v", r.Result)
	} else {
		t.Logf("write on the isolated node: %s %d %s", r.Type, r.Status, r.Code)
	}
	if r := c.ReadConfig(ctx, pc.HTTPAddr(old), "jepsen/during"); r.Type == history.OK {
		t.Fatalf("the isolated old leader served a consistent read: %+v", r)
	}
	after, err := c.Status(ctx, pc.HTTPAddr(old))
	if err != nil {
		t.Fatal(err)
	}
	if after.Raft.CommitIndex != before.Raft.CommitIndex {
		t.Fatalf("the isolated node's commit index moved %d → %d: Raft traffic got through", before.Raft.CommitIndex, after.Raft.CommitIndex)
	}

	if err := f.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	healed = true
	waitFor(t, ctx, 20*time.Second, "old leader catches up", func() (bool, string) {
		r := c.ReadConfig(ctx, pc.HTTPAddr(old), "jepsen/during")
		if r.Type != history.OK || !r.Present {
			return false, r.Code + " " + r.Err
		}
		v, _ := r.Entry.IntValue()
		return v == 104, string(r.Entry.Value)
	})
}

// waitFor polls cond every 100ms until it holds or d passes.
func waitFor(t *testing.T, ctx context.Context, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v (last: %s)", what, d, last)
}
