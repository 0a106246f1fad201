package fsm

import (
	"sync"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/fsm/command"
)

// resultsKept is how many of the latest applied entries keep their result.
const resultsKept = 4096

// results keeps the results of the latest applied command entries, by
// Raft index. A node that proposed an entry as leader and lost leadership
// before it committed learns later, as a follower, whether the next leader
// committed it; if it did, the node answers the write with the result its
// own replica computed (cluster/lost.go) instead of "outcome unknown".
type results struct {
	mu   sync.Mutex
	ring [resultsKept]struct {
		idx uint64
		r   *command.Result
	}
}

// putBatch records the results of a batch (out[i] is the result of logs[i];
// entries without one are skipped).
func (rs *results) putBatch(logs []*raft.Log, out []any) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for i, l := range logs {
		r, ok := out[i].(*command.Result)
		if !ok || r == nil {
			continue
		}
		s := &rs.ring[l.Index%resultsKept]
		s.idx, s.r = l.Index, r
	}
}

func (rs *results) get(idx uint64) (*command.Result, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	s := &rs.ring[idx%resultsKept]
	if s.idx != idx || s.r == nil {
		return nil, false
	}
	return s.r, true
}

// Result returns the result this replica computed for the command entry
// at Raft index idx, while it is among the latest applied ones.
func (f *FSM) Result(idx uint64) (*command.Result, bool) { return f.results.get(idx) }
