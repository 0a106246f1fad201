package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/cluster/peerproto"
)

// ErrNotReadyForReads means the leader has not yet applied an entry of its
// own term, so its commit index may lag what the old leader acknowledged.
var ErrNotReadyForReads = errors.New("leader has not applied its term barrier yet")

// ReadIndex returns an index such that every write acknowledged before the
// call is at or below it (the leader's commit index, confirmed by a quorum).
// Only the leader answers.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if n.raft.State() != raft.Leader {
		return 0, ErrNoLeader
	}
	n.mu.Lock()
	started := n.termStarted
	n.mu.Unlock()
	if started == 0 || started != n.term() {
		return 0, ErrNotReadyForReads
	}
	idx := n.raft.CommitIndex()
	if err := waitFuture(ctx, n.raft.VerifyLeader(), n.cfg.ApplyTimeout); err != nil {
		return 0, fmt.Errorf("%w: leadership not confirmed: %v", ErrNoLeader, err)
	}
	return idx, nil
}

// ForwardedReadIndex answers a follower's read-index request, authenticated
// like forwarded writes (the MAC covers the request's nonce).
func (n *Node) ForwardedReadIndex(ctx context.Context, mac string, nonce []byte) (uint64, error) {
	if _, secret := n.cfg.Hooks.Identity(); !peerproto.Verify(secret, mac, nonce) {
		return 0, ErrBadMAC
	}
	return n.ReadIndex(ctx)
}

// ConsistentRead returns once this node has applied everything committed
// before the call: a linearizable read can then use the local replica.
func (n *Node) ConsistentRead(ctx context.Context) (err error) {
	start := time.Now()
	defer func() {
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		n.m.consistentReads.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	}()
	idx, err := n.reads.get(ctx)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return fmt.Errorf("%w: waiting for a read index: %v", ErrNoLeader, err)
		}
		return err
	}
	if err := n.cfg.FSM.WaitApplied(ctx, idx); err != nil {
		return fmt.Errorf("%w: waiting to apply index %d: %v", ErrNoLeader, idx, err)
	}
	return nil
}

// readIndexRound is one round of readRounds: from the leader's own state
// on the leader, else asked of the leader.
func (n *Node) readIndexRound(ctx context.Context) (uint64, error) {
	if n.raft.State() == raft.Leader {
		return n.ReadIndex(ctx)
	}
	return n.remoteReadIndex(ctx)
}

func (n *Node) remoteReadIndex(ctx context.Context) (uint64, error) {
	addr, id := n.raft.LeaderWithID()
	if addr == "" {
		return 0, ErrNoLeader
	}
	m, ok := n.leaderMember(string(id), string(addr))
	if !ok || m.Meta.HTTPAddr == "" {
		return 0, ErrNoLeader
	}
	secret, err := n.awaitSecret(ctx)
	if err != nil {
		return 0, err
	}
	nonce := []byte(n.cfg.Node + ":" + strconv.FormatInt(time.Now().UnixNano(), 10))
	return n.peers.ReadIndex(ctx, m.Meta.HTTPAddr, secret, nonce, n.cfg.ApplyTimeout)
}

// awaitSecret returns the forwarding secret, waiting (bounded by ctx) while
// this node has not applied the cluster identity yet: it follows a leader
// it cannot sign requests to until then.
func (n *Node) awaitSecret(ctx context.Context) (string, error) {
	for {
		if _, secret := n.cfg.Hooks.Identity(); secret != "" {
			return secret, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: the cluster identity is not applied here yet", ErrNoLeader)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
