package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/cluster/peerproto"
)

// Bounds of a restore: the whole operation (the leader writes the snapshot,
// restores its FSM, and waits until a quorum installed it), waiting for a
// pending configuration change to commit, and handing the restore to the
// leader loop.
const (
	restoreTimeout     = 2 * time.Minute
	restoreBusyWait    = 5 * time.Second
	restoreEnqueueWait = 5 * time.Second
)

// RestoreSnapshot replaces the replicated state with a snapshot (bytes in
// the FSM's snapshot format, already validated by the caller, lastIndex the
// index its header records) and returns a Raft index at which every node
// that applied it has the restored state.
//
// It uses raft's user restore: the leader installs the snapshot at an index
// above both its own last index and lastIndex, leaving a hole in its log, so
// followers (and nodes that join later) catch up by InstallSnapshot; raft
// then commits an entry after it, so a quorum holds the restored state when
// this returns. A follower relays the bytes to the leader's admin API and
// answers once it applied the restore itself (read-your-writes).
func (n *Node) RestoreSnapshot(ctx context.Context, data []byte, lastIndex uint64, relay Relay) (uint64, error) {
	if n.raft.State() == raft.Leader {
		return n.restoreLocal(ctx, data, lastIndex)
	}
	if relay.Forwarded {
		return 0, fmt.Errorf("%w: %s is not the leader (relayed request)", ErrNoLeader, n.cfg.Node)
	}
	idx, err := n.relayToLeader(ctx, "PUT", peerproto.PathSnapshot, data, relay, restoreTimeout)
	if err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	if err := n.cfg.FSM.WaitApplied(wctx, idx); err != nil {
		return 0, fmt.Errorf("%w: restore committed at index %d by the leader", ErrNotApplied, idx)
	}
	return idx, nil
}

func (n *Node) restoreLocal(ctx context.Context, data []byte, lastIndex uint64) (uint64, error) {
	start := time.Now()
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: lastIndex, Size: int64(len(data))}
	busyUntil := start.Add(restoreBusyWait)
	for {
		err := n.userRestore(ctx, meta, data)
		if err == nil {
			break
		}
		// A configuration change (an autopilot promotion, say) has not
		// committed yet: nothing was restored, wait for it.
		if strings.Contains(err.Error(), "cannot restore snapshot now") && time.Now().Before(busyUntil) {
			select {
			case <-ctx.Done():
				return 0, fmt.Errorf("%w: %v", ErrNoLeader, err)
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
			errors.Is(err, raft.ErrLeadershipTransferInProgress), strings.Contains(err.Error(), "cannot restore snapshot now"):
			return 0, fmt.Errorf("%w: snapshot not restored: %v", ErrNoLeader, err)
		}
		return 0, fmt.Errorf("%w: restoring the snapshot: %v", ErrOutcomeUnknown, err)
	}
	// raft commits a LogNoop after the restore, which the FSM never sees;
	// a no-op command moves every FSM's applied index past the restore.
	idx := n.raft.LastIndex()
	if res, err := n.applyLocal(ctx, n.cfg.Hooks.Noop()); err != nil {
		n.logger.Warn("barrier after restore failed", "err", err)
	} else {
		idx = res.Index
	}
	n.logger.Info("restored snapshot through raft", "bytes", len(data), "snapshot_index", lastIndex,
		"index", idx, "took", time.Since(start).Round(time.Millisecond))
	return idx, nil
}

// userRestore runs raft.Restore bounded by ctx and restoreTimeout: raft
// waits on its own futures without a bound once the restore is enqueued.
func (n *Node) userRestore(ctx context.Context, meta *raft.SnapshotMeta, data []byte) error {
	done := make(chan error, 1)
	go func() { done <- n.raft.Restore(meta, bytes.NewReader(data), restoreEnqueueWait) }()
	t := time.NewTimer(restoreTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("restore still running: %w", ctx.Err())
	case <-t.C:
		return fmt.Errorf("restore still running after %s: %w", restoreTimeout, context.DeadlineExceeded)
	}
}
