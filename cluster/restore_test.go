package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/internal/retry"
)

// A snapshot restored through Raft (on the leader, and relayed by a
// follower) gives every node the snapshot's state, again and again, while
// the cluster keeps taking writes.
func TestRestoreSnapshotThroughRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	c := startAPCluster(t, 3, testPolicy(time.Second, time.Hour, 0))
	li := c.mustLeader()
	for k := 0; k < 5; k++ {
		c.write(li, fmt.Sprintf("kept/%d", k))
	}
	var snap bytes.Buffer
	if err := c.nodes[li].machine.WriteSnapshot(&snap); err != nil {
		t.Fatal(err)
	}
	want := dumpState(t, c.nodes[li])
	for round := 0; round < 6; round++ {
		li = c.mustLeader()
		c.write(li, fmt.Sprintf("lost/%d", round))
		via := li
		if round%2 == 1 {
			via = c.follower()
		}
		start := time.Now()
		var idx uint64
		var err error
		// A leader change under load answers "no leader" or "outcome
		// unknown"; restoring the same snapshot again is idempotent.
		for attempt := 1; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			idx, err = c.nodes[via].node.RestoreSnapshot(ctx, snap.Bytes(), snapshotIndex(snap.Bytes()), cluster.Relay{})
			cancel()
			if err == nil || attempt == 3 || !(errors.Is(err, cluster.ErrNoLeader) || errors.Is(err, cluster.ErrOutcomeUnknown)) {
				break
			}
			t.Logf("round %d: restore via %s: %v; again", round, c.nodes[via].name, err)
			c.mustLeader()
		}
		if err != nil {
			t.Fatalf("round %d: restore via %s: %v", round, c.nodes[via].name, err)
		}
		t.Logf("round %d: restore via %s at index %d in %v", round, c.nodes[via].name, idx, time.Since(start).Round(time.Millisecond))
		if got := configValue(c.nodes[via].store, fmt.Sprintf("lost/%d", round)); got != "" {
			t.Fatalf("round %d: %s answered before applying the restore", round, c.nodes[via].name)
		}
		retry.Run(t, retry.Cond("every node restored", func() bool {
			for _, n := range c.nodes {
				if n.machine.AppliedIndex() < idx || !bytes.Equal(dumpState(t, n), want) {
					return false
				}
			}
			return true
		}), retry.Timeout(10*time.Second))
	}
	c.write(c.follower(), "after")
}

// dumpState is node n's state without the indexes of its snapshot header.
func dumpState(t *testing.T, n *testNode) []byte {
	t.Helper()
	var b bytes.Buffer
	tx := n.store.ReadTxn()
	defer tx.Abort()
	d := tx.Dump()
	if err := codecOf().EncodeValue(&b, d); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
