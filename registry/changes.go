package registry

import (
	"sync"

	"github.com/hashicorp/go-memdb"
)

// Change is one object that a committed write transaction created (Before
// is nil), replaced, or deleted (After is nil): an *Instance, *Service,
// *Route, *ConfigEntry or an ACL object. Both are the stored objects, shared
// with readers: never modify them.
type Change struct {
	Before, After any
}

// Listener follows the store incrementally instead of re-reading it: a
// component that keeps something derived from the catalog (the health
// runner's probes, the gateway's routing table) updates only what a write
// changed, so the cost of a write does not grow with the catalog.
//
// Both methods run on the writer's goroutine (Raft's FSM), after the
// transaction is visible to readers: they must be quick and must not block
// or read the store. Record what changed and signal a goroutine of your own.
type Listener interface {
	// Changed reports what the transaction that ended with Raft index
	// index changed (objects of the audit backlog and bookkeeping rows
	// are left out).
	Changed(index uint64, changes []Change)
	// Reset reports that a restore replaced the whole state: re-read it.
	Reset()
}

// listeners are the store's listeners; a copy-on-write slice so that
// publishing takes no lock that Listen could hold for long.
type listeners struct {
	mu   sync.Mutex
	list []*listenerEntry
}

type listenerEntry struct{ l Listener }

// Listen registers l until the returned function is called. A listener
// sees every transaction committed after Listen returns; one that reads
// the store after Listen returns and then applies the changes it is told
// about misses nothing (a change may reach it twice: apply it idempotently).
func (s *Store) Listen(l Listener) (stop func()) {
	e := &listenerEntry{l: l}
	s.ls.mu.Lock()
	s.ls.list = append(append([]*listenerEntry(nil), s.ls.list...), e)
	s.ls.mu.Unlock()
	return func() {
		s.ls.mu.Lock()
		defer s.ls.mu.Unlock()
		out := make([]*listenerEntry, 0, len(s.ls.list))
		for _, x := range s.ls.list {
			if x != e {
				out = append(out, x)
			}
		}
		s.ls.list = out
	}
}

func (s *Store) current() []*listenerEntry {
	s.ls.mu.Lock()
	defer s.ls.mu.Unlock()
	return s.ls.list
}

// publish hands the changes of a committed transaction to the listeners.
func (s *Store) publish(index uint64, mc memdb.Changes) {
	ls := s.current()
	if len(ls) == 0 || len(mc) == 0 {
		return
	}
	out := make([]Change, 0, len(mc))
	for _, c := range mc {
		switch c.Table {
		case tableAuditState, tableIndex, tableCounts, tableMeta:
			continue
		}
		out = append(out, Change{Before: c.Before, After: c.After})
	}
	if len(out) == 0 {
		return
	}
	for _, e := range ls {
		e.l.Changed(index, out)
	}
}

func (s *Store) publishReset() {
	for _, e := range s.current() {
		e.l.Reset()
	}
}

// InstanceChange returns the instance before and after a change, both nil
// when the change is not of an instance.
func (c Change) InstanceChange() (before, after *Instance) {
	before, _ = c.Before.(*Instance)
	after, _ = c.After.(*Instance)
	return before, after
}

// RouteChange returns the route before and after a change, both nil when
// the change is not of a route.
func (c Change) RouteChange() (before, after *Route) {
	before, _ = c.Before.(*Route)
	after, _ = c.After.(*Route)
	return before, after
}

// ConfigChange returns the config entry before and after a change, both
// nil when the change is not of a config entry.
func (c Change) ConfigChange() (before, after *ConfigEntry) {
	before, _ = c.Before.(*ConfigEntry)
	after, _ = c.After.(*ConfigEntry)
	return before, after
}
