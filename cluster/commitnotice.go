package cluster

import (
	"time"

	"github.com/hashicorp/raft"
)

// A follower that forwarded a write answers its client only once it has
// applied the write itself (read-your-writes), and hashicorp/raft tells a
// follower about a commit only with its next AppendEntries. When later
// entries are already in the leader's log (concurrent writers) that message
// is on its way and carries the commit. For a lone write it is the
// CommitTimeout tick (5-10 ms by default), which a single client writing
// through a follower would pay on every write.
//
// tellCommit sends that message at once, to the follower that forwarded the
// write: an AppendEntries of the leader's current term with no entries,
// whose previous entry is the write itself and whose commit index is the
// write's. It is the message the leader's replication would send at the
// next tick, minus the entries after the write that do not exist yet, so a
// follower treats it exactly as Raft says: it checks that its log holds the
// write with the same term (the log matching property then covers every
// entry before it) and only then commits up to the write, which the leader
// already committed. A follower that is a term ahead refuses it, as it
// would refuse the leader's own. It costs one round trip and no log entry
// (the no-op "nudge" it replaces cost an entry, an fsync on the leader and
// one on the follower).
//
// When it cannot be sent or the follower refuses it (it has not stored the
// write yet, or a new term began), or the follower did not name itself (an
// older build), the leader appends a no-op entry instead (nudgeCommit).
func (n *Node) tellCommit(from string, index uint64) {
	if n.raft.LastIndex() != index {
		return // later entries carry the commit
	}
	target, ok := n.commitNoticeTarget(from)
	if !ok {
		n.nudgeCommit(index)
		return
	}
	term := n.raft.CurrentTerm()
	var entry raft.Log
	if err := n.logs.GetLog(index, &entry); err != nil || entry.Term > term || n.raft.State() != raft.Leader {
		n.nudgeCommit(index)
		return
	}
	local := n.trans.LocalAddr()
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{
			ProtocolVersion: raft.ProtocolVersionMax,
			ID:              []byte(n.cfg.Node),
			Addr:            n.trans.EncodePeer(raft.ServerID(n.cfg.Node), local),
		},
		Term:              term,
		PrevLogEntry:      index,
		PrevLogTerm:       entry.Term,
		LeaderCommitIndex: index,
	}
	go func() {
		start := time.Now()
		var resp raft.AppendEntriesResponse
		err := n.trans.AppendEntries(raft.ServerID(from), target, req, &resp)
		switch {
		case err != nil:
			n.m.commitNotices.WithLabelValues("failed").Inc()
			n.logger.Debug("commit notice not delivered", "to", from, "index", index, "error", err)
		case !resp.Success:
			n.m.commitNotices.WithLabelValues("refused").Inc()
			n.logger.Debug("commit notice refused", "to", from, "index", index, "term", resp.Term)
		default:
			n.m.commitNotices.WithLabelValues("delivered").Inc()
			n.m.commitNoticeSeconds.Observe(time.Since(start).Seconds())
			return
		}
		n.nudgeCommit(index)
	}()
}

// commitNoticeTarget is the Raft address of the voter or non-voter from,
// as gossip knows it.
func (n *Node) commitNoticeTarget(from string) (raft.ServerAddress, bool) {
	if from == "" || from == n.cfg.Node {
		return "", false
	}
	m, ok := n.gossip.member(from)
	if !ok || m.Meta.RaftAddr == "" || m.Status != StatusAlive {
		return "", false
	}
	return raft.ServerAddress(m.Meta.RaftAddr), true
}

// nudgeCommit makes the commit of a forwarded write known to the followers
// when a commit notice cannot be sent (tellCommit): a no-op entry appended
// now is a later entry, whose AppendEntries carries the commit. A no-op
// command rather than raft.Barrier: a barrier never reaches the FSM, so a
// follower's applied index would stop short of the commit index that
// read-index rounds hand out. The no-op is not waited for (only counted
// once applied); if it cannot be enqueued within a millisecond (a busy
// leader has later entries coming anyway) it is skipped.
func (n *Node) nudgeCommit(index uint64) {
	if n.raft.LastIndex() != index {
		return
	}
	f := n.raft.Apply(n.cfg.Hooks.Noop(), time.Millisecond)
	go func() {
		if f.Error() == nil {
			n.m.commitNudges.Inc()
		}
	}()
}
