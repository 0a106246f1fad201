package session

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/cluster/member"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/internal/metrictest"
	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/registry"
)

// rig is a real store and FSM behind an Apply that commits like a
// single-node Raft, a clock the test moves, and a member list it edits.
type rig struct {
	t     *testing.T
	store *registry.Store
	fsm   *fsm.FSM
	codec *command.Codec
	reg   *prometheus.Registry
	m     *Metrics

	mu      sync.Mutex
	idx     uint64
	now     time.Time
	members map[string]member.Status
	// before, when set, runs before each proposal the duty applies.
	before func()
	failOn command.Type
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, store: registry.NewStore(), codec: command.NewCodec(), reg: prometheus.NewRegistry(),
		now: time.Unix(1_700_000_000, 0), members: map[string]member.Status{"n1": member.Alive, "n2": member.Alive, "n3": member.Alive}}
	m, err := NewMetrics(r.reg, r.store)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	r.fsm = fsm.New(fsm.Deps{Store: r.store, Codec: r.codec, OnApply: m.ObserveApply})
	return r
}

func (r *rig) duty() *Duty {
	return NewDuty(Deps{State: StoreState{Store: r.store}, Apply: r.dutyApply, Members: r.memberStatuses,
		Codec: r.codec, Node: "n1", Metrics: r.m, Now: r.clock, Tick: time.Millisecond})
}

func (r *rig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

func (r *rig) memberStatuses() map[string]member.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]member.Status, len(r.members))
	for k, v := range r.members {
		out[k] = v
	}
	return out
}

func (r *rig) setMember(name string, status member.Status) {
	r.mu.Lock()
	r.members[name] = status
	r.mu.Unlock()
}

func (r *rig) dutyApply(ctx context.Context, b []byte) (*command.Result, error) {
	r.mu.Lock()
	before, fail := r.before, r.failOn
	r.mu.Unlock()
	if before != nil {
		before()
	}
	if fail != 0 && command.Type(b[0]) == fail {
		return nil, errors.New("no leader")
	}
	return r.commit(b), nil
}

func (r *rig) commit(b []byte) *command.Result {
	r.mu.Lock()
	r.idx++
	idx := r.idx
	r.mu.Unlock()
	return r.fsm.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: b}).(*command.Result)
}

func (r *rig) apply(t command.Type, msg any) *command.Result {
	r.t.Helper()
	b, err := r.codec.Encode(t, msg)
	if err != nil {
		r.t.Fatal(err)
	}
	res := r.commit(b)
	if res.Err != nil {
		r.t.Fatalf("%s: %v", t, res.Err)
	}
	return res
}

func (r *rig) create(id, node, ttl, lockDelay string) {
	r.t.Helper()
	r.apply(command.TypeSessionCreate, &command.SessionCreate{Meta: command.Meta{Actor: "t", Time: r.clock().UnixNano()},
		Session: registry.Session{ID: id, Name: id, Node: node, TTL: ttl, LockDelay: lockDelay}})
}

func (r *rig) renew(id string) {
	r.t.Helper()
	r.apply(command.TypeSessionRenew, &command.SessionRenew{ID: id})
}

func (r *rig) acquire(key, id string) bool {
	r.t.Helper()
	res := r.apply(command.TypeConfigLock, &command.ConfigLock{Key: key, Session: id, Value: []byte(`1`)})
	return *res.Value.(fsm.LockAnswer).Acquired
}

func (r *rig) alive(id string) bool {
	tx := r.store.ReadTxn()
	defer tx.Abort()
	return tx.Session(nil, id) != nil
}

func (r *rig) auditReason(id string) string {
	tx := r.store.ReadTxn()
	defer tx.Abort()
	for _, rec := range tx.AuditBacklog(nil, registry.AuditKey{}, 1<<20) {
		if rec.ResourceType == registry.AuditSession && rec.Resource == id && rec.After != nil && rec.Action != registry.ActionCreate {
			return string(rec.After)
		}
	}
	return ""
}

// TestDuty_TTL: a session ends once its TTL passed on the leader's clock
// since the leader saw it, never before; each renew restarts the timer.
func TestDuty_TTL(t *testing.T) {
	r := newRig(t)
	d, run := r.duty(), newRun()
	ctx := context.Background()
	r.create("s", "n2", "10s", "0s")
	r.create("forever", "n2", "", "0s")
	d.step(ctx, run) // first seen: deadline now+10s
	r.advance(10*time.Second - time.Millisecond)
	d.step(ctx, run)
	if !r.alive("s") {
		t.Fatal("ended before its TTL")
	}
	r.renew("s")
	d.step(ctx, run) // sees the renew: deadline now+10s
	r.advance(10*time.Second - time.Millisecond)
	d.step(ctx, run)
	if !r.alive("s") {
		t.Fatal("a renewed session ended before its TTL from the renew")
	}
	r.advance(time.Millisecond)
	d.step(ctx, run)
	if r.alive("s") {
		t.Fatal("the session outlived its TTL")
	}
	if got := r.auditReason("s"); got != `{"id":"s","reason":"ttl"}` {
		t.Fatalf("audit after = %s", got)
	}
	r.advance(48 * time.Hour)
	d.step(ctx, run)
	if !r.alive("forever") {
		t.Fatal("a session without a TTL ended")
	}
}

// TestDuty_RenewRacingTheTimer: a renew that commits between the leader's
// decision and its invalidation wins: the invalidation names the renew
// index it timed and Apply ignores it.
func TestDuty_RenewRacingTheTimer(t *testing.T) {
	r := newRig(t)
	d, run := r.duty(), newRun()
	ctx := context.Background()
	r.create("s", "n2", "10s", "0s")
	d.step(ctx, run)
	r.advance(10 * time.Second)
	var once sync.Once
	r.mu.Lock()
	r.before = func() { once.Do(func() { r.renew("s") }) }
	r.mu.Unlock()
	d.step(ctx, run)
	if !r.alive("s") {
		t.Fatal("a renew racing the timer lost: a live session ended")
	}
	// The next step sees the new renew index: a full TTL from now.
	d.step(ctx, run)
	r.advance(10*time.Second - time.Millisecond)
	d.step(ctx, run)
	if !r.alive("s") {
		t.Fatal("ended before a full TTL after the raced renew")
	}
}

// TestDuty_NewLeaderGivesFullTTL: a leader that starts (a fresh run) times
// every session from its own first sighting, however old the session is
// on any clock; a restored snapshot restarts every timer the same way.
func TestDuty_NewLeaderGivesFullTTL(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.create("s", "n2", "10s", "0s")
	old := newRun()
	d := r.duty()
	d.step(ctx, old)
	r.advance(9 * time.Second)
	d.step(ctx, old)
	// Leadership moves: the new leader's run starts with nothing.
	fresh := newRun()
	d.step(ctx, fresh)
	r.advance(9 * time.Second) // 18s after the old leader first saw it
	d.step(ctx, fresh)
	if !r.alive("s") {
		t.Fatal("a new leader ended a session early")
	}
	// A restore of the same state (same renew index) restarts the timer too.
	tx := r.store.ReadTxn()
	dump := tx.Dump()
	tx.Abort()
	if err := r.store.Restore(func(tx *registry.Tx) error { return tx.Load(dump) }); err != nil {
		t.Fatal(err)
	}
	r.advance(900 * time.Millisecond) // 9.9s after the new leader saw it
	d.step(ctx, fresh)
	r.advance(9*time.Second + 900*time.Millisecond)
	d.step(ctx, fresh)
	if !r.alive("s") {
		t.Fatal("a restored session did not get a full TTL")
	}
	r.advance(100 * time.Millisecond)
	d.step(ctx, fresh)
	if r.alive("s") {
		t.Fatal("the restored session outlived its TTL")
	}
}

// TestDuty_NodeFailedOrLeft: gossip's failed and left end the node's
// sessions at once, releasing their keys into their lock delay; suspect
// and unknown members do not.
func TestDuty_NodeFailedOrLeft(t *testing.T) {
	r := newRig(t)
	d, run := r.duty(), newRun()
	ctx := context.Background()
	r.create("a", "n2", "", "5s")
	r.create("b", "n3", "", "5s")
	r.create("c", "n1", "", "5s")
	r.create("x", "n9", "", "5s")
	r.create("w", "n1", "", "5s")
	if !r.acquire("lock", "a") {
		t.Fatal("acquire")
	}
	r.setMember("n1", member.Suspect)
	d.step(ctx, run)
	if !r.alive("a") || !r.alive("b") || !r.alive("c") || !r.alive("x") {
		t.Fatal("a session ended with every node alive, suspect or unknown")
	}
	r.setMember("n2", member.Failed)
	r.setMember("n3", member.Left)
	d.step(ctx, run)
	if r.alive("a") || r.alive("b") || !r.alive("c") {
		t.Fatal("the failed and left nodes' sessions must end, the others not")
	}
	if r.auditReason("a") != `{"id":"a","reason":"node_failed"}` || r.auditReason("b") != `{"id":"b","reason":"node_left"}` {
		t.Fatalf("reasons %s %s", r.auditReason("a"), r.auditReason("b"))
	}
	// The released key waits out a's lock delay on the leader's clock.
	if r.acquire("lock", "w") {
		t.Fatal("acquired in the lock delay")
	}
	d.step(ctx, run) // sees the delay
	r.advance(5*time.Second - time.Millisecond)
	d.step(ctx, run)
	if r.acquire("lock", "w") {
		t.Fatal("the lock delay ended early")
	}
	r.advance(time.Millisecond)
	d.step(ctx, run)
	if !r.acquire("lock", "w") {
		t.Fatal("the lock delay did not end")
	}
}

// TestDuty_RetriesFailedProposals: a proposal that fails (no leader) is
// proposed again at the next step.
func TestDuty_RetriesFailedProposals(t *testing.T) {
	r := newRig(t)
	d, run := r.duty(), newRun()
	ctx := context.Background()
	r.create("s", "n2", "", "0s")
	r.setMember("n2", member.Failed)
	r.mu.Lock()
	r.failOn = command.TypeSessionInvalidate
	r.mu.Unlock()
	d.step(ctx, run)
	if !r.alive("s") {
		t.Fatal("a failed proposal applied")
	}
	r.mu.Lock()
	r.failOn = 0
	r.mu.Unlock()
	d.step(ctx, run)
	if r.alive("s") {
		t.Fatal("the failed proposal was not retried")
	}
	if got := metrictest.Value(t, r.reg, "nexus_session_duty_proposals_total", map[string]string{"kind": "node_failed", "result": "error"}); got != 1 {
		t.Fatalf("error proposals = %v", got)
	}
}

// TestDuty_RunStopsWithItsContext drives the loop itself.
func TestDuty_RunStopsWithItsContext(t *testing.T) {
	r := newRig(t)
	r.create("s", "n2", "10s", "0s")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.duty().Run(ctx); close(done) }()
	r.setMember("n2", member.Failed)
	retry.Run(t, func(rr *retry.R) {
		if r.alive("s") {
			rr.Fatal("session still alive")
		}
	})
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestMetrics counts what the replica applied and reads the gauges.
func TestMetrics(t *testing.T) {
	r := newRig(t)
	r.create("a", "n1", "", "5s")
	r.create("b", "n1", "", "5s")
	r.acquire("k", "a")
	r.acquire("k", "b") // contended
	r.renew("a")
	r.apply(command.TypeTxn, &command.Txn{Ops: []registry.TxnOp{{Op: "unlock", Key: "k", Session: "a"}, {Op: "lock", Key: "j", Session: "a"}}})
	r.apply(command.TypeSessionInvalidate, &command.SessionInvalidate{ID: "a", Reason: registry.ReasonDestroy})
	r.acquire("j", "b") // lock_delay
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"nexus_lock_acquires_total", map[string]string{"result": "acquired"}, 2},
		{"nexus_lock_acquires_total", map[string]string{"result": "contended"}, 1},
		{"nexus_lock_acquires_total", map[string]string{"result": "lock_delay"}, 1},
		{"nexus_lock_releases_total", nil, 1},
		{"nexus_session_renews_total", nil, 1},
		{"nexus_session_invalidations_total", map[string]string{"reason": "destroy"}, 1},
		{"nexus_sessions", nil, 1},
		{"nexus_locks_held", nil, 0},
		{"nexus_lock_delays", nil, 1},
	} {
		if got := metrictest.Value(t, r.reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
