package registry_test

import (
	"testing"

	"github.com/nexus/nexus/registry"
)

type counts struct{ services, instances, config, routes, passing, warning, critical int }

func readCounts(s *registry.Store) counts {
	tx := s.ReadTxn()
	defer tx.Abort()
	var c counts
	c.services, c.instances, c.config, c.routes = tx.Counts()
	c.passing, c.warning, c.critical = tx.StatusCounts()
	return c
}

// TestStore_Counts: the counts follow every kind of write (they are kept
// from each transaction's changes, not counted on read) and are recounted
// by a restore.
func TestStore_Counts(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	steps := []struct {
		name string
		fn   func(tx *registry.Tx)
		want counts
	}{
		{"empty", nil, counts{}},
		{"register two services", func(tx *registry.Tx) {
			tx.RegisterInstance(inst("web", "web-1", "http"))
			tx.RegisterInstance(inst("web", "web-2", "http"))
			tx.RegisterInstance(inst("db", "db-1", "postgres"))
		}, counts{services: 2, instances: 3, passing: 3}},
		{"re-register is no new instance", func(tx *registry.Tx) {
			tx.RegisterInstance(inst("web", "web-1", "http"))
		}, counts{services: 2, instances: 3, passing: 3}},
		{"status changes", func(tx *registry.Tx) {
			tx.SetStatus("web", "web-1", registry.StatusWarning, "")
			tx.SetStatus("db", "db-1", registry.StatusCritical, "")
		}, counts{services: 2, instances: 3, passing: 1, warning: 1, critical: 1}},
		{"config and routes", func(tx *registry.Tx) {
			tx.ConfigSet([]registry.ConfigWrite{{Key: "a", Value: []byte(`1`)}, {Key: "b", Value: []byte(`1`)}})
			tx.UpsertRoute(registry.Route{ID: "r1", Service: "web"}, false)
		}, counts{services: 2, instances: 3, config: 2, routes: 1, passing: 1, warning: 1, critical: 1}},
		{"created and deleted in one transaction", func(tx *registry.Tx) {
			tx.ConfigSet([]registry.ConfigWrite{{Key: "c", Value: []byte(`1`)}})
			tx.ConfigDelete("c", nil)
			tx.ConfigDelete("a", nil)
			tx.DeleteRoute("r1")
		}, counts{services: 2, instances: 3, config: 1, passing: 1, warning: 1, critical: 1}},
		{"deregister the last instance of a service", func(tx *registry.Tx) {
			tx.DeregisterInstance("db", "db-1")
		}, counts{services: 1, instances: 2, config: 1, passing: 1, warning: 1}},
		{"deregister a service", func(tx *registry.Tx) {
			tx.DeregisterService("web")
		}, counts{config: 1}},
	}
	for i, st := range steps {
		if st.fn != nil {
			write(t, s, uint64(i+1), st.fn)
		}
		if got := readCounts(s); got != st.want {
			t.Fatalf("%s: counts %+v, want %+v", st.name, got, st.want)
		}
	}

	// A restore brings its own counts.
	src := registry.NewStore()
	populate(t, src)
	tx := src.ReadTxn()
	d := tx.Dump()
	tx.Abort()
	want := readCounts(src)
	if want != (counts{services: 2, instances: 3, config: 1, routes: 1, passing: 2, warning: 1}) {
		t.Fatalf("populated counts %+v", want)
	}
	if err := s.Restore(func(tx *registry.Tx) error { return tx.Load(d) }); err != nil {
		t.Fatal(err)
	}
	if got := readCounts(s); got != want {
		t.Fatalf("after restore: %+v, want %+v", got, want)
	}
}
