package gateway

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/nexus/nexus/internal/scaletest"
	"github.com/nexus/nexus/registry"
)

// scaleRoutes are the routing table sizes the cost tests compare: large is
// 20x small (8x under -race); without -race it is above the 512 routed
// services past which the table used to be rebuilt on any instance change
// (below it, on any change of a routed service).
func scaleRoutes() (small, large int) { return scaletest.Sizes(100, 2000) }

func scaleRoute(i int) registry.Route {
	r, e := registry.NormalizeRoute(registry.Route{ID: fmt.Sprintf("r-%d", i), Service: fmt.Sprintf("svc-%d", i),
		Paths: []string{fmt.Sprintf("/svc-%d", i)}})
	if e != nil {
		panic(e)
	}
	return r
}

func scaleEndpoint(i, n int) registry.Instance {
	return registry.Instance{ID: fmt.Sprintf("i-%d-%d", i, n), Service: fmt.Sprintf("svc-%d", i), Type: "http",
		Address: "127.0.0.1", Port: 10000 + n, Node: "n1", Status: registry.StatusPassing,
		Tags: []string{}, Metadata: map[string]string{}, Checks: []registry.Check{}, DependsOn: []string{}}
}

// scaleEnv is a gateway with n routes, each to a service of its own with
// one passing instance.
func scaleEnv(t *testing.T, n int) *env {
	e := newEnv(t, Options{})
	e.write(func(tx *registry.Tx) {
		for i := range n {
			if _, _, _, err := tx.UpsertRoute(scaleRoute(i), false); err != nil {
				t.Fatal(err)
			}
			if _, _, err := tx.RegisterInstance(scaleEndpoint(i, 0)); err != nil {
				t.Fatal(err)
			}
		}
	})
	if got := len(e.g.Table().routes); got != n {
		t.Fatalf("table has %d routes, want %d", got, n)
	}
	return e
}

// gatewayChangeCost returns the bytes allocated per change, each waited
// for until the table reflects it, in a gateway of n routes.
func gatewayChangeCost(t *testing.T, n, k int, change func(tx *registry.Tx, j int)) uint64 {
	e := scaleEnv(t, n)
	return scaletest.Allocated(func() {
		for j := range k {
			e.write(func(tx *registry.Tx) { change(tx, j) })
		}
	}) / uint64(k)
}

// TestGatewayUpdateCostFlat: an instance change of one routed service, and
// a change of one route that keeps its matching, cost about the same with
// 100 routes as with 2,000. Before the table was updated incrementally,
// each was a full rebuild: 252 KB per instance change with 100 routes, 5.3
// MB with 2,000. (A route that comes, goes or changes its matching still
// rebuilds the router, O(routes): 60 KB with 100 routes, 732 KB with
// 2,000.)
func TestGatewayUpdateCostFlat(t *testing.T) {
	small, large := scaleRoutes()
	tests := []struct {
		name   string
		change func(tx *registry.Tx, j int)
	}{
		{"instance registered", func(tx *registry.Tx, j int) {
			if _, _, err := tx.RegisterInstance(scaleEndpoint(j%small, j+1)); err != nil {
				t.Fatal(err)
			}
		}},
		{"route changed", func(tx *registry.Tx, j int) {
			r := scaleRoute(j % small)
			r.Timeout = fmt.Sprintf("%ds", 10+j)
			if _, _, _, err := tx.UpsertRoute(r, false); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs := gatewayChangeCost(t, small, 30, tc.change)
			cl := gatewayChangeCost(t, large, 30, tc.change)
			t.Logf("bytes per change: %d with %d routes, %d with %d (%.1fx)", cs, small, cl, large, float64(cl)/float64(cs))
			if cl > 3*cs {
				t.Fatalf("a change costs %.1fx more with %d routes than with %d", float64(cl)/float64(cs), large, small)
			}
		})
	}
}

// describe renders what a table serves: per route its service, timeout
// and endpoints, and which route the router picks for each route's paths
// and hosts.
func describe(t *Table) map[string]string {
	out := map[string]string{}
	for id, slot := range t.routes {
		r := slot.Load()
		var eps []string
		for _, ep := range r.endpoints {
			eps = append(eps, ep.id+"@"+ep.up.addr)
		}
		slices.Sort(eps)
		out[id] = fmt.Sprintf("service=%s timeout=%s endpoints=%v", r.service, r.timeout, eps)
		hosts := r.spec.Hosts
		if len(hosts) == 0 {
			hosts = []string{"any.example"}
		}
		for _, h := range hosts {
			for _, p := range r.spec.Paths {
				m, ok := t.router.Match([]byte(h), []byte(p), []byte("GET"))
				got := "none"
				if ok {
					got = m.Value.Load().id
				}
				out[id+" "+h+p] = got
			}
		}
	}
	return out
}

// TestIncrementalTableMatchesFullBuild: after each kind of change, the
// table the watcher updated incrementally serves exactly what a table
// built from scratch serves.
func TestIncrementalTableMatchesFullBuild(t *testing.T) {
	e := newEnv(t, Options{})
	route := func(id, svc, path string, hosts ...string) registry.Route {
		r, verr := registry.NormalizeRoute(registry.Route{ID: id, Service: svc, Paths: []string{path}, Hosts: hosts})
		if verr != nil {
			t.Fatal(verr)
		}
		return r
	}
	ep := func(svc, id string, port int, status string) registry.Instance {
		in := scaleEndpoint(0, port)
		in.Service, in.ID, in.Status = svc, id, status
		return in
	}
	must := func(err *registry.Error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		fn   func(tx *registry.Tx)
	}{
		{"routes and instances", func(tx *registry.Tx) {
			_, _, _, err := tx.UpsertRoute(route("r1", "a", "/a"), false)
			must(err)
			_, _, _, err = tx.UpsertRoute(route("r2", "b", "/b", "x.example"), false)
			must(err)
			_, _, err = tx.RegisterInstance(ep("a", "a1", 1, registry.StatusPassing))
			must(err)
			_, _, err = tx.RegisterInstance(ep("b", "b1", 2, registry.StatusPassing))
			must(err)
		}},
		{"instances come and fail", func(tx *registry.Tx) {
			_, _, err := tx.RegisterInstance(ep("a", "a2", 3, registry.StatusPassing))
			must(err)
			_, _, err = tx.RegisterInstance(ep("b", "b2", 4, registry.StatusCritical))
			must(err)
			_, _, err = tx.SetStatus("a", "a1", registry.StatusCritical, "")
			must(err)
		}},
		{"a route's timeout", func(tx *registry.Tx) {
			r := route("r1", "a", "/a")
			r.Timeout = "7s"
			_, _, _, err := tx.UpsertRoute(r, false)
			must(err)
		}},
		{"a route's path", func(tx *registry.Tx) {
			_, _, _, err := tx.UpsertRoute(route("r2", "b", "/bb", "x.example"), false)
			must(err)
		}},
		{"a route moves to another service", func(tx *registry.Tx) {
			_, _, _, err := tx.UpsertRoute(route("r1", "b", "/a"), false)
			must(err)
			_, _, err = tx.RegisterInstance(ep("a", "a3", 5, registry.StatusPassing))
			must(err)
		}},
		{"a route goes", func(tx *registry.Tx) {
			_, err := tx.DeleteRoute("r2")
			must(err)
		}},
		{"a service goes", func(tx *registry.Tx) {
			_, err := tx.DeregisterService("b")
			must(err)
		}},
		{"gateway config", func(tx *registry.Tx) {
			_, _, err := tx.ConfigSet([]registry.ConfigWrite{{Key: "gateway/api-keys/k1", Value: []byte(`{"key":"0123456789abcdef0123","consumer":"c"}`)}})
			must(err)
			_, _, _, err = tx.UpsertRoute(route("r3", "a", "/c", "y.example"), false)
			must(err)
		}},
	}
	for _, st := range steps {
		e.write(st.fn)
		tx := e.store.ReadTxn()
		fresh := newBuilder(e.g).full(tx)
		tx.Abort()
		got, want := describe(e.g.Table()), describe(fresh)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after %s: incremental table\n%v\nfull build\n%v", st.name, got, want)
		}
	}
}

// TestSweepDropsUnusedUpstreams: an incremental update leaves the upstream
// of a deregistered instance in the pool (dropping it would need a walk of
// every route); the sweep that follows drops it and its idle connections.
func TestSweepDropsUnusedUpstreams(t *testing.T) {
	e := newEnv(t, Options{})
	e.route(registry.Route{ID: "r1", Service: "svc-0", Paths: []string{"/a"}})
	e.write(func(tx *registry.Tx) {
		for n := range 2 {
			if _, _, err := tx.RegisterInstance(scaleEndpoint(0, n)); err != nil {
				t.Fatal(err)
			}
		}
	})
	// Stop the watcher: the builder is the test's from here on.
	e.g.cancel()
	e.g.wg.Wait()
	b := e.g.builder
	pooled := func(addr string) bool {
		b.pool.mu.Lock()
		defer b.pool.mu.Unlock()
		return b.pool.m[addr] != nil
	}
	gone := scaleEndpoint(0, 1)
	addr := fmt.Sprintf("%s:%d", gone.Address, gone.Port)
	if !pooled(addr) {
		t.Fatalf("%s not pooled", addr)
	}
	e.writeNoWait(func(tx *registry.Tx) {
		if _, err := tx.DeregisterInstance(gone.Service, gone.ID); err != nil {
			t.Fatal(err)
		}
	})
	tbl, _ := b.apply(&changes{services: map[string]bool{gone.Service: true}, index: e.index}, e.g.Table())
	if eps := tbl.routes["r1"].Load().endpoints; len(eps) != 1 {
		t.Fatalf("%d endpoints after the deregistration", len(eps))
	}
	if !pooled(addr) || !b.released {
		t.Fatalf("pooled %v, released %v: the update itself should only mark the release", pooled(addr), b.released)
	}
	b.sweep()
	if pooled(addr) || b.released {
		t.Fatalf("after the sweep: pooled %v, released %v", pooled(addr), b.released)
	}
	if kept := scaleEndpoint(0, 0); !pooled(fmt.Sprintf("%s:%d", kept.Address, kept.Port)) {
		t.Fatal("the sweep dropped an upstream still in use")
	}
}
