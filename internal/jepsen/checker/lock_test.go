package checker

import (
	"reflect"
	"testing"

	"github.com/nexus/nexus/internal/jepsen/history"
)

// Lock ops. Times are in ns (s: seconds); raft is the Raft index the
// answer names.
const s = int64(1e9)

func lCreate(inv int64, sess string) history.Op {
	return history.Op{Workload: "lock", F: history.FSessionCreate, Type: history.OK, Invoke: inv, Complete: inv + 1, Session: sess, Value: 10000}
}

func lRenew(inv, cmp int64, t history.Type, code, sess string) history.Op {
	return history.Op{Workload: "lock", F: history.FRenew, Type: t, Code: code, Invoke: inv, Complete: cmp, Session: sess}
}

func lLost(inv int64, sess, reason string) history.Op {
	return history.Op{Workload: "lock", F: history.FSessionLost, Type: history.OK, Code: reason, Invoke: inv, Complete: inv + 1, Session: sess}
}

func lAcquire(inv int64, sess string, li, raft uint64) history.Op {
	return history.Op{Workload: "lock", F: history.FAcquire, Key: "l", Type: history.OK, Invoke: inv, Complete: inv + 1,
		Session: sess, Holder: sess, Acquired: true, LockIndex: li, ModIndex: raft}
}

func lRelease(inv int64, sess string, li, raft uint64) history.Op {
	return history.Op{Workload: "lock", F: history.FRelease, Key: "l", Type: history.OK, Invoke: inv, Complete: inv + 1,
		Session: sess, Acquired: true, LockIndex: li, ModIndex: raft}
}

// lIncr: an acknowledged increment to value by sess, whose transaction saw
// the lock held by holder with lock index li, at Raft index raft.
func lIncr(inv int64, sess, holder string, li uint64, value int64, raft uint64) history.Op {
	return history.Op{Workload: "lock", F: history.FIncr, Key: "c", Type: history.OK, Invoke: inv, Complete: inv + 1,
		Session: sess, Holder: holder, LockIndex: li, Value: value, ModIndex: raft}
}

func lIncrNot(inv int64, t history.Type, code, msg, sess string, value int64) history.Op {
	return history.Op{Workload: "lock", F: history.FIncr, Key: "c", Type: t, Code: code, Error: msg, Invoke: inv, Complete: inv + 1,
		Session: sess, Value: value}
}

func lFinal(inv int64, value int64) history.Op {
	return history.Op{Workload: "lock", F: history.FRead, Key: "c", Type: history.OK, Invoke: inv, Complete: inv + 1,
		Present: value != 0, Read: value, Final: true}
}

func TestCheckLock(t *testing.T) {
	t.Parallel()
	const fail, info = history.Fail, history.Info
	// A correct run: S1 holds lock index 1 for two increments, S2 index 2
	// for one.
	good := func(final int64, extra ...history.Op) []history.Op {
		ops := []history.Op{lCreate(0, "S1"), lCreate(0, "S2"),
			lAcquire(10, "S1", 1, 10), lIncr(11, "S1", "S1", 1, 1, 11), lIncr(12, "S1", "S1", 1, 2, 12), lRelease(13, "S1", 1, 13),
			lAcquire(14, "S2", 2, 14), lIncr(15, "S2", "S2", 2, 3, 15)}
		ops = append(ops, extra...)
		return h(append(ops, lRelease(20, "S2", 2, 20), lFinal(100, final))...)
	}
	tests := []struct {
		name  string
		ops   []history.Op
		kinds map[string]int // nil: valid
	}{
		{name: "correct", ops: good(3)},
		{name: "other workloads are ignored", ops: good(3, rWrite(16, 17, history.OK, 5, 40))},
		{name: "fenced out and failed increments", ops: good(3,
			lIncrNot(16, fail, "txn_conflict", "ops[0] (check-session l): the key is not held by session S1", "S1", 3),
			lIncrNot(17, fail, "no_leader", "", "S2", 4))},
		{name: "indeterminate increment applied", ops: good(4, lIncrNot(16, info, "timeout", "", "S2", 4))},
		{name: "indeterminate increment not applied", ops: good(3, lIncrNot(16, info, "outcome_unknown", "", "S2", 4))},
		{name: "lost increment", ops: good(2), kinds: map[string]int{"lost": 1, "regressed": 1}},
		{name: "phantom increment", ops: good(4), kinds: map[string]int{"unexpected": 1}},
		{name: "doubled increment", ops: h(lAcquire(10, "S1", 1, 10), lIncr(11, "S1", "S1", 1, 1, 11), lIncr(12, "S1", "S1", 1, 1, 12),
			lFinal(100, 1)), kinds: map[string]int{"doubled": 1, "lost": 1}},
		{name: "no final read", ops: h(lAcquire(10, "S1", 1, 10), lIncr(11, "S1", "S1", 1, 1, 11)),
			kinds: map[string]int{"no-final-read": 1}},
		{name: "increment applied while another session held the lock", ops: h(
			lAcquire(10, "S1", 1, 10), lIncr(11, "S1", "S1", 1, 1, 11), lIncr(12, "S2", "S1", 1, 2, 12), lFinal(100, 2)),
			kinds: map[string]int{"unfenced": 1}},
		{name: "increment applied while nobody held the lock", ops: h(
			lAcquire(10, "S1", 1, 10), lIncr(11, "S1", "S1", 1, 1, 11), lRelease(12, "S1", 1, 12), lIncr(13, "S1", "", 1, 2, 13), lFinal(100, 2)),
			kinds: map[string]int{"unfenced": 1}},
		{name: "interleaved critical sections", ops: h(
			lAcquire(10, "S1", 1, 10), lIncr(11, "S1", "S1", 1, 1, 11),
			lAcquire(12, "S2", 2, 12), lIncr(13, "S2", "S2", 2, 2, 13),
			lIncr(14, "S1", "S1", 1, 3, 14), lFinal(100, 3)),
			kinds: map[string]int{"lock-index-backwards": 1, "stale-holder": 1}},
		{name: "two holders with one lock index", ops: h(
			lAcquire(10, "S1", 1, 10), lIncr(11, "S1", "S1", 1, 1, 11), lAcquire(12, "S2", 1, 12), lIncr(13, "S2", "S2", 1, 2, 13),
			lFinal(100, 2)), kinds: map[string]int{"lock-index-shared": 2}},
		{name: "held after its release", ops: h(
			lAcquire(10, "S1", 1, 10), lIncr(11, "S1", "S1", 1, 1, 11), lRelease(12, "S1", 1, 12), lIncr(13, "S1", "S1", 1, 2, 13),
			lFinal(100, 2)), kinds: map[string]int{"held-after-release": 1}},
		{name: "counter against Raft order", ops: h(
			lAcquire(10, "S1", 1, 10), lIncr(11, "S1", "S1", 1, 1, 12), lIncr(12, "S1", "S1", 1, 2, 11), lFinal(100, 2)),
			kinds: map[string]int{"counter-order": 1}},
		{name: "value never reachable", ops: h(lAcquire(10, "S1", 1, 10), lIncr(11, "S1", "S1", 1, 7, 11), lFinal(100, 7)),
			kinds: map[string]int{"out-of-range": 1, "unexpected": 1}},
		{name: "session gone before its TTL", ops: h(lCreate(0, "S1"), lRenew(5*s, 5*s+1, history.OK, "", "S1"),
			lRenew(8*s, 9*s, fail, "not_found", "S1"), lLost(9*s+1, "S1", "ttl"), lFinal(100*s, 0)),
			kinds: map[string]int{"early-expiry": 1}},
		{name: "session gone after its TTL", ops: h(lCreate(0, "S1"), lRenew(5*s, 5*s+1, history.OK, "", "S1"),
			lRenew(15*s, 16*s, fail, "not_found", "S1"), lLost(16*s+1, "S1", "ttl"), lFinal(100*s, 0))},
		{name: "session gone early because its node failed", ops: h(lCreate(0, "S1"),
			lRenew(3*s, 4*s, fail, "not_found", "S1"), lLost(4*s+1, "S1", "node_failed"), lFinal(100*s, 0))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := CheckLock(tc.ops)
			wantKinds(t, res.Counts, res.Anomalies, res.Valid, tc.kinds)
			for _, a := range res.Anomalies {
				if a.Kind != "no-final-read" && a.Kind != "out-of-range" && len(a.Ops) == 0 {
					t.Errorf("anomaly %s names no op", a.Kind)
				}
			}
		})
	}
}

func TestCheckLockCounts(t *testing.T) {
	t.Parallel()
	res := CheckLock(h(lCreate(0, "S1"), lAcquire(10, "S1", 1, 10), lIncr(11, "S1", "S1", 1, 1, 11),
		lIncrNot(12, history.Fail, "txn_conflict", "ops[0] (check-session l): not held", "S1", 2),
		lIncrNot(13, history.Info, "timeout", "", "S1", 2), lRenew(14, 15, history.Fail, "not_found", "S1"),
		lLost(16, "S1", "node_failed"), lFinal(100, 2)))
	want := LockResult{Valid: true, Sessions: 1, Acquired: 1, Handovers: 1, Attempted: 3, Acked: 1, Failed: 1, Indefinite: 1,
		FencedOut: 1, Final: 2, FinalRead: true, LostSessions: 1, EndReasons: map[string]int{"node_failed": 1}, Counts: map[string]int{}}
	if !reflect.DeepEqual(*res, want) {
		t.Fatalf("result\n%+v\nwant\n%+v", *res, want)
	}
}
