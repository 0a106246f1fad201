package health

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"

	"github.com/nexus/nexus/cluster/member"
)

// Leader runs the health duties that only the Raft leader performs: it marks
// instances of failed nodes critical, deregisters instances of nodes that
// left, and reaps instances critical for longer than their
// deregister_critical_after. A new leader reconciles every member at once,
// since events during the election are lost. It is a leader duty: the
// cluster's leadership loop runs it while this node leads.
type Leader struct {
	deps   Deps
	logger *slog.Logger
	m      *metrics
	// criticalSince is when this leader first saw an instance critical; it
	// restarts on every leadership change, so a reap can only come late.
	criticalSince map[string]time.Time
	// The failed-node pass walks every instance (there is no index by
	// node): it runs when the set of failed and left nodes changes, after
	// a failed commit, and every nodePassEvery while any such node is
	// known, not on every round.
	passNodes  string
	passAt     time.Time
	passFailed bool
}

// nodePassEvery bounds how long an instance of a failed node registered
// late (replicated after the pass) stays unmarked.
const nodePassEvery = 10 * time.Second

// NewLeader returns the leader duties; they share the runner's metrics.
func NewLeader(deps Deps, r *Runner) *Leader {
	if deps.Clock == nil {
		deps.Clock = realClock{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Leader{deps: deps, logger: deps.Logger, m: r.m, criticalSince: map[string]time.Time{}}
}

// Name is the duty's name.
func (l *Leader) Name() string { return "health-leader" }

// Run evaluates at once, then on every membership change and every second
// (deregister_critical_after is a clock condition), until ctx ends: the
// leadership loop runs it while this node leads. What it observed (since
// when an instance is critical) is forgotten when it returns.
func (l *Leader) Run(ctx context.Context) {
	// What this leadership observed is forgotten with it: a new leader
	// starts critical-since times afresh and looks at failed nodes again.
	defer func() {
		clear(l.criticalSince)
		l.passNodes = ""
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		l.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-l.deps.Membership.Changes():
		case <-tick.C:
		}
	}
}

// reconcile looks at what it may act on: the critical instances (an index
// that holds only those) every round, and the instances of failed and left
// nodes when that set changes (and every nodePassEvery while it is not
// empty). It used to copy the whole catalog every second.
func (l *Leader) reconcile(ctx context.Context) {
	statuses := l.deps.Membership.MemberStatuses()
	self := l.deps.Membership.NodeName()
	nodes := make([]string, 0, len(statuses))
	for node, st := range statuses {
		// Only a failure counts: a suspect node (no recent ack) may be
		// fine, and alive or suspect, its owner's checks decide.
		if node != self && (st == member.Failed || st == member.Left) {
			nodes = append(nodes, node)
		}
	}
	sort.Strings(nodes)
	now := l.deps.Clock.Now()
	passKey := strings.Join(nodes, ",")
	pass := len(nodes) > 0 && (passKey != l.passNodes || l.passFailed || now.Sub(l.passAt) >= nodePassEvery)
	// The stored objects are immutable: keep pointers, copy nothing.
	var toMark, toDeregister, critical []*registry.Instance
	tx := l.deps.Store.ReadTxn()
	for _, node := range nodes {
		if !pass {
			break
		}
		tx.EachInstanceOfNode(node, func(in *registry.Instance) bool {
			if statuses[node] == member.Left {
				toDeregister = append(toDeregister, in)
			} else if in.CheckStatus() != registry.StatusCritical {
				toMark = append(toMark, in)
			}
			return true
		})
	}
	tx.EachCriticalInstance(func(in *registry.Instance) bool {
		if in.Node == self || statuses[in.Node] != member.Left {
			critical = append(critical, in)
		}
		return true
	})
	tx.Abort()
	failed := false
	for _, in := range toMark {
		if l.setCritical(ctx, in) {
			l.m.marked.Inc()
			critical = append(critical, in) // critical from now on
		} else {
			failed = true
		}
	}
	for _, in := range toDeregister {
		if !l.deregister(ctx, in, "its node left the cluster") {
			failed = true
		}
	}
	if pass {
		l.passNodes, l.passAt, l.passFailed = passKey, now, failed
	}
	seen := make(map[string]bool, len(critical))
	for _, in := range critical {
		k := key(in.Service, in.ID)
		seen[k] = true
		since, ok := l.criticalSince[k]
		if !ok {
			l.criticalSince[k] = now
			continue
		}
		if in.DeregisterCriticalAfter == "" {
			continue
		}
		dca, err := time.ParseDuration(in.DeregisterCriticalAfter)
		if err != nil || now.Sub(since) < dca {
			continue
		}
		if l.deregister(ctx, in, fmt.Sprintf("critical for more than %s", in.DeregisterCriticalAfter)) {
			l.m.reaped.Inc()
		}
	}
	for k := range l.criticalSince {
		if !seen[k] {
			delete(l.criticalSince, k)
		}
	}
}

func (l *Leader) setCritical(ctx context.Context, in *registry.Instance) bool {
	out := fmt.Sprintf("node %s failed (gossip)", in.Node)
	b, err := l.deps.Codec.Encode(command.TypeSetStatus, &command.SetStatus{
		Meta:    command.Meta{Actor: command.ActorLeader, Node: l.deps.Membership.NodeName(), Time: l.deps.Clock.Now().UnixNano()},
		Service: in.Service, ID: in.ID, Status: registry.StatusCritical, Output: out,
	})
	if err != nil {
		return false
	}
	if !l.apply(ctx, b) {
		return false
	}
	l.m.transitions.WithLabelValues(in.Service, registry.StatusCritical).Inc()
	l.logger.Info("marked instance critical: its node failed", "service", in.Service, "id", in.ID, "node", in.Node)
	return true
}

func (l *Leader) deregister(ctx context.Context, in *registry.Instance, why string) bool {
	b, err := l.deps.Codec.Encode(command.TypeDeregisterInstance, &command.DeregisterInstance{
		Meta:    command.Meta{Actor: command.ActorLeader, Node: l.deps.Membership.NodeName(), Time: l.deps.Clock.Now().UnixNano()},
		Service: in.Service, ID: in.ID,
	})
	if err != nil {
		return false
	}
	if !l.apply(ctx, b) {
		return false
	}
	l.logger.Info("deregistered instance", "service", in.Service, "id", in.ID, "node", in.Node, "reason", why)
	return true
}

func (l *Leader) apply(ctx context.Context, b []byte) bool {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := l.deps.Writer.Apply(cctx, b)
	if err == nil && res != nil && res.Err != nil && res.Err.Code != command.CodeNotFound {
		err = res.Err
	}
	if err != nil {
		l.m.commitErrs.Inc()
		l.logger.Warn("leader health duty failed; retrying next round", "err", err)
		return false
	}
	return true
}
