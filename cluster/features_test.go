package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/internal/retry"
)

func configDelete(t *testing.T, key string) []byte {
	t.Helper()
	b, err := command.NewCodec().Encode(command.TypeConfigDelete, &command.ConfigDelete{
		Meta: command.Meta{Actor: "test", Time: time.Now().UnixNano()}, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The feature gate with an existing type as the new one (config_delete as
// feature "fixture"): while node c gossips an older build's command types
// (none: it predates gating), a gated write is refused on every node,
// leader or follower, with the feature and c named, before anything
// reaches Raft; other writes pass. Once c runs a build that knows the type
// (restarted with this build's types), the same write is accepted.
func TestFeatureGateRefusesUntilEveryServerKnowsTheType(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	gates := map[command.Type]string{command.TypeConfigDelete: "fixture"}
	old := command.TypeSet{}
	pp := agenttest.NewPorts(t)
	ps, join := pp.Cluster(3)
	names := []string{"a", "b", "c"}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	regs := make([]*prometheus.Registry, 3)
	start := func(i int, known *command.TypeSet) *testNode {
		regs[i] = prometheus.NewRegistry()
		return startNodeOpts(t, names[i], ps[i], 3, join, nodeOpts{dir: dirs[i], reg: regs[i], tune: func(c *cluster.Config) {
			c.Gates, c.Commands = gates, known
			if known != nil { // an older build gossips no snapshot format
				c.SnapshotFormat = 0
			}
		}})
	}
	nodes := []*testNode{start(0, nil), start(1, nil), start(2, &old)}
	retry.Run(t, func(r *retry.R) {
		for _, n := range nodes {
			if !n.node.Ready() || len(n.node.Raft().Servers) != 3 {
				r.Fatalf("%s not ready with three servers", n.name)
			}
		}
	}, retry.Timeout(30*time.Second), retry.What("three ready nodes"))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range nodes {
		if res, err := n.node.Apply(ctx, configSet(t, "k-"+n.name, `1`)); err != nil || res.Err != nil {
			t.Fatalf("ungated write on %s: %v %+v", n.name, err, res)
		}
	}
	// The leader's commit index: every write above was applied on its
	// node, so the leader has committed it (a follower's commit index may
	// still lag by the last entry until the next heartbeat).
	var leader *testNode
	for _, n := range nodes {
		if n.node.Raft().State == "leader" {
			leader = n
		}
	}
	if leader == nil {
		t.Fatal("no leader after three acknowledged writes")
	}
	indexBefore := leader.node.Raft().CommitIndex
	for _, n := range nodes {
		_, err := n.node.Apply(ctx, configDelete(t, "k-a"))
		var fe *command.FeatureError
		if !errors.As(err, &fe) || !errors.Is(err, command.ErrFeatureUnavailable) {
			t.Fatalf("gated write on %s: %v, want a FeatureError", n.name, err)
		}
		want := "c (version test, which predates feature gating)"
		if n.name == "c" {
			want = "c (this node)"
		}
		if fe.Feature != "fixture" || len(fe.Missing) != 1 || fe.Missing[0] != want {
			t.Fatalf("on %s: %+v, want only %q missing", n.name, fe, want)
		}
		if !strings.Contains(err.Error(), `feature "fixture" (command config_delete)`) {
			t.Fatalf("message: %v", err)
		}
	}
	if got := configValue(nodes[0].store, "k-a"); got != "1" {
		t.Fatalf("a refused delete changed the key: %q", got)
	}
	if after := leader.node.Raft().CommitIndex; after != indexBefore {
		t.Fatalf("refused writes reached Raft: commit index %d -> %d", indexBefore, after)
	}
	if v := metricValue(t, regs[0], "nexus_feature_refusals_total", "fixture"); v != 1 {
		t.Fatalf("refusals on a: %v", v)
	}
	if v := metricValue(t, regs[0], "nexus_feature_available", "fixture"); v != 0 {
		t.Fatalf("available on a: %v", v)
	}
	// Snapshots stay in format 1 while c (gossiping none) might need one.
	for _, n := range nodes {
		if f := n.node.SnapshotFormat(); f != 1 {
			t.Fatalf("snapshot format on %s with an older c: %d, want 1", n.name, f)
		}
	}

	// c is upgraded: stopped and started again with this build's types.
	nodes[2].stop()
	nodes[2] = start(2, nil)
	retry.Run(t, func(r *retry.R) {
		res, err := nodes[0].node.Apply(ctx, configDelete(t, "k-a"))
		if err != nil || res.Err != nil {
			r.Fatalf("gated write after the upgrade: %v %+v", err, res)
		}
	}, retry.Timeout(20*time.Second), retry.What("the gate to open"))
	retry.Run(t, func(r *retry.R) {
		for _, n := range nodes {
			if f := n.node.SnapshotFormat(); f != 2 {
				r.Fatalf("snapshot format on %s: %d, want 2", n.name, f)
			}
		}
	}, retry.Timeout(20*time.Second), retry.What("every node to write snapshot format 2"))
	if v := metricValue(t, regs[1], "nexus_feature_available", "fixture"); v != 1 {
		t.Fatalf("available on b after the upgrade: %v", v)
	}
	if got := configValue(nodes[1].store, "k-b"); got != "1" {
		t.Fatalf("k-b: %q", got)
	}
}
