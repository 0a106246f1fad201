package consul_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/nexus/nexus/internal/retry"
)

// These tests drive the mapping with the real Consul Go client.

func TestClient_ServiceLifecycle(t *testing.T) {
	h := newHarness(t)
	agent := h.client.Agent()
	if name, err := agent.NodeName(); err != nil || name != "n1" {
		t.Fatalf("NodeName = %q, %v", name, err)
	}
	if self, err := agent.Self(); err != nil || self["Config"]["Datacenter"] != "dc1" {
		t.Fatalf("Self = %v, %v", self, err)
	}
	reg := &consulapi.AgentServiceRegistration{ID: "web-1", Name: "web", Tags: []string{"v1", "blue"}, Port: 9001,
		Address: "10.0.0.7", Meta: map[string]string{"zone": "a"}, Weights: &consulapi.AgentWeights{Passing: 3, Warning: 1},
		Check: &consulapi.AgentServiceCheck{TTL: "30s", DeregisterCriticalServiceAfter: "10m"}}
	if err := agent.ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	// A second instance without address: the node's.
	if err := agent.ServiceRegister(&consulapi.AgentServiceRegistration{ID: "web-2", Name: "web", Tags: []string{"v1"}, Port: 9002}); err != nil {
		t.Fatal(err)
	}
	health := h.client.Health()
	// A TTL check is critical until its first pass.
	entries, _, err := health.Service("web", "", true, nil)
	if err != nil || len(entries) != 1 || entries[0].Service.ID != "web-2" {
		t.Fatalf("passing before the first pass: %+v, %v", entries, err)
	}
	if err := agent.PassTTL("service:web-1", "all good"); err != nil {
		t.Fatal(err)
	}
	entries, meta, err := health.ServiceMultipleTags("web", []string{"v1", "blue"}, true, nil)
	if err != nil || len(entries) != 1 {
		t.Fatalf("passing with both tags: %+v, %v", entries, err)
	}
	e := entries[0]
	if e.Service.ID != "web-1" || e.Service.Address != "10.0.0.7" || e.Service.Port != 9001 || e.Service.Meta["zone"] != "a" ||
		e.Service.Weights.Passing != 3 || e.Node.Node != "n1" || e.Node.Datacenter != "dc1" || e.Node.Address != "127.0.0.2" {
		t.Errorf("entry = %+v / %+v", e.Service, e.Node)
	}
	if len(e.Checks) != 1 || e.Checks[0].CheckID != "service:web-1" || e.Checks[0].Status != "passing" ||
		e.Checks[0].Output != "all good" || e.Checks[0].Type != "ttl" || e.Checks.AggregatedStatus() != "passing" {
		t.Errorf("checks = %+v", e.Checks)
	}
	if meta.LastIndex < 1 || !meta.KnownLeader {
		t.Errorf("meta = %+v", meta)
	}
	if entries, _, _ := health.ServiceMultipleTags("web", []string{"v1", "green"}, false, nil); len(entries) != 0 {
		t.Errorf("a tag no instance has matched %d", len(entries))
	}
	if err := agent.UpdateTTL("service:web-1", "degraded", consulapi.HealthWarning); err != nil {
		t.Fatal(err)
	}
	checks, _, err := health.Checks("web", nil)
	if err != nil || len(checks) != 1 || checks[0].Status != "warning" || checks[0].Output != "degraded" {
		t.Fatalf("checks after a warning: %+v, %v", checks, err)
	}
	warning, _, err := health.State("warning", nil)
	if err != nil || len(warning) != 1 || warning[0].ServiceID != "web-1" {
		t.Fatalf("state warning: %+v, %v", warning, err)
	}
	if err := agent.FailTTL("service:web-2", "no"); err == nil {
		t.Error("a TTL update of an instance without a TTL check was accepted")
	}

	cat, _, err := h.client.Catalog().Service("web", "v1", nil)
	if err != nil || len(cat) != 2 || cat[0].ServiceID != "web-1" || cat[1].ServiceAddress != "127.0.0.2" || cat[1].Datacenter != "dc1" {
		t.Fatalf("catalog service: %+v, %v", cat, err)
	}
	svcs, _, err := h.client.Catalog().Services(nil)
	if err != nil || !slices.Equal(svcs["web"], []string{"blue", "v1"}) {
		t.Fatalf("catalog services: %+v, %v", svcs, err)
	}
	nodes, _, err := h.client.Catalog().Nodes(nil)
	if err != nil || len(nodes) != 1 || nodes[0].Node != "n1" {
		t.Fatalf("catalog nodes: %+v, %v", nodes, err)
	}

	if err := agent.ServiceDeregister("web-1"); err != nil {
		t.Fatal(err)
	}
	if cat, _, _ := h.client.Catalog().Service("web", "", nil); len(cat) != 1 {
		t.Fatalf("after deregister: %+v", cat)
	}
	if err := agent.ServiceDeregister("web-1"); err == nil {
		t.Error("deregistering an unknown id succeeded")
	}
}

func TestClient_KV(t *testing.T) {
	h := newHarness(t)
	kv := h.client.KV()
	bin := []byte{0, 1, 2, 0xfe, 0xff, '\n'}
	for _, p := range []*consulapi.KVPair{
		{Key: "app/bin", Value: bin, Flags: 42},
		{Key: "app/json", Value: []byte(`{"a":1}`)},
		{Key: "app/empty"},
		{Key: "app/db/host", Value: []byte("db1")},
		{Key: "app/db/port", Value: []byte("5432")},
		{Key: "other", Value: []byte("x")},
	} {
		if _, err := kv.Put(p, nil); err != nil {
			t.Fatal(err)
		}
	}
	got, meta, err := kv.Get("app/bin", nil)
	if err != nil || got == nil || !bytes.Equal(got.Value, bin) || got.Flags != 42 || got.CreateIndex == 0 || got.ModifyIndex != meta.LastIndex {
		t.Fatalf("Get = %+v, %+v, %v", got, meta, err)
	}
	if got, _, _ := kv.Get("app/empty", nil); got == nil || len(got.Value) != 0 {
		t.Fatalf("empty value = %+v", got)
	}
	if got, _, err := kv.Get("app/none", nil); got != nil || err != nil {
		t.Fatalf("missing key = %+v, %v", got, err)
	}

	// CAS: the current index wins once.
	cur, _, _ := kv.Get("app/json", nil)
	ok, _, err := kv.CAS(&consulapi.KVPair{Key: "app/json", Value: []byte(`{"a":2}`), ModifyIndex: cur.ModifyIndex}, nil)
	if err != nil || !ok {
		t.Fatalf("CAS with the current index: %v, %v", ok, err)
	}
	ok, _, err = kv.CAS(&consulapi.KVPair{Key: "app/json", Value: []byte(`{"a":3}`), ModifyIndex: cur.ModifyIndex}, nil)
	if err != nil || ok {
		t.Fatalf("CAS with a stale index: %v, %v", ok, err)
	}
	ok, _, _ = kv.CAS(&consulapi.KVPair{Key: "app/json", Value: []byte(`x`)}, nil) // index 0: create only
	if ok {
		t.Fatal("CAS 0 replaced an existing key")
	}
	if got, _, _ := kv.Get("app/json", nil); string(got.Value) != `{"a":2}` {
		t.Fatalf("after CAS: %s", got.Value)
	}

	list, _, err := kv.List("app/", nil)
	if err != nil || len(list) != 5 || list[0].Key != "app/bin" || !bytes.Equal(list[0].Value, bin) {
		t.Fatalf("List = %+v, %v", list, err)
	}
	keys, _, err := kv.Keys("app/", "/", nil)
	if err != nil || !slices.Equal(keys, []string{"app/bin", "app/db/", "app/empty", "app/json"}) {
		t.Fatalf("Keys with separator = %q, %v", keys, err)
	}
	keys, _, _ = kv.Keys("", "", nil)
	if len(keys) != 6 {
		t.Fatalf("all keys = %q", keys)
	}

	cur, _, _ = kv.Get("app/db/host", nil)
	if ok, _, err := kv.DeleteCAS(&consulapi.KVPair{Key: "app/db/host", ModifyIndex: cur.ModifyIndex + 100}, nil); err != nil || ok {
		t.Fatalf("DeleteCAS with a wrong index: %v, %v", ok, err)
	}
	if ok, _, err := kv.DeleteCAS(&consulapi.KVPair{Key: "app/db/host", ModifyIndex: cur.ModifyIndex}, nil); err != nil || !ok {
		t.Fatalf("DeleteCAS: %v, %v", ok, err)
	}
	if _, err := kv.DeleteTree("app/", nil); err != nil {
		t.Fatal(err)
	}
	if list, _, _ := kv.List("app/", nil); len(list) != 0 {
		t.Fatalf("after DeleteTree: %+v", list)
	}
	if got, _, _ := kv.Get("other", nil); got == nil {
		t.Fatal("DeleteTree removed a key outside its prefix")
	}
	if _, err := kv.Delete("other", nil); err != nil {
		t.Fatal(err)
	}
}

// TestClient_BlockingServices: a blocking Catalog().Services returns when
// the catalog changes, with a higher index; a blocking health query on
// one service does not return for a change of another.
func TestClient_BlockingServices(t *testing.T) {
	h := newHarness(t)
	agent := h.client.Agent()
	if err := agent.ServiceRegister(&consulapi.AgentServiceRegistration{Name: "a", Port: 1}); err != nil {
		t.Fatal(err)
	}
	_, meta, err := h.client.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, ameta, err := h.client.Health().Service("a", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		svcs  map[string][]string
		index uint64
		err   error
	}
	catalog := make(chan result, 1)
	go func() {
		s, m, err := h.client.Catalog().Services(&consulapi.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
		var idx uint64
		if m != nil {
			idx = m.LastIndex
		}
		catalog <- result{s, idx, err}
	}()
	healthA := make(chan uint64, 1)
	go func() {
		_, m, err := h.client.Health().Service("a", "", false, &consulapi.QueryOptions{WaitIndex: ameta.LastIndex, WaitTime: time.Minute})
		if err != nil {
			t.Error(err)
		}
		healthA <- m.LastIndex
	}()
	// Both queries are parked before the change.
	retry.Run(t, func(r *retry.R) {
		if n := gaugeValue(t, h, "nexus_consul_blocking_queries"); n != 2 {
			r.Fatalf("%v blocking queries", n)
		}
	})
	if err := agent.ServiceRegister(&consulapi.AgentServiceRegistration{Name: "b", Port: 2}); err != nil {
		t.Fatal(err)
	}
	res := <-catalog
	if res.err != nil || res.index <= meta.LastIndex || res.svcs["b"] == nil {
		t.Fatalf("blocking Services = %+v", res)
	}
	// The health query on a is still parked and was not even woken: the
	// only wakeup is the catalog query's.
	if n := gaugeValue(t, h, "nexus_consul_blocking_queries"); n != 1 {
		t.Fatalf("%v blocking queries after a change of b, want 1 (a's)", n)
	}
	if n := gaugeValue(t, h, "nexus_consul_blocking_wakeups_total"); n != 1 {
		t.Fatalf("%v wakeups after a change of b, want 1 (the catalog query's)", n)
	}
	if err := agent.ServiceRegister(&consulapi.AgentServiceRegistration{Name: "a", Port: 3, ID: "a-3"}); err != nil {
		t.Fatal(err)
	}
	if idx := <-healthA; idx <= ameta.LastIndex {
		t.Fatalf("health index %d, want above %d", idx, ameta.LastIndex)
	}
}

func gaugeValue(t testing.TB, h *harness, name string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var v float64
			for _, m := range mf.GetMetric() {
				v += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
			return v
		}
	}
	return 0
}
