package health

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Runner runs the checks of the instances this node owns and keeps the
// catalog in line with them. Only status changes are committed, never a
// heartbeat or a check run that changes nothing.
//
// It follows the store incrementally (registry.Listener): a write to an
// instance this node owns costs one look at that instance, whatever the
// size of the catalog. A full pass over the owned instances runs at start,
// after a restore, and every AntiEntropyInterval.
type Runner struct {
	deps   Deps
	node   string
	logger *slog.Logger
	m      *metrics
	prober prober

	mu     sync.Mutex
	checks map[string]*checkState // by service/id
	wake   chan struct{}
	// committing is the status being committed per service/id: a
	// heartbeat and the anti-entropy loop that both see the old status
	// must not both propose the same change.
	committing map[string]string
	// dirty holds the owned instances (service/id) that changed, or whose
	// check result changed, since the loop last looked; full asks for a
	// full pass (start, restore). Under dmu, not mu: the store's listener
	// runs on Raft's apply goroutine and must never wait for a pass.
	dmu   sync.Mutex
	dirty map[string]instanceKey
	full  bool
	// runCtx is Run's context: probes started outside the loop (by a
	// heartbeat of an instance not seen yet) live as long as the loop.
	runCtx context.Context
}

type instanceKey struct{ service, id string }

// checkState is what this node believes about one owned instance.
type checkState struct {
	service, id string
	def         registry.Check // the check definition it runs
	hasCheck    bool
	status      string // what the check says
	output      string
	ttlDeadline time.Time
	stop        context.CancelFunc // stops the probe goroutine
	pass        uint64             // the last full pass that saw it
}

func key(service, id string) string { return service + "/" + id }

// NewRunner returns the check runner of this node.
func NewRunner(deps Deps) *Runner {
	if deps.Clock == nil {
		deps.Clock = realClock{}
	}
	if deps.AntiEntropyInterval == 0 {
		deps.AntiEntropyInterval = 10 * time.Second
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{
		deps: deps, node: deps.Membership.NodeName(), logger: deps.Logger, m: newMetrics(deps.Registerer, deps.Store),
		checks: map[string]*checkState{}, wake: make(chan struct{}, 1), prober: newProber(),
		committing: map[string]string{}, dirty: map[string]instanceKey{},
	}
}

// listener hears the store's commits for the runner: it marks the
// instances of this node that changed.
type listener struct{ r *Runner }

func (l listener) Changed(_ uint64, changes []registry.Change) {
	r := l.r
	marked := false
	for _, c := range changes {
		b, a := c.InstanceChange()
		for _, in := range [...]*registry.Instance{b, a} {
			if in != nil && in.Node == r.node {
				r.markDirty(in.Service, in.ID)
				marked = true
				break
			}
		}
	}
	if marked {
		r.signal()
	}
}

func (l listener) Reset() {
	l.r.dmu.Lock()
	l.r.full = true
	l.r.dmu.Unlock()
	l.r.signal()
}

func (r *Runner) markDirty(service, id string) {
	r.dmu.Lock()
	r.dirty[key(service, id)] = instanceKey{service, id}
	r.dmu.Unlock()
}

// Run syncs probes with the catalog and corrects the catalog from the checks
// until ctx ends: on every change of this node's instances, on every check
// result that changes a status, and every AntiEntropyInterval.
func (r *Runner) Run(ctx context.Context) {
	r.mu.Lock()
	r.runCtx = ctx
	r.mu.Unlock()
	r.dmu.Lock()
	r.full = true
	r.dmu.Unlock()
	stop := r.deps.Store.Listen(listener{r})
	defer stop()
	defer r.stopAll()
	var (
		backoff  time.Duration
		failed   []instanceKey // commits to retry once the backoff passed
		retryAt  time.Time
		nextFull time.Time
		pass     uint64
	)
	for {
		now := time.Now()
		r.dmu.Lock()
		full := r.full || !now.Before(nextFull)
		r.full = false
		keys := r.dirty
		r.dirty = map[string]instanceKey{}
		r.dmu.Unlock()
		if len(failed) > 0 && !now.Before(retryAt) {
			for _, k := range failed {
				keys[key(k.service, k.id)] = k
			}
			failed = nil
		}
		var fails []instanceKey
		if full {
			pass++
			fails = r.fullPass(ctx, pass)
			nextFull = time.Now().Add(r.deps.AntiEntropyInterval)
		} else {
			for _, k := range keys {
				if !r.syncKey(ctx, k.service, k.id) {
					fails = append(fails, k)
				}
			}
		}
		r.m.rounds.Inc()
		if len(fails) > 0 {
			// The leader may be changing: retry those soon, backing off.
			backoff = min(max(2*backoff, 500*time.Millisecond), 5*time.Second)
			failed = append(failed, fails...)
			retryAt = time.Now().Add(backoff)
		} else if len(failed) == 0 {
			backoff = 0
		}
		wait := time.Until(nextFull)
		if len(failed) > 0 {
			wait = min(wait, time.Until(retryAt))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-r.wake:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return
		}
	}
}

func (r *Runner) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// fullPass syncs probes with every instance this node owns, forgets the
// others and commits every status that differs from its check. It returns
// the instances whose commit failed.
func (r *Runner) fullPass(ctx context.Context, pass uint64) []instanceKey {
	var differ []instanceKey
	tx := r.deps.Store.ReadTxn()
	r.mu.Lock()
	now := r.deps.Clock.Now()
	tx.EachInstanceOfNode(r.node, func(in *registry.Instance) bool {
		st := r.syncLocked(ctx, in, now)
		st.pass = pass
		if st.status != "" && st.status != in.CheckStatus() {
			differ = append(differ, instanceKey{in.Service, in.ID})
		}
		return true
	})
	for k, st := range r.checks {
		if st.pass != pass {
			if st.stop != nil {
				st.stop()
			}
			delete(r.checks, k)
		}
	}
	r.m.owned.Set(float64(len(r.checks)))
	r.mu.Unlock()
	tx.Abort()
	var failed []instanceKey
	for _, k := range differ {
		if !r.reconcileKey(ctx, k.service, k.id) {
			failed = append(failed, k)
		}
	}
	return failed
}

// syncKey brings one instance's probe in line with the catalog and commits
// its status if its check disagrees. It reports false when a commit failed.
func (r *Runner) syncKey(ctx context.Context, service, id string) bool {
	tx := r.deps.Store.ReadTxn()
	in := tx.Instance(nil, service, id)
	tx.Abort()
	r.mu.Lock()
	if in == nil || in.Node != r.node {
		r.forgetLocked(key(service, id))
		r.mu.Unlock()
		return true
	}
	r.syncLocked(ctx, in, r.deps.Clock.Now())
	r.mu.Unlock()
	return r.reconcileKey(ctx, service, id)
}

func (r *Runner) forgetLocked(k string) {
	if st, ok := r.checks[k]; ok {
		if st.stop != nil {
			st.stop()
		}
		delete(r.checks, k)
		r.m.owned.Set(float64(len(r.checks)))
	}
}

// syncLocked starts the probe of an owned instance when it is new or its
// check changed, and returns its state. r.mu is held.
func (r *Runner) syncLocked(ctx context.Context, in *registry.Instance, now time.Time) *checkState {
	k := key(in.Service, in.ID)
	var def registry.Check
	hasCheck := len(in.Checks) > 0
	if hasCheck {
		def = definition(in.Checks[0])
	}
	cur, ok := r.checks[k]
	if ok && cur.hasCheck == hasCheck && cur.def == def {
		return cur
	}
	if ok && cur.stop != nil {
		cur.stop()
	}
	st := &checkState{service: in.Service, id: in.ID, def: def, hasCheck: hasCheck, status: in.CheckStatus()}
	if hasCheck {
		st.output = in.Checks[0].Output
	}
	if !hasCheck {
		// No check: the owner vouches for it while it is alive.
		st.status, st.output = registry.StatusPassing, ""
	}
	switch def.Kind {
	case registry.CheckTTL:
		ttl, _ := time.ParseDuration(def.TTL)
		st.ttlDeadline = now.Add(ttl)
		pctx, cancel := context.WithCancel(ctx)
		st.stop = cancel
		go r.watchTTL(pctx, k, ttl)
	case registry.CheckHTTP, registry.CheckTCP:
		pctx, cancel := context.WithCancel(ctx)
		st.stop = cancel
		go r.probeLoop(pctx, k, def)
	}
	r.checks[k] = st
	if !ok {
		r.m.owned.Set(float64(len(r.checks)))
	}
	return st
}

// definition strips a check down to what defines it (not its last result).
func definition(c registry.Check) registry.Check {
	c.Status, c.Output = "", ""
	return c
}

func (r *Runner) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, st := range r.checks {
		if st.stop != nil {
			st.stop()
		}
		delete(r.checks, k)
	}
}

// setResult records a check result; a status change wakes the loop.
func (r *Runner) setResult(k, status, output string) {
	r.mu.Lock()
	st, ok := r.checks[k]
	changed := ok && (st.status != status)
	if ok {
		st.status, st.output = status, output
	}
	r.mu.Unlock()
	if changed {
		r.markDirty(st.service, st.id)
		r.signal()
	}
}

func (r *Runner) watchTTL(ctx context.Context, k string, ttl time.Duration) {
	for {
		r.mu.Lock()
		st, ok := r.checks[k]
		var deadline time.Time
		if ok {
			deadline = st.ttlDeadline
		}
		r.mu.Unlock()
		if !ok {
			return
		}
		wait := deadline.Sub(r.deps.Clock.Now())
		if wait <= 0 {
			r.setResult(k, registry.StatusCritical, fmt.Sprintf("TTL expired: no heartbeat for %s", ttl))
			wait = ttl
		}
		t := r.deps.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

func (r *Runner) probeLoop(ctx context.Context, k string, def registry.Check) {
	interval, err := time.ParseDuration(def.Interval)
	if err != nil || interval <= 0 {
		interval = 10 * time.Second
	}
	timeout, err := time.ParseDuration(def.Timeout)
	if err != nil || timeout <= 0 {
		timeout = 5 * time.Second
	}
	for {
		status, output := r.prober.probe(ctx, def, timeout)
		if ctx.Err() != nil {
			return
		}
		r.m.checkRuns.WithLabelValues(def.Kind, status).Inc()
		r.setResult(k, status, output)
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// reconcileKey commits the status of an owned instance when its catalog
// status differs from what its check says. It reports false when the
// commit failed.
func (r *Runner) reconcileKey(ctx context.Context, service, id string) bool {
	r.mu.Lock()
	st, ok := r.checks[key(service, id)]
	var status, output string
	if ok {
		status, output = st.status, st.output
	}
	r.mu.Unlock()
	if !ok || status == "" {
		return true
	}
	// Compare with the replica as it is now: a heartbeat may have
	// committed the change since the caller looked.
	tx := r.deps.Store.ReadTxn()
	cur := tx.Instance(nil, service, id)
	tx.Abort()
	if cur == nil || cur.CheckStatus() == status {
		return true
	}
	return r.commitStatus(ctx, service, id, cur.CheckStatus(), status, output) == nil
}

func (r *Runner) commitStatus(ctx context.Context, service, id, from, to, output string) error {
	k := key(service, id)
	r.mu.Lock()
	if r.committing[k] == to {
		r.mu.Unlock()
		return nil // the same change is on its way
	}
	r.committing[k] = to
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.committing[k] == to {
			delete(r.committing, k)
		}
		r.mu.Unlock()
	}()
	b, err := r.deps.Codec.Encode(command.TypeSetStatus, &command.SetStatus{
		Meta:    command.Meta{Actor: command.ActorHealth, Node: r.node, Time: r.deps.Clock.Now().UnixNano()},
		Service: service, ID: id, Status: to, Output: output,
	})
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := r.deps.Writer.Apply(cctx, b)
	if err == nil && res != nil && res.Err != nil && res.Err.Code != command.CodeNotFound {
		err = res.Err
	}
	if err != nil {
		r.m.commitErrs.Inc()
		r.logger.Warn("committing health status failed; anti-entropy retries", "service", service, "id", id, "status", to, "err", err)
		return err
	}
	r.m.transitions.WithLabelValues(service, to).Inc()
	r.logger.Info("health status changed", "service", service, "id", id, "from", from, "to", to, "output", output)
	return nil
}

// Heartbeat refreshes the TTL check of an instance this node owns and, when
// the status changes, commits it before returning.
func (r *Runner) Heartbeat(ctx context.Context, service, id, status, output string) error {
	if status == "" {
		status = registry.StatusPassing
	}
	k := key(service, id)
	r.mu.Lock()
	st, ok := r.checks[k]
	if !ok {
		// Not synced yet (just registered): sync this one from the store.
		tx := r.deps.Store.ReadTxn()
		in := tx.Instance(nil, service, id)
		tx.Abort()
		if in != nil && in.Node == r.node {
			pctx := r.runCtx
			if pctx == nil {
				pctx = context.Background() // stopAll still stops its probe
			}
			r.syncLocked(pctx, in, r.deps.Clock.Now())
		}
		st, ok = r.checks[k]
		if !ok {
			r.mu.Unlock()
			return ErrNotFound
		}
	}
	if st.def.Kind != registry.CheckTTL {
		r.mu.Unlock()
		return ErrNoTTLCheck
	}
	ttl, _ := time.ParseDuration(st.def.TTL)
	st.ttlDeadline = r.deps.Clock.Now().Add(ttl)
	st.status, st.output = status, output
	r.mu.Unlock()

	tx := r.deps.Store.ReadTxn()
	cur := tx.Instance(nil, service, id)
	tx.Abort()
	if cur == nil {
		return ErrNotFound
	}
	if cur.CheckStatus() == status {
		return nil
	}
	return r.commitStatus(ctx, service, id, cur.CheckStatus(), status, output)
}
