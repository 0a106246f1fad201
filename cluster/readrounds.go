package cluster

import (
	"context"
	"sync"
	"time"
)

// readRounds coalesces read-index requests into rounds, as etcd does for
// linearizable reads: callers that arrive while a round is in flight share
// the next one, so n concurrent readers on a follower cost one request to
// the leader (and one quorum check there) per round trip instead of n — the
// same for a flood of unknown ACL tokens, each looked up again after a read
// index. A caller only ever takes the index of a round that started after
// it arrived, so every write acknowledged before its call is at or below
// that index: coalescing keeps reads linearizable.
//
// A round that hangs (leader gone, partition) must not hold back the ones
// after it once the fault heals: the next round starts when the running one
// ends or staleAfter after the running one started, whichever is first.
// readRoundStaleAfter: a read-index round takes about one round trip to
// the leader and a heartbeat; one still running after this is in trouble.
const readRoundStaleAfter = 250 * time.Millisecond

type readRounds struct {
	fetch      func(context.Context) (uint64, error)
	timeout    time.Duration // bound on one round
	staleAfter time.Duration
	onRound    func() // counts rounds (metrics); may be nil

	mu        sync.Mutex
	next      *readRound // collects callers; nil: none waiting
	running   int
	lastStart time.Time
}

type readRound struct {
	done  chan struct{}
	idx   uint64
	err   error
	stale *time.Timer // starts the round if the running one hangs
}

// get returns the index of a round that started after the call, or the
// error of that round, or ctx's error.
func (r *readRounds) get(ctx context.Context) (uint64, error) {
	r.mu.Lock()
	rd := r.next
	if rd == nil {
		rd = &readRound{done: make(chan struct{})}
		r.next = rd
		if r.running > 0 {
			if wait := r.staleAfter - time.Since(r.lastStart); wait > 0 {
				rd.stale = time.AfterFunc(wait, func() { r.start(rd) })
			} else {
				r.startLocked(rd)
			}
		}
	}
	if r.running == 0 {
		r.startLocked(rd)
	}
	r.mu.Unlock()
	select {
	case <-rd.done:
		return rd.idx, rd.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (r *readRounds) start(rd *readRound) {
	r.mu.Lock()
	r.startLocked(rd)
	r.mu.Unlock()
}

// startLocked starts rd unless it has started already; r.mu is held.
func (r *readRounds) startLocked(rd *readRound) {
	if r.next != rd {
		return
	}
	r.next = nil
	if rd.stale != nil {
		rd.stale.Stop()
	}
	r.running++
	r.lastStart = time.Now()
	if r.onRound != nil {
		r.onRound()
	}
	go r.run(rd)
}

func (r *readRounds) run(rd *readRound) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	rd.idx, rd.err = r.fetch(ctx)
	cancel()
	close(rd.done)
	r.mu.Lock()
	r.running--
	if r.next != nil {
		r.startLocked(r.next)
	}
	r.mu.Unlock()
}
