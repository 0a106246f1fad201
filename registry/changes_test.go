package registry_test

import (
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/nexus/nexus/registry"
)

// recorder is a Listener that writes down what it hears.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Changed(index uint64, changes []registry.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range changes {
		r.events = append(r.events, fmt.Sprintf("%d %s", index, describe(c)))
	}
}

func (r *recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "reset")
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func describe(c registry.Change) string {
	verb := func(before, after bool) string {
		switch {
		case !before:
			return "create"
		case !after:
			return "delete"
		}
		return "update"
	}
	if b, a := c.InstanceChange(); b != nil || a != nil {
		x := a
		if x == nil {
			x = b
		}
		return fmt.Sprintf("%s instance %s/%s %s", verb(b != nil, a != nil), x.Service, x.ID, x.Status)
	}
	if b, a := c.RouteChange(); b != nil || a != nil {
		x := a
		if x == nil {
			x = b
		}
		return fmt.Sprintf("%s route %s", verb(b != nil, a != nil), x.ID)
	}
	if b, a := c.ConfigChange(); b != nil || a != nil {
		x := a
		if x == nil {
			x = b
		}
		return fmt.Sprintf("%s config %s", verb(b != nil, a != nil), x.Key)
	}
	switch x := c.After.(type) {
	case *registry.Service:
		return fmt.Sprintf("%s service %s", verb(c.Before != nil, true), x.Name)
	}
	if x, ok := c.Before.(*registry.Service); ok {
		return "delete service " + x.Name
	}
	return fmt.Sprintf("other %T %T", c.Before, c.After)
}

// TestStore_ListenersHearEachCommit: a listener hears what each committed
// transaction changed (instances, services, routes, config; never the
// audit backlog or bookkeeping rows), with the transaction's index, once
// per object; nothing of an aborted transaction; a reset on restore; and
// nothing after it stopped.
func TestStore_ListenersHearEachCommit(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	rec := &recorder{}
	stop := s.Listen(rec)
	steps := []struct {
		name  string
		run   func(t *testing.T)
		wants []string
	}{
		{"register creates the service", func(t *testing.T) { mustRegister(t, s, 1, inst("web", "web-1", "http")) },
			[]string{"1 create instance web/web-1 passing", "1 create service web"}},
		{"two writes in one transaction: one change per object", func(t *testing.T) {
			write(t, s, 2, func(tx *registry.Tx) {
				tx.RegisterInstance(inst("web", "web-2", "http"))
				tx.SetStatus("web", "web-2", registry.StatusCritical, "down")
				tx.ConfigSet([]registry.ConfigWrite{{Key: "app/k", Value: []byte(`1`)}})
				tx.AppendAudit([]registry.AuditRecord{{Index: 2, Action: "set"}})
			})
		}, []string{"2 create instance web/web-2 critical", "2 update service web", "2 create config app/k"}},
		{"aborted: nothing", func(t *testing.T) {
			tx := s.WriteTxn(3)
			tx.ConfigSet([]registry.ConfigWrite{{Key: "app/j", Value: []byte(`1`)}})
			tx.Abort()
		}, nil},
		{"route and deregister", func(t *testing.T) {
			write(t, s, 4, func(tx *registry.Tx) {
				tx.UpsertRoute(registry.Route{ID: "r1", Service: "web"}, true)
				tx.DeregisterService("web")
			})
		}, []string{"4 create route r1", "4 delete instance web/web-1 passing", "4 delete instance web/web-2 critical", "4 delete service web"}},
		{"restore resets", func(t *testing.T) {
			if err := s.Restore(func(tx *registry.Tx) error { return tx.Load(&registry.Dump{}) }); err != nil {
				t.Fatal(err)
			}
		}, []string{"reset"}},
		{"stopped: nothing", func(t *testing.T) {
			stop()
			mustRegister(t, s, 5, inst("db", "db-1", "postgres"))
		}, nil},
	}
	for _, st := range steps {
		st.run(t)
		if got := rec.take(); !reflect.DeepEqual(got, st.wants) {
			t.Fatalf("%s: heard %q, want %q", st.name, got, st.wants)
		}
	}
}
