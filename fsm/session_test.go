package fsm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// sessionRig applies session commands to one FSM with increasing indexes.
type sessionRig struct {
	t   *testing.T
	f   *fsm.FSM
	idx uint64
}

func newSessionRig(t *testing.T, f *fsm.FSM, from uint64) *sessionRig {
	if f == nil {
		f = mustNewFSM(t)
	}
	return &sessionRig{t: t, f: f, idx: from}
}

func (r *sessionRig) apply(ty command.Type, msg any) *command.Result {
	r.t.Helper()
	r.idx++
	return applyResult(r.t, r.f, logAt(r.t, r.idx, ty, msg))
}

func (r *sessionRig) ok(ty command.Type, msg any) *command.Result {
	r.t.Helper()
	res := r.apply(ty, msg)
	wantErrCode(r.t, res, "")
	return res
}

func (r *sessionRig) create(id, node, behavior, lockDelay string) registry.Session {
	r.t.Helper()
	res := r.ok(command.TypeSessionCreate, &command.SessionCreate{Meta: meta(int(r.idx + 1)),
		Session: registry.Session{ID: id, Name: "worker-" + id, Node: node, TTL: "15s", Behavior: behavior, LockDelay: lockDelay}})
	if !res.Created {
		r.t.Fatal("create did not answer Created")
	}
	return res.Value.(registry.Session)
}

func (r *sessionRig) acquire(key, session string) fsm.LockAnswer {
	r.t.Helper()
	res := r.ok(command.TypeConfigLock, &command.ConfigLock{Meta: meta(int(r.idx + 1)), Key: key, Session: session, Value: []byte(`"` + session + `"`)})
	return res.Value.(fsm.LockAnswer)
}

func (r *sessionRig) invalidate(id, reason string, renewIndex *uint64) fsm.SessionEnded {
	r.t.Helper()
	m := meta(int(r.idx + 1))
	if reason != registry.ReasonDestroy {
		m.Actor = "system:leader"
	}
	res := r.ok(command.TypeSessionInvalidate, &command.SessionInvalidate{Meta: m, ID: id, Reason: reason, RenewIndex: renewIndex})
	return res.Value.(fsm.SessionEnded)
}

// TestFSM_SessionInvalidationPaths: every way a session ends is one entry
// that removes the session, releases or deletes its keys, starts their
// lock delay and writes the audit records (the session's with the
// reason, then one per key).
func TestFSM_SessionInvalidationPaths(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reason, behavior, action, keyAction string
	}{
		{registry.ReasonTTL, registry.BehaviorRelease, registry.ActionInvalidate, registry.ActionRelease},
		{registry.ReasonNodeFailed, registry.BehaviorRelease, registry.ActionInvalidate, registry.ActionRelease},
		{registry.ReasonNodeLeft, registry.BehaviorDelete, registry.ActionInvalidate, registry.ActionDelete},
		{registry.ReasonDestroy, registry.BehaviorRelease, registry.ActionDestroy, registry.ActionRelease},
		{registry.ReasonDestroy, registry.BehaviorDelete, registry.ActionDestroy, registry.ActionDelete},
	} {
		t.Run(tc.reason+"/"+tc.behavior, func(t *testing.T) {
			t.Parallel()
			r := newSessionRig(t, nil, 0)
			s := r.create("s1", "n2", tc.behavior, "10s")
			r.create("s2", "n3", tc.behavior, "10s")
			r.acquire("app/a", "s1")
			r.acquire("app/b", "s1")
			r.acquire("app/c", "s2")
			var renew *uint64
			if tc.reason == registry.ReasonTTL {
				renew = u64(s.RenewIndex)
			}
			recsBefore, _ := backlog(r.f)
			end := r.invalidate("s1", tc.reason, renew)
			if !end.Invalidated || end.Reason != tc.reason || end.ModifyIndex != r.idx {
				t.Fatalf("answer = %+v", end)
			}
			keys := end.Released
			if tc.behavior == registry.BehaviorDelete {
				keys = end.Deleted
			}
			if !reflect.DeepEqual(keys, []string{"app/a", "app/b"}) {
				t.Fatalf("keys = %v (answer %+v)", keys, end)
			}
			d := dump(r.f)
			if len(d.Sessions) != 1 || d.Sessions[0].ID != "s2" {
				t.Fatalf("sessions after = %+v", d.Sessions)
			}
			if len(d.LockDelays) != 2 || d.LockDelays[0].Index != r.idx {
				t.Fatalf("lock delays = %+v", d.LockDelays)
			}
			recs, _ := backlog(r.f)
			got := shapes(recs[len(recsBefore):])
			want := []recordShape{
				{r.idx, 0, tc.action, registry.AuditSession, "s1", true, true},
				{r.idx, 1, tc.keyAction, registry.AuditConfig, "app/a", true, tc.keyAction == registry.ActionRelease},
				{r.idx, 2, tc.keyAction, registry.AuditConfig, "app/b", true, tc.keyAction == registry.ActionRelease},
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("audit records\n got %+v\nwant %+v", got, want)
			}
			var doc struct{ ID, Reason string }
			if err := json.Unmarshal(recs[len(recsBefore)].After, &doc); err != nil || doc.Reason != tc.reason || doc.ID != "s1" {
				t.Fatalf("session record after = %s", recs[len(recsBefore)].After)
			}
			if tc.keyAction == registry.ActionRelease && !strings.Contains(string(recs[len(recsBefore)+1].Before), `"session":"s1"`) {
				t.Fatalf("release record before = %s", recs[len(recsBefore)+1].Before)
			}
			// Once gone: a destroy answers invalidated false, changes nothing.
			before := dump(r.f)
			if again := r.invalidate("s1", registry.ReasonDestroy, nil); again.Invalidated {
				t.Fatalf("second invalidation = %+v", again)
			}
			if !reflect.DeepEqual(before, dump(r.f)) {
				t.Fatal("invalidating a missing session changed the state")
			}
		})
	}
}

// TestFSM_TTLInvalidationLosesToRenew: the leader timed renew index N; a
// renew committed before its invalidation wins, and nothing changes.
func TestFSM_TTLInvalidationLosesToRenew(t *testing.T) {
	t.Parallel()
	r := newSessionRig(t, nil, 0)
	s := r.create("s1", "n1", registry.BehaviorRelease, "15s")
	r.acquire("k", "s1")
	renewed := r.ok(command.TypeSessionRenew, &command.SessionRenew{Meta: meta(3), ID: "s1"}).Value.(registry.Session)
	if renewed.RenewIndex != r.idx || renewed.RenewIndex == s.RenewIndex {
		t.Fatalf("renew index = %d", renewed.RenewIndex)
	}
	before := dump(r.f)
	end := r.invalidate("s1", registry.ReasonTTL, u64(s.RenewIndex))
	if end.Invalidated || !end.Renewed {
		t.Fatalf("stale TTL invalidation = %+v", end)
	}
	if !reflect.DeepEqual(before, dump(r.f)) {
		t.Fatal("a stale TTL invalidation changed the state or the audit")
	}
	if end := r.invalidate("s1", registry.ReasonTTL, u64(renewed.RenewIndex)); !end.Invalidated {
		t.Fatalf("TTL invalidation at the current renew index = %+v", end)
	}
}

// TestFSM_LockDelay: after an invalidation the keys refuse every session
// until the leader's end names the invalidation's index. No clock is read:
// the delay is timed by the leader, Apply only sees its end.
func TestFSM_LockDelay(t *testing.T) {
	t.Parallel()
	r := newSessionRig(t, nil, 0)
	r.create("a", "n1", registry.BehaviorRelease, "15s")
	r.create("b", "n1", registry.BehaviorRelease, "15s")
	r.acquire("k", "a")
	inv := r.idx + 1
	r.invalidate("a", registry.ReasonNodeFailed, nil)
	if got := r.acquire("k", "b"); *got.Acquired || got.Reason != registry.LockDelayed {
		t.Fatalf("acquire in the lock delay = %+v", got)
	}
	end := func(index uint64) []string {
		m := meta(int(r.idx + 1))
		m.Actor = "system:leader"
		return r.ok(command.TypeLockDelayEnd, &command.LockDelayEnd{Meta: m, Delays: []registry.LockDelay{{Key: "k", Index: index}}}).Value.(fsm.LockDelaysEnded).Ended
	}
	if got := end(inv - 1); len(got) != 0 {
		t.Fatalf("an end naming another index ended %v", got)
	}
	if got := r.acquire("k", "b"); *got.Acquired {
		t.Fatal("the lock delay ended early")
	}
	if got := end(inv); !reflect.DeepEqual(got, []string{"k"}) {
		t.Fatalf("ended %v", got)
	}
	got := r.acquire("k", "b")
	if !*got.Acquired || got.LockIndex != 2 || got.Session != "b" {
		t.Fatalf("acquire after the delay = %+v", got)
	}
	// A zero lock delay starts none.
	r.create("c", "n1", registry.BehaviorRelease, "0s")
	r.acquire("z", "c")
	r.invalidate("c", registry.ReasonDestroy, nil)
	if got := r.acquire("z", "b"); !*got.Acquired {
		t.Fatalf("acquire after a 0s lock delay = %+v", got)
	}
}

// TestFSM_AcquireByMissingSession: not_found, and nothing changes.
func TestFSM_AcquireByMissingSession(t *testing.T) {
	t.Parallel()
	r := newSessionRig(t, nil, 0)
	r.create("a", "n1", registry.BehaviorRelease, "15s")
	r.invalidate("a", registry.ReasonDestroy, nil)
	before := dump(r.f)
	for _, id := range []string{"a", "never"} {
		res := r.apply(command.TypeConfigLock, &command.ConfigLock{Meta: meta(9), Key: "k", Session: id, Value: []byte(`1`)})
		wantErrCode(t, res, registry.CodeNotFound)
		if !strings.Contains(res.Err.Message, id) {
			t.Fatalf("message %q does not name the session", res.Err.Message)
		}
	}
	if !reflect.DeepEqual(before, dump(r.f)) {
		t.Fatal("a refused acquire changed the state or the audit")
	}
}

// TestFSM_TxnAllOrNothing: a failed check answers txn_conflict naming the
// op, and the state and the audit backlog are exactly as before (full
// dumps); a passing transaction writes one record per change.
func TestFSM_TxnAllOrNothing(t *testing.T) {
	t.Parallel()
	r := newSessionRig(t, nil, 0)
	r.ok(command.TypeConfigSet, &command.ConfigSet{Meta: meta(1), Entries: []command.ConfigOp{{Key: "a", Value: []byte(`1`)}}})
	r.create("s", "n1", registry.BehaviorRelease, "0s")
	before := dump(r.f)
	res := r.apply(command.TypeTxn, &command.Txn{Meta: meta(3), Ops: []registry.TxnOp{
		{Op: "set", Key: "b", Value: []byte(`2`)},
		{Op: "lock", Key: "l", Session: "s"},
		{Op: "check-index", Key: "a", Index: u64(99)},
	}})
	if res.Err == nil || res.Err.Code != registry.CodeTxnConflict {
		t.Fatalf("result = %+v", res)
	}
	conf, ok := res.Value.(fsm.TxnConflicts)
	if !ok || len(conf.Errors) != 1 || conf.Errors[0].OpIndex != 2 || conf.Errors[0].Op != "check-index" {
		t.Fatalf("conflict value = %+v", res.Value)
	}
	if !reflect.DeepEqual(before, dump(r.f)) {
		t.Fatal("a failed transaction changed the state or the audit backlog")
	}
	recsBefore, _ := backlog(r.f)
	res = r.ok(command.TypeTxn, &command.Txn{Meta: meta(4), Ops: []registry.TxnOp{
		{Op: "check-index", Key: "a", Index: u64(1)},
		{Op: "set", Key: "b", Value: []byte(`2`)},
		{Op: "lock", Key: "l", Session: "s"},
		{Op: "get", Key: "a"},
	}})
	ans := res.Value.(fsm.TxnAnswer)
	if ans.Index != r.idx || len(ans.Results) != 4 || ans.Results[2].Entry.Session != "s" {
		t.Fatalf("answer = %+v", ans)
	}
	recs, _ := backlog(r.f)
	want := []recordShape{
		{r.idx, 0, registry.ActionSet, registry.AuditConfig, "b", false, true},
		{r.idx, 1, registry.ActionAcquire, registry.AuditConfig, "l", false, true},
	}
	if got := shapes(recs[len(recsBefore):]); !reflect.DeepEqual(got, want) {
		t.Fatalf("audit\n got %+v\nwant %+v", got, want)
	}
}

// TestFSM_SessionACL: Apply checks sessions by name (create, renew,
// destroy), keys of acquires, and every key of a transaction.
func TestFSM_SessionACL(t *testing.T) {
	t.Parallel()
	f := aclFSM(t)
	r := newSessionRig(t, f, 3)
	root := func() command.Meta { return as(int(r.idx+1), acl.Token, "root") }
	// The policy "jobs" writes sessions named jobs-* and config under jobs/.
	r.ok(command.TypeACLPolicyUpsert, &command.ACLPolicyUpsert{Meta: root(), Policy: registry.ACLPolicy{Name: "jobs", Rules: []registry.ACLRule{
		{Resource: "session", Prefix: "jobs-", Access: "write"}, {Resource: "config", Prefix: "jobs/", Access: "write"},
		{Resource: "config", Prefix: "jobs/secret", Access: "deny"}}}})
	r.ok(command.TypeACLTokenCreate, &command.ACLTokenCreate{Meta: root(), Token: registry.ACLToken{AccessorID: "t-jobs",
		SecretHash: acl.HashSecret("jobs"), Policies: []string{"jobs"}}})
	r.ok(command.TypeSessionCreate, &command.SessionCreate{Meta: root(), Session: registry.Session{ID: "other", Name: "web-1", Node: "n1"}})
	jobs := func() command.Meta { return as(int(r.idx+1), acl.Token, "t-jobs") }

	cases := []struct {
		name string
		ty   command.Type
		msg  func() any
		code string
	}{
		{"create in prefix", command.TypeSessionCreate, func() any {
			return &command.SessionCreate{Meta: jobs(), Session: registry.Session{ID: "mine", Name: "jobs-1", Node: "n1"}}
		}, ""},
		{"create outside", command.TypeSessionCreate, func() any {
			return &command.SessionCreate{Meta: jobs(), Session: registry.Session{ID: "x", Name: "web-2", Node: "n1"}}
		}, fsm.CodePermissionDenied},
		{"renew own", command.TypeSessionRenew, func() any { return &command.SessionRenew{Meta: jobs(), ID: "mine"} }, ""},
		{"renew other's", command.TypeSessionRenew, func() any { return &command.SessionRenew{Meta: jobs(), ID: "other"} }, fsm.CodePermissionDenied},
		{"destroy other's", command.TypeSessionInvalidate, func() any {
			return &command.SessionInvalidate{Meta: jobs(), ID: "other", Reason: registry.ReasonDestroy}
		}, fsm.CodePermissionDenied},
		{"acquire outside", command.TypeConfigLock, func() any {
			return &command.ConfigLock{Meta: jobs(), Key: "web/lock", Session: "mine"}
		}, fsm.CodePermissionDenied},
		{"acquire inside", command.TypeConfigLock, func() any {
			return &command.ConfigLock{Meta: jobs(), Key: "jobs/lock", Session: "mine"}
		}, ""},
		{"txn reads a denied key", command.TypeTxn, func() any {
			return &command.Txn{Meta: jobs(), Ops: []registry.TxnOp{{Op: "check-not-exists", Key: "web/x"}, {Op: "set", Key: "jobs/a", Value: []byte(`1`)}}}
		}, fsm.CodePermissionDenied},
		{"txn deletes a denied key under its prefix", command.TypeTxn, func() any {
			return &command.Txn{Meta: jobs(), Ops: []registry.TxnOp{{Op: "delete-tree", Key: "jobs/"}}}
		}, fsm.CodePermissionDenied},
		{"txn inside", command.TypeTxn, func() any {
			return &command.Txn{Meta: jobs(), Ops: []registry.TxnOp{{Op: "check-session", Key: "jobs/lock", Session: "mine"}, {Op: "set", Key: "jobs/a", Value: []byte(`1`)}}}
		}, ""},
		{"destroy own", command.TypeSessionInvalidate, func() any {
			return &command.SessionInvalidate{Meta: jobs(), ID: "mine", Reason: registry.ReasonDestroy}
		}, ""},
	}
	// jobs/secret exists, so the delete-tree meets a denied key.
	r.ok(command.TypeConfigSet, &command.ConfigSet{Meta: root(), Entries: []command.ConfigOp{{Key: "jobs/secret", Value: []byte(`1`)}}})
	for _, c := range cases {
		before := dump(f)
		res := r.apply(c.ty, c.msg())
		if c.code == "" {
			wantErrCode(t, res, "")
			continue
		}
		if res.Err == nil || res.Err.Code != c.code {
			t.Fatalf("%s: result %+v, want %s", c.name, res, c.code)
		}
		if !reflect.DeepEqual(before, dump(f)) {
			t.Fatalf("%s: a refused write changed the state", c.name)
		}
	}
}

// TestFSM_RenewPassesFullBacklog: renews write no audit record, so a full
// backlog refusing user writes does not end sessions; a destroy is
// audited and refused like any user write.
func TestFSM_RenewPassesFullBacklog(t *testing.T) {
	t.Parallel()
	r := newSessionRig(t, nil, 0)
	r.ok(command.TypeAuditSettings, &command.AuditSettings{Meta: meta(1), MaxRecords: i64(2), OnFull: str(registry.OnFullReject), Archive: str(registry.ArchiveOn)})
	r.create("s", "n1", registry.BehaviorRelease, "15s") // the second record: full
	r.ok(command.TypeSessionRenew, &command.SessionRenew{Meta: meta(3), ID: "s"})
	res := r.apply(command.TypeSessionInvalidate, &command.SessionInvalidate{Meta: meta(4), ID: "s", Reason: registry.ReasonDestroy})
	wantErrCode(t, res, registry.CodeAuditBacklogFull)
	// The leader's invalidations are system writes: they pass.
	if end := r.invalidate("s", registry.ReasonTTL, nil); !end.Invalidated {
		t.Fatalf("system invalidation = %+v", end)
	}
}

// sessionLog is a log of session, lock and txn commands, some failing.
func sessionLog() []cmd {
	var out []cmd
	i := 0
	add := func(t command.Type, msg any) { out = append(out, cmd{t, msg}) }
	next := func() command.Meta { i++; return meta(i) }
	for n := 1; n <= 4; n++ {
		add(command.TypeSessionCreate, &command.SessionCreate{Meta: next(), Session: registry.Session{ID: fmt.Sprintf("s%d", n),
			Name: "w", Node: fmt.Sprintf("n%d", n%3+1), TTL: "10s", Behavior: []string{"release", "delete"}[n%2], LockDelay: "5s"}})
	}
	for n := 1; n <= 4; n++ {
		add(command.TypeConfigLock, &command.ConfigLock{Meta: next(), Key: fmt.Sprintf("lock/%d", n%2), Session: fmt.Sprintf("s%d", n), Value: []byte(`1`)})
	}
	add(command.TypeSessionRenew, &command.SessionRenew{Meta: next(), ID: "s1"})
	add(command.TypeTxn, &command.Txn{Meta: next(), Ops: []registry.TxnOp{{Op: "check-session", Key: "lock/1", Session: "s1"},
		{Op: "set", Key: "counter", Value: []byte(`1`)}, {Op: "lock", Key: "lock/2", Session: "s1"}}})
	add(command.TypeTxn, &command.Txn{Meta: next(), Ops: []registry.TxnOp{{Op: "check-session", Key: "lock/1", Session: "s3"},
		{Op: "set", Key: "counter", Value: []byte(`2`)}}})
	add(command.TypeSessionInvalidate, &command.SessionInvalidate{Meta: next(), ID: "s1", Reason: "ttl", RenewIndex: u64(1)})
	add(command.TypeSessionInvalidate, &command.SessionInvalidate{Meta: next(), ID: "s1", Reason: "node_failed"})
	add(command.TypeSessionInvalidate, &command.SessionInvalidate{Meta: next(), ID: "s2", Reason: "destroy"})
	add(command.TypeConfigLock, &command.ConfigLock{Meta: next(), Key: "lock/1", Session: "s3"})
	add(command.TypeLockDelayEnd, &command.LockDelayEnd{Meta: next(), Delays: []registry.LockDelay{{Key: "lock/1", Index: 13}, {Key: "lock/2", Index: 14}}})
	add(command.TypeConfigLock, &command.ConfigLock{Meta: next(), Key: "lock/1", Session: "s3", Release: true})
	add(command.TypeConfigLock, &command.ConfigLock{Meta: next(), Key: "lock/1", Session: "s4", Value: []byte(`4`)})
	return out
}

// TestFSM_SessionsDeterministicAndSnapshotted: the session log applied
// entry by entry and in one batch gives equal answers and equal snapshot
// bytes; a restore of that snapshot carries sessions, held keys and lock
// delays.
func TestFSM_SessionsDeterministicAndSnapshotted(t *testing.T) {
	t.Parallel()
	var logs []*raft.Log
	for i, c := range sessionLog() {
		logs = append(logs, logAt(t, uint64(i+1), c.t, c.msg))
	}
	one, batch := mustNewFSM(t), mustNewFSM(t)
	var answers []string
	for _, l := range logs {
		answers = append(answers, resultJSON(t, one.Apply(l)))
	}
	for i, v := range batch.ApplyBatch(logs) {
		if got := resultJSON(t, v); got != answers[i] {
			t.Fatalf("entry %d: batch %s, one by one %s", i+1, got, answers[i])
		}
	}
	snap := snapshotBytes(t, one)
	if !bytes.Equal(snap, snapshotBytes(t, batch)) {
		t.Fatal("snapshots differ")
	}
	d := dump(one)
	if len(d.Sessions) != 2 || len(d.LockDelays) == 0 {
		t.Fatalf("the log should leave sessions and lock delays: %+v %+v", d.Sessions, d.LockDelays)
	}
	restored := mustNewFSM(t)
	if err := restored.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, dump(restored)) {
		t.Fatal("restore lost session state")
	}
	tx := restored.Store().ReadTxn()
	defer tx.Abort()
	if keys := tx.SessionKeys(nil, "s4"); len(keys) != 1 || keys[0].Key != "lock/1" {
		t.Fatalf("held keys after restore = %+v", keys)
	}
}
