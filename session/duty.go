// Package session holds the leader's session duty: it times session TTLs
// and lock delays on the leader's clock and proposes the invalidations and
// lock-delay ends through Raft; and the session metrics every node keeps.
//
// Only the leader times anything, with its monotonic clock, from the moment
// it observes a session (or its last renew, or a lock delay) in its own
// replica: a new leader starts every timer afresh, so a session ends late,
// never early, and never because of clock skew between nodes
// (docs/sessions.md). Apply itself never reads a clock: a TTL invalidation
// names the renew index it timed, and Apply ignores it if the session was
// renewed since.
//
// The package depends on the domain (registry, fsm/command) and on small
// function-shaped dependencies; it never imports the cluster.
package session

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nexus/nexus/cluster/member"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Actor is the audit actor of the duty's commands.
const Actor = command.ActorLeader

// State is the replicated state the duty reads.
type State interface {
	// Sessions returns every session and every lock delay of the local
	// replica, and a comparable value that changes when the whole state
	// was replaced (a snapshot restore): every timer then restarts.
	Sessions() ([]registry.Session, []registry.LockDelay, any)
}

// StoreState reads a registry store.
type StoreState struct{ Store *registry.Store }

// Sessions implements State; the store's abandon channel is the generation.
func (s StoreState) Sessions() ([]registry.Session, []registry.LockDelay, any) {
	gen := s.Store.AbandonCh()
	tx := s.Store.ReadTxn()
	defer tx.Abort()
	return tx.Sessions(nil), tx.LockDelays(nil), gen
}

// Deps are what the duty needs.
type Deps struct {
	State State
	// Apply commits an encoded command through Raft (cluster.Node.Apply).
	Apply func(ctx context.Context, cmd []byte) (*command.Result, error)
	// Members maps member names to alive, suspect, failed or left
	// (cluster.Node.MemberStatuses). Only failed and left end sessions.
	Members func() map[string]member.Status
	Codec   *command.Codec
	// Node is this node's name (the proposer in audit records).
	Node    string
	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock (default time.Now; its monotonic reading times).
	Now func() time.Time
	// Tick is how often the duty looks at the state and the members
	// (default 250ms): a timer fires at most this late.
	Tick time.Duration
	// ApplyTimeout bounds each proposal (default 10s).
	ApplyTimeout time.Duration
	// Parallel bounds the proposals in flight at once (default 16).
	Parallel int
}

// Duty is the leader's session duty. Run it only while the node leads;
// the context ends when leadership does. A Duty is reused across
// leaderships: each Run starts from nothing.
type Duty struct {
	deps Deps
	log  *slog.Logger
}

// NewDuty returns the duty.
func NewDuty(deps Deps) *Duty {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Tick <= 0 {
		deps.Tick = 250 * time.Millisecond
	}
	if deps.ApplyTimeout <= 0 {
		deps.ApplyTimeout = 10 * time.Second
	}
	if deps.Parallel <= 0 {
		deps.Parallel = 16
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Duty{deps: deps, log: deps.Logger}
}

// timer is one session's TTL as this leader times it.
type timer struct {
	renewIndex uint64
	deadline   time.Time
}

// delayTimer is one key's lock delay as this leader times it.
type delayTimer struct {
	index    uint64
	deadline time.Time
}

// run is the state of one leadership.
type run struct {
	gen      any
	sessions map[string]timer
	delays   map[string]delayTimer
}

func newRun() *run {
	return &run{sessions: map[string]timer{}, delays: map[string]delayTimer{}}
}

// Name names the duty in the leadership loop's logs and metrics.
func (d *Duty) Name() string { return "sessions" }

// Run times sessions and lock delays until ctx ends.
func (d *Duty) Run(ctx context.Context) {
	d.log.Info("session duty running (this node leads)")
	defer d.log.Info("session duty stopped")
	r := newRun()
	t := time.NewTicker(d.deps.Tick)
	defer t.Stop()
	for {
		d.step(ctx, r)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// proposal is one command the step wants committed.
type proposal struct {
	kind string // ttl, node_failed, node_left, lock_delay_end
	id   string
	t    command.Type
	msg  any
}

// step looks at the state once and proposes what is due.
func (d *Duty) step(ctx context.Context, r *run) {
	now := d.deps.Now()
	sessions, delays, gen := d.deps.State.Sessions()
	if gen != r.gen {
		// A new leadership, or a restored snapshot: every timer starts now.
		r.gen = gen
		clear(r.sessions)
		clear(r.delays)
	}
	members := d.deps.Members()
	var props []proposal
	seen := make(map[string]bool, len(sessions))
	for _, s := range sessions {
		seen[s.ID] = true
		switch members[s.Node] {
		case member.Failed:
			props = append(props, d.invalidation(s.ID, registry.ReasonNodeFailed, nil, now))
			continue
		case member.Left:
			props = append(props, d.invalidation(s.ID, registry.ReasonNodeLeft, nil, now))
			continue
		}
		ttl := s.TTLDuration()
		if ttl <= 0 {
			continue
		}
		t, ok := r.sessions[s.ID]
		if !ok || t.renewIndex != s.RenewIndex {
			// First seen by this leader, or renewed since: a full TTL from now.
			r.sessions[s.ID] = timer{renewIndex: s.RenewIndex, deadline: now.Add(ttl)}
			continue
		}
		if !now.Before(t.deadline) {
			ri := t.renewIndex
			props = append(props, d.invalidation(s.ID, registry.ReasonTTL, &ri, now))
		}
	}
	for id := range r.sessions {
		if !seen[id] {
			delete(r.sessions, id)
		}
	}
	if p, ok := d.delayEnds(r, delays, now); ok {
		props = append(props, p)
	}
	d.propose(ctx, props)
}

// delayEnds times the lock delays and returns one end for all that are
// due.
func (d *Duty) delayEnds(r *run, delays []registry.LockDelay, now time.Time) (proposal, bool) {
	var due []registry.LockDelay
	seen := make(map[string]bool, len(delays))
	for _, ld := range delays {
		seen[ld.Key] = true
		t, ok := r.delays[ld.Key]
		if !ok || t.index != ld.Index {
			r.delays[ld.Key] = delayTimer{index: ld.Index, deadline: now.Add(time.Duration(ld.Delay))}
			continue
		}
		if !now.Before(t.deadline) {
			due = append(due, registry.LockDelay{Key: ld.Key, Index: ld.Index})
		}
	}
	for k := range r.delays {
		if !seen[k] {
			delete(r.delays, k)
		}
	}
	if len(due) == 0 {
		return proposal{}, false
	}
	return proposal{kind: "lock_delay_end", t: command.TypeLockDelayEnd,
		msg: &command.LockDelayEnd{Meta: d.meta(now), Delays: due}}, true
}

func (d *Duty) meta(now time.Time) command.Meta {
	return command.Meta{Actor: Actor, Node: d.deps.Node, Time: now.UnixNano()}
}

func (d *Duty) invalidation(id, reason string, renewIndex *uint64, now time.Time) proposal {
	return proposal{kind: reason, id: id, t: command.TypeSessionInvalidate,
		msg: &command.SessionInvalidate{Meta: d.meta(now), ID: id, Reason: reason, RenewIndex: renewIndex}}
}

// propose commits the proposals, at most Parallel at once, and waits. A
// failure is logged and counted; the next step proposes again what is
// still due.
func (d *Duty) propose(ctx context.Context, props []proposal) {
	if len(props) == 0 {
		return
	}
	sem := make(chan struct{}, d.deps.Parallel)
	var wg sync.WaitGroup
	for _, p := range props {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d.commit(ctx, p)
		}()
	}
	wg.Wait()
}

func (d *Duty) commit(ctx context.Context, p proposal) {
	res, err := d.apply(ctx, p)
	d.deps.Metrics.proposed(p.kind, err)
	if err != nil {
		d.log.Warn("session duty: proposal failed; retrying at the next step", "kind", p.kind, "session", p.id, "err", err)
		return
	}
	var end fsm.SessionEnded
	switch {
	case p.id == "" || res == nil || !decode(res, &end):
	case end.Invalidated:
		d.log.Info("session invalidated", "session", p.id, "reason", p.kind, "released", end.Released, "deleted", end.Deleted)
	case end.Renewed:
		d.log.Debug("session renewed before its invalidation applied", "session", p.id)
	}
}

func (d *Duty) apply(ctx context.Context, p proposal) (*command.Result, error) {
	b, err := d.deps.Codec.Encode(p.t, p.msg)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, d.deps.ApplyTimeout)
	defer cancel()
	res, err := d.deps.Apply(actx, b)
	if err == nil && res != nil && res.Err != nil {
		err = res.Err
	}
	return res, err
}
