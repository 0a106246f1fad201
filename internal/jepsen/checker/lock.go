package checker

import (
	"fmt"
	"strings"
	"time"

	"github.com/nexus/nexus/internal/jepsen/history"
)

// LockResult is the verdict on a lock history: a counter incremented only
// under a lock, through transactions fenced by check-session.
type LockResult struct {
	Valid        bool           `json:"valid"`
	Sessions     int            `json:"sessions"`              // sessions created (acknowledged)
	Acquired     int            `json:"acquired"`              // acquires acknowledged with acquired: true
	Handovers    int            `json:"handovers"`             // distinct lock indexes seen (acquires, increments, releases)
	Attempted    int            `json:"attempted"`             // increments invoked
	Acked        int            `json:"acked"`                 // increments acknowledged
	Failed       int            `json:"failed"`                // increments definitely not applied
	Indefinite   int            `json:"indeterminate"`         // increments whose outcome is unknown (info)
	FencedOut    int            `json:"fenced_out"`            // increments refused by check-session (the lock had moved on)
	Final        int64          `json:"final"`                 // the counter after healing
	FinalRead    bool           `json:"final_read"`            // the final read was answered
	LostSessions int            `json:"lost_sessions"`         // sessions the clients saw end
	EndReasons   map[string]int `json:"end_reasons,omitempty"` // why they ended, from the audit trail
	Counts       map[string]int `json:"anomaly_counts,omitempty"`
	Anomalies    []Anomaly      `json:"anomalies,omitempty"` // up to maxExamples per kind
}

// sessionLife is what the history says about one session.
type sessionLife struct {
	ttl       time.Duration
	lastAlive *history.Op // the last acknowledged create or renew (by invoke time)
	lostAt    *history.Op // the first op answered 404: the session was gone
	reason    *history.Op // the session-lost op (its Code is the reason)
}

// heldAt is one piece of evidence that a session held the lock with some
// lock index at some Raft index.
type heldAt struct {
	raft uint64
	op   *history.Op
}

// CheckLock checks the lock workload's ops (others are ignored) in time
// linear in the history:
//
//   - counter: the final value F (read after healing) lies in [acked,
//     acked+indeterminate] (lost, unexpected); no two acknowledged
//     increments wrote the same value (doubled); none wrote a value above F
//     (regressed: the counter fell below an acknowledged value) or above
//     the number of increments attempted (out-of-range);
//   - fencing: every acknowledged increment saw, in its own transaction,
//     the lock held by the session it acted for (unfenced); one lock index
//     belongs to one session (lock-index-shared); taken in counter order,
//     which is Raft order (counter-order otherwise), lock indexes never go
//     back (lock-index-backwards); nothing held the lock under an index
//     after a higher index had been acquired or seen (stale-holder), or
//     after that index was released (held-after-release);
//   - sessions: a session that ended by its TTL was not seen gone before
//     TTL had passed since its last acknowledged renew was sent
//     (early-expiry).
func CheckLock(ops []history.Op) *LockResult {
	ops = history.Filter(ops, "lock")
	res := &LockResult{Counts: map[string]int{}, EndReasons: map[string]int{}}
	var (
		final    *history.Op
		incrs    []*history.Op // acknowledged increments
		acquires int           // acquire ops: a bound on the lock indexes
		holders  = map[uint64]*history.Op{}
		releases = map[uint64]*history.Op{} // lock index → its first acknowledged release
		held     = map[uint64][]heldAt{}    // lock index → acknowledged acquires and increments under it
		lives    = map[string]*sessionLife{}
	)
	life := func(id string) *sessionLife {
		l := lives[id]
		if l == nil {
			l = &sessionLife{}
			lives[id] = l
		}
		return l
	}
	alive := func(op *history.Op) {
		l := life(op.Session)
		if l.lastAlive == nil || op.Invoke > l.lastAlive.Invoke {
			l.lastAlive = op
		}
	}
	gone := func(op *history.Op) {
		if op.Type == history.Fail && op.Code == "not_found" && op.Session != "" {
			l := life(op.Session)
			if l.lostAt == nil || op.Complete < l.lostAt.Complete {
				l.lostAt = op
			}
		}
	}
	// holder records that session held lock index li (op says so).
	holder := func(li uint64, session string, op *history.Op) {
		if li == 0 {
			return
		}
		prev := holders[li]
		if prev == nil {
			holders[li] = op
			return
		}
		if s := holderOf(prev); s != session {
			res.add(Anomaly{Kind: "lock-index-shared", Key: op.Key, Ops: []int{prev.Index, op.Index},
				Detail: fmt.Sprintf("lock index %d held by session %s (%s at %s) and by session %s (%s at %s)",
					li, s, prev.F, ms(prev.Complete), session, op.F, ms(op.Complete))})
		}
	}
	for i := range ops {
		op := &ops[i]
		switch op.F {
		case history.FRead:
			if op.Final && op.Type == history.OK {
				final = op
			}
		case history.FSessionCreate:
			if op.Type == history.OK && op.Session != "" {
				res.Sessions++
				life(op.Session).ttl = time.Duration(op.Value) * time.Millisecond
				alive(op)
			}
		case history.FRenew:
			if op.Type == history.OK {
				alive(op)
			}
			gone(op)
		case history.FSessionLost:
			if op.Type == history.OK && op.Code != "" {
				life(op.Session).reason = op
				res.LostSessions++
				res.EndReasons[op.Code]++
			}
		case history.FAcquire:
			acquires++
			gone(op)
			if op.Type == history.OK && op.Acquired {
				res.Acquired++
				holder(op.LockIndex, op.Session, op)
				held[op.LockIndex] = append(held[op.LockIndex], heldAt{op.ModIndex, op})
			}
		case history.FRelease:
			if op.Type == history.OK && op.Acquired && op.LockIndex != 0 {
				holder(op.LockIndex, op.Session, op)
				if r := releases[op.LockIndex]; r == nil || op.ModIndex < r.ModIndex {
					releases[op.LockIndex] = op
				}
			}
		case history.FIncr:
			res.Attempted++
			switch op.Type {
			case history.OK:
				res.Acked++
				incrs = append(incrs, op)
				if op.Holder != op.Session {
					res.add(Anomaly{Kind: "unfenced", Key: op.Key, Element: op.Value, Ops: []int{op.Index},
						Detail: fmt.Sprintf("increment to %d by session %s applied at Raft index %d while the lock was held by %s (lock index %d)",
							op.Value, op.Session, op.ModIndex, orFree(op.Holder), op.LockIndex)})
				}
				if op.Holder != "" {
					holder(op.LockIndex, op.Holder, op)
					held[op.LockIndex] = append(held[op.LockIndex], heldAt{op.ModIndex, op})
				}
			case history.Fail:
				res.Failed++
				if op.Code == "txn_conflict" && strings.Contains(op.Error, "(check-session ") {
					res.FencedOut++
				}
			default:
				res.Indefinite++
			}
		}
	}
	res.Handovers = len(holders)
	res.checkCounter(final, incrs)
	res.checkOrder(incrs, held, releases, acquires)
	res.checkSessions(lives)
	res.Valid = len(res.Counts) == 0
	return res
}

// holderOf is the session an op says held the lock.
func holderOf(op *history.Op) string {
	if op.F == history.FIncr {
		return op.Holder
	}
	return op.Session
}

func orFree(s string) string {
	if s == "" {
		return "nobody"
	}
	return "session " + s
}

// checkCounter compares the acknowledged increments with the final value.
func (res *LockResult) checkCounter(final *history.Op, incrs []*history.Op) {
	seen := make(map[int64]*history.Op, len(incrs))
	for _, op := range incrs {
		if prev := seen[op.Value]; prev != nil {
			res.add(Anomaly{Kind: "doubled", Key: op.Key, Element: op.Value, Ops: []int{prev.Index, op.Index},
				Detail: fmt.Sprintf("two acknowledged increments wrote %d (Raft indexes %d and %d)", op.Value, prev.ModIndex, op.ModIndex)})
			continue
		}
		seen[op.Value] = op
		if op.Value < 1 || op.Value > int64(res.Attempted) {
			res.add(Anomaly{Kind: "out-of-range", Key: op.Key, Element: op.Value, Ops: []int{op.Index},
				Detail: fmt.Sprintf("an acknowledged increment wrote %d, but only %d increments were attempted", op.Value, res.Attempted)})
		}
	}
	if final == nil {
		res.add(Anomaly{Kind: "no-final-read", Detail: "the counter was not read after healing"})
		return
	}
	res.FinalRead = true
	if final.Present {
		res.Final = final.Read
	}
	for _, op := range incrs {
		if op.Value > res.Final {
			res.add(Anomaly{Kind: "regressed", Key: op.Key, Element: op.Value, Ops: []int{op.Index, final.Index},
				Detail: fmt.Sprintf("an acknowledged increment wrote %d at Raft index %d; the final counter is %d", op.Value, op.ModIndex, res.Final)})
		}
	}
	switch {
	case res.Final < int64(res.Acked):
		res.add(Anomaly{Kind: "lost", Key: final.Key, Ops: []int{final.Index},
			Detail: fmt.Sprintf("final counter %d < %d acknowledged increments: %d lost", res.Final, res.Acked, int64(res.Acked)-res.Final)})
	case res.Final > int64(res.Acked+res.Indefinite):
		res.add(Anomaly{Kind: "unexpected", Key: final.Key, Ops: []int{final.Index},
			Detail: fmt.Sprintf("final counter %d > %d acknowledged + %d indeterminate increments", res.Final, res.Acked, res.Indefinite)})
	}
}

// checkOrder checks the lock indexes against the Raft order. Increments
// are bucketed by counter value (each value at most once, at most the
// number attempted), which in a correct run is their Raft order; lock
// indexes are bounded by the number of acquires attempted (each change of
// hands is one acquire).
func (res *LockResult) checkOrder(incrs []*history.Op, held map[uint64][]heldAt,
	releases map[uint64]*history.Op, acquires int) {
	byValue := make([]*history.Op, res.Attempted+1)
	for _, op := range incrs {
		if op.Value >= 1 && op.Value <= int64(res.Attempted) && byValue[op.Value] == nil {
			byValue[op.Value] = op
		}
	}
	var prev *history.Op
	for _, op := range byValue {
		if op == nil {
			continue
		}
		if prev != nil && op.ModIndex <= prev.ModIndex {
			res.add(Anomaly{Kind: "counter-order", Key: op.Key, Element: op.Value, Ops: []int{prev.Index, op.Index},
				Detail: fmt.Sprintf("counter %d written at Raft index %d, counter %d at Raft index %d", prev.Value, prev.ModIndex, op.Value, op.ModIndex)})
		}
		if prev != nil && op.LockIndex < prev.LockIndex {
			res.add(Anomaly{Kind: "lock-index-backwards", Key: op.Key, Element: op.Value, Ops: []int{prev.Index, op.Index},
				Detail: fmt.Sprintf("counter %d written under lock index %d (session %s), then counter %d under lock index %d (session %s)",
					prev.Value, prev.LockIndex, prev.Holder, op.Value, op.LockIndex, op.Holder)})
		}
		prev = op
	}

	// first[li]: the lowest Raft index at which lock index li is known to
	// be held; later[li]: the lowest over every index above li.
	maxLI := uint64(0)
	for li := range held {
		maxLI = max(maxLI, li)
	}
	if maxLI > uint64(acquires) {
		res.add(Anomaly{Kind: "out-of-range", Detail: fmt.Sprintf("lock index %d, but only %d acquires were attempted", maxLI, acquires)})
		return
	}
	const none = ^uint64(0)
	later := make([]uint64, maxLI+2)
	later[maxLI+1] = none
	for li := maxLI; ; li-- {
		first := none
		for _, h := range held[li] {
			first = min(first, h.raft)
		}
		later[li] = min(later[li+1], first)
		if li == 0 {
			break
		}
	}
	for li, hs := range held {
		limit := later[li+1]
		rel := releases[li]
		for _, h := range hs {
			if h.raft > limit {
				res.add(Anomaly{Kind: "stale-holder", Key: h.op.Key, Ops: []int{h.op.Index},
					Detail: fmt.Sprintf("lock index %d held at Raft index %d, after a higher lock index was held at Raft index %d", li, h.raft, limit)})
			}
			if rel != nil && h.raft > rel.ModIndex {
				res.add(Anomaly{Kind: "held-after-release", Key: h.op.Key, Ops: []int{rel.Index, h.op.Index},
					Detail: fmt.Sprintf("lock index %d released at Raft index %d, still held at Raft index %d", li, rel.ModIndex, h.raft)})
			}
		}
	}
}

// checkSessions flags sessions ended by their TTL before it had passed
// since their last acknowledged renew (or create) was sent.
func (res *LockResult) checkSessions(lives map[string]*sessionLife) {
	for id, l := range lives {
		if l.reason == nil || l.reason.Code != "ttl" || l.lostAt == nil || l.lastAlive == nil || l.ttl <= 0 {
			continue
		}
		if deadline := l.lastAlive.Invoke + int64(l.ttl); l.lostAt.Complete < deadline {
			res.add(Anomaly{Kind: "early-expiry", Ops: []int{l.lastAlive.Index, l.lostAt.Index, l.reason.Index},
				Detail: fmt.Sprintf("session %s (ttl %v) renewed at %s was gone (reason ttl) by %s, %v early",
					id, l.ttl, ms(l.lastAlive.Invoke), ms(l.lostAt.Complete), time.Duration(deadline-l.lostAt.Complete).Round(time.Millisecond))})
		}
	}
}

func (res *LockResult) add(a Anomaly) {
	res.Counts[a.Kind]++
	if res.Counts[a.Kind] <= maxExamples {
		res.Anomalies = append(res.Anomalies, a)
	}
}
