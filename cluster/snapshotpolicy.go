package cluster

import "time"

// A snapshot of this FSM encodes the whole state: its cost grows with the
// catalog (1,000,000 config keys: 350 MiB per snapshot, ~13 s of CPU in
// snapshot format 1, 3-5 s of wall time in format 2 under load on the
// reference machine), while Raft's SnapshotThreshold counts log entries.
// With a fixed threshold of 8,192 entries a node under 2,000 writes/s
// snapshotted every 30 s, spent ~40% of a core encoding, and the CPU it
// took from the Raft loop cost leader elections and 504s
// (docs/benchmarks.md, "Full-size run"). Like Redis's
// auto-aof-rewrite-percentage, the threshold follows the state: a node
// snapshots once the entries since its last snapshot number an eighth of
// the objects it holds (never fewer than the configured threshold), so the
// snapshot cost per write stays constant at any size. The log between
// snapshots grows with the state in proportion, and a restart replays it
// after loading the snapshot: an eighth (a quarter until format 2 made a
// snapshot 3x cheaper) keeps that replay at ~2 s for a million keys.
const (
	// snapshotObjectsPerEntry: one log entry between snapshots per this
	// many objects of state.
	snapshotObjectsPerEntry = 8
	// snapshotPolicyEvery is how often the state size is looked at.
	snapshotPolicyEvery = 5 * time.Second
)

// snapshotThreshold is the snapshot threshold for a state of objects
// objects, at least base.
func snapshotThreshold(base, objects uint64) uint64 {
	return max(base, objects/snapshotObjectsPerEntry)
}

// thresholdChanged reports whether the threshold in force should move to
// want: by more than an eighth, so that a state growing by a few objects
// does not reload Raft's configuration every few seconds; always back to
// the floor.
func thresholdChanged(cur, want, base uint64) bool {
	if want == cur {
		return false
	}
	if want == base {
		return true
	}
	diff := max(want, cur) - min(want, cur)
	return diff > cur/8
}

// snapshotPolicyLoop keeps Raft's snapshot threshold at snapshotThreshold
// of the state's size (Hooks.StateObjects). Without that hook the
// configured threshold stays.
func (n *Node) snapshotPolicyLoop() {
	defer n.wg.Done()
	if n.cfg.Hooks.StateObjects == nil {
		return
	}
	tick := time.NewTicker(snapshotPolicyEvery)
	defer tick.Stop()
	for {
		n.applySnapshotPolicy()
		select {
		case <-n.stopCh:
			return
		case <-tick.C:
		}
	}
}

// applySnapshotPolicy sets the threshold once for the current state size.
func (n *Node) applySnapshotPolicy() {
	base := n.snapBase
	rc := n.raft.ReloadableConfig()
	objects := n.cfg.Hooks.StateObjects()
	want := snapshotThreshold(base, objects)
	n.m.snapshotThreshold.Set(float64(rc.SnapshotThreshold))
	if !thresholdChanged(rc.SnapshotThreshold, want, base) {
		return
	}
	prev := rc.SnapshotThreshold
	rc.SnapshotThreshold = want
	if err := n.raft.ReloadConfig(rc); err != nil {
		n.logger.Warn("could not change the snapshot threshold", "threshold", want, "error", err)
		return
	}
	n.m.snapshotThreshold.Set(float64(want))
	n.logger.Info("snapshot threshold follows the state size", "objects", objects, "threshold", want, "was", prev)
}
