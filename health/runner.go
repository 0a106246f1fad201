package health

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Runner runs the checks of the instances this node owns and keeps the
// catalog in line with them. Only status changes are committed, never a
// heartbeat or a check run that changes nothing.
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
}

// checkState is what this node believes about one owned instance.
type checkState struct {
	service, id string
	def         registry.Check // the check definition it runs
	hasCheck    bool
	status      string // what the check says
	output      string
	ttlDeadline time.Time
	stop        context.CancelFunc // stops the probe goroutine
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
		committing: map[string]string{},
	}
}

// Run syncs probes with the catalog and corrects the catalog from the checks
// until ctx ends: on every change of this node's instances, on every check
// result that changes a status, and every AntiEntropyInterval.
func (r *Runner) Run(ctx context.Context) {
	defer r.stopAll()
	retry := time.Duration(0)
	for {
		ws := memdb.NewWatchSet()
		tx := r.deps.Store.ReadTxn()
		owned := tx.InstancesByNode(ws, r.node)
		tx.Abort()
		ws.Add(r.deps.Store.AbandonCh())
		r.sync(ctx, owned)
		failed := r.reconcile(ctx, owned)
		r.m.rounds.Inc()
		wait := r.deps.AntiEntropyInterval
		if failed {
			// The leader may be changing: retry soon, backing off.
			retry = min(max(2*retry, 500*time.Millisecond), 5*time.Second)
			wait = retry
		} else {
			retry = 0
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		select {
		case <-ws.WatchCh(wctx):
		case <-r.wake:
		case <-wctx.Done():
		}
		cancel()
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

// sync starts probes for new or changed checks and stops those of
// instances this node no longer owns.
func (r *Runner) sync(ctx context.Context, owned []registry.Instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	now := r.deps.Clock.Now()
	for _, in := range owned {
		k := key(in.Service, in.ID)
		seen[k] = true
		var def registry.Check
		hasCheck := len(in.Checks) > 0
		if hasCheck {
			def = definition(in.Checks[0])
		}
		cur, ok := r.checks[k]
		if ok && cur.hasCheck == hasCheck && cur.def == def {
			continue
		}
		if ok && cur.stop != nil {
			cur.stop()
		}
		st := &checkState{service: in.Service, id: in.ID, def: def, hasCheck: hasCheck, status: in.Status}
		if hasCheck && len(in.Checks) > 0 {
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
	}
	for k, st := range r.checks {
		if !seen[k] {
			if st.stop != nil {
				st.stop()
			}
			delete(r.checks, k)
		}
	}
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

// reconcile commits the status of every owned instance whose catalog status
// differs from what its check says. It reports whether a commit failed.
func (r *Runner) reconcile(ctx context.Context, owned []registry.Instance) bool {
	failed := false
	for _, in := range owned {
		r.mu.Lock()
		st, ok := r.checks[key(in.Service, in.ID)]
		var status, output string
		if ok {
			status, output = st.status, st.output
		}
		r.mu.Unlock()
		if !ok || status == "" || status == in.Status {
			continue
		}
		// owned may be a moment old: a heartbeat may have committed the
		// change since. Compare with the replica as it is now.
		tx := r.deps.Store.ReadTxn()
		cur := tx.Instance(nil, in.Service, in.ID)
		tx.Abort()
		if cur == nil || cur.Status == status {
			continue
		}
		if err := r.commitStatus(ctx, in.Service, in.ID, cur.Status, status, output); err != nil {
			failed = true
		}
	}
	return failed
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
		r.mu.Unlock()
		// Not synced yet (just registered): sync now from the store.
		tx := r.deps.Store.ReadTxn()
		owned := tx.InstancesByNode(nil, r.node)
		tx.Abort()
		r.sync(ctx, owned)
		r.mu.Lock()
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
	if cur.Status == status {
		return nil
	}
	return r.commitStatus(ctx, service, id, cur.Status, status, output)
}
