package cluster

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/fsm/command"
)

// Outcomes of a write whose leader lost leadership before it committed
// (nexus_write_leadership_lost_total).
const (
	lostApplied    = "applied"     // the next leader committed it: answered with its result
	lostNotApplied = "not_applied" // another entry took its place: sent again to the next leader
	lostUnknown    = "unknown"     // neither could be established in time: 504 outcome_unknown
)

// resolveLost finds out what became of the entry cmd that this node, as
// leader, appended at index idx before it lost leadership (Raft answers
// ErrLeadershipLost: the entry may or may not commit under the next leader).
//
// The entry is the one at idx in this node's log with the same bytes
// (commands carry their request id and time, so no two proposals are
// equal) and, when it could be read back at once, the same term. If the
// log already holds another entry there, the next leader replaced it: it
// never committed and never will, and the write answers ErrNoLeader, which
// Apply sends again to the next leader. Otherwise this node waits, as a
// follower, until it has applied idx (the entry there is then final): if it
// is this entry, the write answers with the result this replica computed;
// if another, it did not commit. Past the deadline, or when the entry or
// its result can no longer be read (compacted, or long since applied), the
// outcome stays unknown.
func (n *Node) resolveLost(ctx context.Context, idx uint64, cmd []byte, deadline time.Time) (*command.Result, error) {
	return n.settleLost(ctx, n.readLost(idx, cmd), deadline)
}

// lostWrite is what the log said of a lost write right after the loss.
type lostWrite struct {
	idx      uint64
	cmd      []byte
	term     uint64 // of the entry at idx when it was this write's; 0 when it could not be read
	replaced bool   // the entry at idx was already another
}

func (n *Node) readLost(idx uint64, cmd []byte) lostWrite {
	w := lostWrite{idx: idx, cmd: cmd}
	var l raft.Log
	if idx == 0 || n.logs.GetLog(idx, &l) != nil {
		return w
	}
	if !bytes.Equal(l.Data, cmd) {
		w.replaced = true
	} else {
		w.term = l.Term
	}
	return w
}

// settleLost waits for the outcome of w (see resolveLost).
func (n *Node) settleLost(ctx context.Context, w lostWrite, deadline time.Time) (*command.Result, error) {
	res, outcome, err := n.findLost(ctx, w, deadline)
	n.m.leadershipLost.WithLabelValues(outcome).Inc()
	n.logger.Info("write in flight when leadership was lost", "index", w.idx, "outcome", outcome)
	return res, err
}

func (n *Node) findLost(ctx context.Context, w lostWrite, deadline time.Time) (*command.Result, string, error) {
	idx := w.idx
	unknown := func(why string) (*command.Result, string, error) {
		return nil, lostUnknown, fmt.Errorf("%w: leadership lost while committing entry %d: %s", ErrOutcomeUnknown, idx, why)
	}
	replaced := func() (*command.Result, string, error) {
		return nil, lostNotApplied, fmt.Errorf("%w: entry %d was replaced by the next leader", ErrNoLeader, idx)
	}
	switch {
	case idx == 0:
		return unknown("it was never appended")
	case w.replaced:
		return replaced()
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := n.cfg.FSM.WaitApplied(wctx, idx); err != nil {
		return unknown("no leader committed past it in time")
	}
	var final raft.Log
	if err := n.logs.GetLog(idx, &final); err != nil {
		return unknown("reading it back after it committed: " + err.Error())
	}
	if !bytes.Equal(final.Data, w.cmd) || (w.term != 0 && final.Term != w.term) {
		return replaced()
	}
	res, ok := n.cfg.FSM.Result(idx)
	if !ok {
		return unknown("it committed, and its result is no longer kept")
	}
	return res, lostApplied, nil
}
