package agent

import (
	"bytes"
	"context"
	"io"

	"github.com/nexus/nexus/api"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Snapshot writes this node's replica in the FSM's snapshot format (the
// bytes a Raft snapshot holds) and returns the applied index it covers.
func (a *clusterAdapter) Snapshot(w io.Writer) (uint64, error) {
	idx := a.machine.AppliedIndex()
	return idx, a.machine.WriteSnapshot(w)
}

// RestoreSnapshot validates the snapshot, gives it this cluster's identity,
// and restores it through Raft (on a follower: through the leader).
func (a *clusterAdapter) RestoreSnapshot(ctx context.Context, data []byte, relay api.Relay) (uint64, error) {
	prepared, lastIndex, err := prepareRestore(a.codec, a.machine.Store(), data, a.node.SnapshotFormat)
	if err != nil {
		return 0, &cluster.OpError{Code: command.CodeInvalidSnapshot, Msg: "invalid snapshot: " + err.Error()}
	}
	return a.node.RestoreSnapshot(ctx, prepared, lastIndex, cluster.Relay{Forwarded: relay.Forwarded, Headers: relay.Headers})
}

// prepareRestore loads data into a scratch FSM, with the code the real
// restore runs, so that bad bytes are refused here: raft panics when the
// FSM fails to restore a user snapshot. It then re-encodes the state with
// this cluster's identity (id and forwarding secret) in place of the
// snapshot's (or returns data as is when the identity is already this
// cluster's): a snapshot of cluster A restored into cluster B must not turn
// B's nodes into members of A (their data dirs and gossip carry B's id).
// Everything else is kept as is, indexes included. It returns the bytes
// and the index the snapshot's header records. A rewrite is in the format
// format picks (what every Raft server reads).
func prepareRestore(codec *command.Codec, store *registry.Store, data []byte, format func() int) ([]byte, uint64, error) {
	scratch := fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: codec, SnapshotFormat: format})
	if err := scratch.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		return nil, 0, err
	}
	tx := store.ReadTxn()
	mine := tx.ClusterMeta()
	tx.Abort()
	stx := scratch.Store().ReadTxn()
	theirs := stx.ClusterMeta()
	if mine == nil || (theirs != nil && *theirs == *mine) {
		// Same identity (a restore into the same cluster, or bytes a
		// follower prepared and relayed): nothing to rewrite.
		stx.Abort()
		return data, scratch.AppliedIndex(), nil
	}
	dump := stx.Dump()
	stx.Abort()
	id := *mine
	dump.Cluster = &id
	if err := scratch.Store().Restore(func(tx *registry.Tx) error { return tx.Load(dump) }); err != nil {
		return nil, 0, err
	}
	var buf bytes.Buffer
	if err := scratch.WriteSnapshot(&buf); err != nil {
		return nil, 0, err
	}
	return buf.Bytes(), scratch.AppliedIndex(), nil
}
