package health

import (
	"context"
	"fmt"
	"log/slog"
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
}

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
	defer clear(l.criticalSince)
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

func (l *Leader) reconcile(ctx context.Context) {
	statuses := l.deps.Membership.MemberStatuses()
	self := l.deps.Membership.NodeName()
	tx := l.deps.Store.ReadTxn()
	var all []registry.Instance
	for _, svc := range tx.Services(nil) {
		all = append(all, tx.ServiceInstances(nil, svc.Name)...)
	}
	tx.Abort()
	now := l.deps.Clock.Now()
	seen := map[string]bool{}
	for _, in := range all {
		k := key(in.Service, in.ID)
		seen[k] = true
		if in.Node != self {
			// Only a failure counts: a suspect node (no recent ack) may be
			// fine, and alive or suspect, its owner's checks decide.
			switch statuses[in.Node] {
			case member.Failed:
				if in.Status != registry.StatusCritical {
					if l.setCritical(ctx, in) {
						l.m.marked.Inc()
						in.Status = registry.StatusCritical
					}
				}
			case member.Left:
				l.deregister(ctx, in, "its node left the cluster")
				continue
			}
		}
		if in.Status != registry.StatusCritical {
			delete(l.criticalSince, k)
			continue
		}
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

func (l *Leader) setCritical(ctx context.Context, in registry.Instance) bool {
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

func (l *Leader) deregister(ctx context.Context, in registry.Instance, why string) bool {
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
