package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nexus/nexus/internal/jepsen/checker"
	"github.com/nexus/nexus/internal/jepsen/client"
	"github.com/nexus/nexus/internal/jepsen/history"
)

// Keys of the lock workload.
const (
	LockKey    = "jepsen/lock/lock"
	CounterKey = "jepsen/lock/counter"
)

// Lock has clients that each hold a session (renewed every TTL/3), take
// turns holding one lock key (PUT /config/{key}?acquire=SESSION) and, while
// holding it, increment a counter through POST /txn: check-session on the
// lock key (the fencing), a get of the lock key (who held it when the
// transaction applied) and a cas on the counter's modify_index; then
// release. After healing, a consistent read of the counter. Checked by
// checker.CheckLock.
//
// Unsafe skips the fencing: the increment is a plain set (no check-session,
// no cas), and a client trusts the lock it acquired until its critical
// section is done, whatever happens to its session meanwhile. Such a run
// must fail under faults that outlast a session (pause, partition, kill);
// it shows that the checker catches unfenced critical sections.
type Lock struct {
	TTL           time.Duration // session TTL (default 10s, the API's minimum)
	LockDelay     time.Duration // default 1s
	Think         time.Duration // mean pause between increments (default 50ms: sections long enough for faults to hit)
	MaxIncrements int           // increments per critical section, 1..MaxIncrements (default 6)
	// TrustFor bounds a critical section: a client keeps trying its
	// increments for that long after acquiring, whatever fails, as a
	// paused or cut-off holder would (default 2×TTL, so that the section
	// outlives its session when a fault does).
	TrustFor time.Duration
	Unsafe   bool

	mu     sync.Mutex
	result *checker.LockResult
}

// Name implements Workload.
func (*Lock) Name() string { return NameLock }

func (w *Lock) defaults() {
	if w.TTL <= 0 {
		w.TTL = 10 * time.Second
	}
	if w.LockDelay <= 0 {
		w.LockDelay = time.Second
	}
	if w.Think <= 0 {
		w.Think = 50 * time.Millisecond
	}
	if w.MaxIncrements <= 0 {
		w.MaxIncrements = 6
	}
	if w.TrustFor <= 0 {
		w.TrustFor = 2 * w.TTL
	}
}

// Run implements Workload.
func (w *Lock) Run(ctx context.Context, env *Env) {
	w.defaults()
	runClients(ctx, env, func(ctx context.Context, env *Env, k int) {
		c := &lockClient{w: w, env: env, k: k, rng: clientRand(env.Seed, NameLock, k), node: env.Nodes[k%len(env.Nodes)],
			proc: env.Rec.NewProcess(), ctx: context.WithoutCancel(ctx)}
		c.run(ctx)
	})
}

// lockClient is one client: its session, and the counter as it last saw
// it.
type lockClient struct {
	w    *Lock
	env  *Env
	k    int
	rng  *rand.Rand
	node Node
	proc int
	// ctx carries the operations: those in flight when the run ends
	// complete (bounded by the client timeout).
	ctx context.Context

	session string
	renewed int64 // when the last renew (or the create) was sent, run time in ns
}

func (c *lockClient) op(f, key string) history.Op {
	return history.Op{Process: c.proc, Workload: NameLock, F: f, Node: c.node.Name, Key: key}
}

// record adds op with r's outcome; after an info the client goes on as a
// new process.
func (c *lockClient) record(op history.Op, r client.Result) history.Op {
	op = record(c.env.Rec, op, r)
	if op.Type == history.Info {
		c.proc = c.env.Rec.NewProcess()
	}
	return op
}

func (c *lockClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		if c.session == "" && !c.createSession() {
			pause(ctx, backoff(c.rng, history.Fail, 0))
			continue
		}
		c.renewIfDue()
		if c.session == "" {
			continue
		}
		sess := c.session
		op := c.op(history.FAcquire, LockKey)
		op.Session, op.Value, op.Invoke = sess, int64(c.k), c.env.Rec.Now()
		r := c.env.Client.Acquire(c.ctx, c.node.HTTPAddr, LockKey, sess, int64(c.k))
		op.Acquired, op.Holder, op.LockIndex, op.ModIndex = r.Done, r.Session, r.LockIndex, r.ModifyIndex
		if r.Type == history.OK && !r.Done {
			r.Code = r.Reason // held, lock_delay
		}
		op = c.record(op, r.Result)
		switch {
		case op.Type == history.OK && r.Done:
			c.critical(ctx, sess)
			c.release(sess)
			pause(ctx, time.Duration(c.rng.Int64N(int64(5*c.w.Think))))
		case op.Type == history.OK && r.Reason == client.LockDelayed:
			pause(ctx, 200*time.Millisecond+time.Duration(c.rng.Int64N(int64(200*time.Millisecond))))
		case op.Type == history.OK:
			// Held: wait until the key changes (a blocking query), at most
			// a while so that the session is renewed in time.
			c.env.Client.WaitKey(ctx, c.node.HTTPAddr, LockKey, r.ModifyIndex, "2s")
		case op.Type == history.Fail && op.Code == client.CodeNotFound:
			c.lost(sess)
		default:
			pause(ctx, backoff(c.rng, op.Type, 0))
		}
	}
}

// createSession creates the client's session; false if it has none.
func (c *lockClient) createSession() bool {
	op := c.op(history.FSessionCreate, "")
	op.Value, op.Invoke = c.w.TTL.Milliseconds(), c.env.Rec.Now()
	r := c.env.Client.CreateSession(c.ctx, c.node.HTTPAddr, fmt.Sprintf("jepsen-lock-%d", c.k), c.w.TTL.String(), c.w.LockDelay.String())
	op.Session = r.ID
	op = c.record(op, r.Result)
	if op.Type != history.OK || r.ID == "" {
		return false
	}
	c.session, c.renewed = r.ID, op.Invoke
	return true
}

// renewIfDue renews the session when a third of its TTL has passed since
// the last renew was sent.
func (c *lockClient) renewIfDue() {
	if c.session == "" || time.Duration(c.env.Rec.Now()-c.renewed) < c.w.TTL/3 {
		return
	}
	sess := c.session
	op := c.op(history.FRenew, "")
	op.Session, op.Invoke = sess, c.env.Rec.Now()
	op = c.record(op, c.env.Client.RenewSession(c.ctx, c.node.HTTPAddr, sess))
	switch {
	case op.Type == history.OK:
		c.renewed = op.Invoke
	case op.Type == history.Fail && op.Code == client.CodeNotFound:
		c.lost(sess)
	}
}

// lost records why the session ended (from the audit trail) and drops it.
func (c *lockClient) lost(sess string) {
	if c.session == sess {
		c.session = ""
	}
	op := c.op(history.FSessionLost, "")
	op.Session, op.Invoke = sess, c.env.Rec.Now()
	r, reason, idx, found := c.env.Client.SessionEnd(c.ctx, c.node.HTTPAddr, sess)
	op.ModIndex = idx
	if r.Type == history.OK {
		r.Code = reason
		if !found {
			r.Code, r.Err = "unknown", "no audit record names the session's end"
		}
	}
	record(c.env.Rec, op, r)
}

// readCounter reads the counter (consistent); ok false when it could not.
func (c *lockClient) readCounter() (value int64, index uint64, ok bool) {
	op, r := readCounter(c.ctx, c.env, c.node, c.op(history.FRead, CounterKey))
	op = c.record(op, r)
	return op.Read, op.ModIndex, op.Type == history.OK
}

// readCounter makes op a consistent read of the counter through node; the
// caller records it.
func readCounter(ctx context.Context, env *Env, node Node, op history.Op) (history.Op, client.Result) {
	op.Invoke = env.Rec.Now()
	r := env.Client.ReadConfig(ctx, node.HTTPAddr, CounterKey)
	op.Present, op.ModIndex = r.Present, r.Entry.ModifyIndex
	if r.Present {
		v, err := r.Entry.IntValue()
		if err != nil {
			r.Type, r.Code, r.Err = history.Fail, client.CodeHTTP, "counter is not an integer: "+err.Error()
		}
		op.Read = v
	}
	return op, r.Result
}

// critical increments the counter 1..MaxIncrements times while sess holds
// the lock as far as the client knows: for up to TrustFor it does not give
// up when its session ends or a request fails (a paused process would not
// notice either), only when the fencing refuses it (check-session). In the
// unsafe mode nothing refuses it, and it goes on with the counter value it
// last knew.
func (c *lockClient) critical(ctx context.Context, sess string) {
	fenced := !c.w.Unsafe
	v, m, known := c.readCounter()
	n := 1 + c.rng.IntN(c.w.MaxIncrements)
	until := c.env.Rec.Now() + int64(c.w.TrustFor)
	for done := 0; done < n && c.env.Rec.Now() < until && ctx.Err() == nil; {
		c.renewIfDue()
		if !known {
			if v, m, known = c.readCounter(); !known {
				pause(ctx, backoff(c.rng, history.Fail, 0))
				continue
			}
		}
		op := c.op(history.FIncr, CounterKey)
		op.Session, op.Value, op.Invoke = sess, v+1, c.env.Rec.Now()
		if fenced {
			op.Expect = &m
		}
		r := c.env.Client.Increment(c.ctx, c.node.HTTPAddr, LockKey, CounterKey, sess, v+1, m, fenced)
		op.Holder, op.LockIndex, op.ModIndex = r.Holder, r.LockIndex, r.Index
		op = c.record(op, r.Result)
		switch {
		case op.Type == history.OK:
			v, m = v+1, r.Counter.ModifyIndex
			done++
		case fenced && r.FailedOp == "check-session":
			return // fenced out: the lock moved on
		case fenced && (op.Type == history.Info || r.FailedOp == "cas"):
			// The counter may have moved (an increment of ours applied
			// after all): read it again.
			known = false
		default:
			pause(ctx, backoff(c.rng, op.Type, 0))
		}
		pause(ctx, time.Duration(c.rng.Int64N(int64(2*c.w.Think))))
	}
}

// release gives the lock up.
func (c *lockClient) release(sess string) {
	op := c.op(history.FRelease, LockKey)
	op.Session, op.Value, op.Invoke = sess, int64(c.k), c.env.Rec.Now()
	r := c.env.Client.Release(c.ctx, c.node.HTTPAddr, LockKey, sess, int64(c.k))
	op.Acquired, op.Holder, op.LockIndex, op.ModIndex = r.Done, r.Session, r.LockIndex, r.ModifyIndex
	c.record(op, r.Result)
}

// Final implements Workload: a consistent read of the counter.
func (w *Lock) Final(ctx context.Context, env *Env) error {
	proc := env.Rec.NewProcess()
	return finalLoop(ctx, env, CounterKey, func(n Node) history.Op {
		op, r := readCounter(ctx, env, n, history.Op{Process: proc, Workload: NameLock, F: history.FRead, Key: CounterKey, Node: n.Name, Final: true})
		return record(env.Rec, op, r)
	})
}

// Check implements Workload.
func (w *Lock) Check(ops []history.Op, _ CheckInput) Result {
	res := checker.CheckLock(ops)
	w.mu.Lock()
	w.result = res
	w.mu.Unlock()
	return Result{Workload: NameLock, Valid: res.Valid, Details: res, Anomaly: res.Anomalies, Summary: LockSummary(res)}
}

// LockSummary is the one-line summary of a lock result.
func LockSummary(res *checker.LockResult) string {
	return fmt.Sprintf("increments acked=%d indeterminate=%d failed=%d (fenced out %d) final=%d handovers=%d sessions=%d lost=%d %v anomalies=%v",
		res.Acked, res.Indefinite, res.Failed, res.FencedOut, res.Final, res.Handovers, res.Sessions, res.LostSessions, res.EndReasons, res.Counts)
}

// WriteArtifacts implements Workload (nothing beyond summary.json).
func (w *Lock) WriteArtifacts(string, CheckInput) error { return nil }
