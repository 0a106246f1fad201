// Package e2etest drives the Consul-compatible API of a 3-node cluster of
// real `nexus agent` processes with the real Consul Go client, and with a
// real Prometheus whose consul_sd_configs point at a node. `go test -short`
// skips it; NEXUS_E2E_BINARY uses a prebuilt binary (bin/nexus).
package e2etest

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/nexus/nexus/internal/proccluster"
	"github.com/nexus/nexus/internal/retry"
)

var (
	nexusBinary string
	buildErr    error
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(func() int {
		if testing.Short() {
			return m.Run()
		}
		bin, cleanup, err := proccluster.BuildBinary()
		defer cleanup()
		nexusBinary, buildErr = bin, err
		return m.Run()
	}())
}

// startCluster starts three nodes on 127.0.17.11-13 (their own addresses:
// no clash with other tests' clusters) and waits for a leader.
func startCluster(t *testing.T) *proccluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	c := proccluster.StartT(t, proccluster.Options{Binary: nexusBinary, Nodes: 3, BaseIP: "127.0.17.",
		RaftPort: 18300, GossipPort: 18301, HTTPPort: 18500, GatewayPort: 18080})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.WaitAllReady(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// client is a Consul client of node i.
func client(t *testing.T, c *proccluster.Cluster, i int) *consulapi.Client {
	t.Helper()
	cl, err := consulapi.NewClient(&consulapi.Config{Address: c.HTTPAddr(i), Scheme: "http",
		Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestConsul_ThreeNodes: a service registered with a TTL check on one
// node, passed through another, read with passing and tags on a third; a
// blocking Catalog().Services that wakes on a change; KV with flags,
// binary values, CAS, List, Keys with a separator and DeleteTree across
// nodes.
func TestConsul_ThreeNodes(t *testing.T) {
	c := startCluster(t)
	c1, c2, c3 := client(t, c, 0), client(t, c, 1), client(t, c, 2)

	if err := c1.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 8080,
		Address: "127.0.0.1", Tags: []string{"v1", "blue"}, Check: &consulapi.AgentServiceCheck{TTL: "30s"}}); err != nil {
		t.Fatal(err)
	}
	if err := c1.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: "web-2", Name: "web", Port: 8081,
		Address: "127.0.0.1", Tags: []string{"v1"}}); err != nil {
		t.Fatal(err)
	}
	// Through n2: the TTL check lives on n1, which owns the instance.
	if err := c2.Agent().PassTTL("service:web-1", "passed through n2"); err != nil {
		t.Fatal(err)
	}
	var entry *consulapi.ServiceEntry
	retry.Run(t, func(r *retry.R) {
		entries, _, err := c3.Health().ServiceMultipleTags("web", []string{"v1", "blue"}, true, nil)
		if err != nil {
			r.Fatal(err)
		}
		if len(entries) != 1 {
			r.Fatalf("%d passing entries with tags v1+blue on n3", len(entries))
		}
		entry = entries[0]
	}, retry.Timeout(30*time.Second))
	if entry.Service.ID != "web-1" || entry.Node.Node != "n1" || entry.Node.Address != "127.0.17.11" ||
		entry.Checks.AggregatedStatus() != consulapi.HealthPassing || entry.Checks[0].Output != "passed through n2" {
		t.Fatalf("entry = %+v %+v %+v", entry.Node, entry.Service, entry.Checks)
	}
	// Both instances pass with tag v1 alone (web-2 has no check).
	if entries, _, err := c3.Health().Service("web", "v1", true, &consulapi.QueryOptions{RequireConsistent: true}); err != nil || len(entries) != 2 {
		t.Fatalf("passing v1 = %d, %v", len(entries), err)
	}

	// A blocking Catalog().Services on n3 wakes when n2 registers a service.
	_, meta, err := c3.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	woke := make(chan map[string][]string, 1)
	errs := make(chan error, 1)
	go func() {
		svcs, m, err := c3.Catalog().Services(&consulapi.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 2 * time.Minute})
		if err == nil && m.LastIndex <= meta.LastIndex {
			err = fmt.Errorf("index %d did not move past %d", m.LastIndex, meta.LastIndex)
		}
		errs <- err
		woke <- svcs
	}()
	if err := c2.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: "api", Port: 9000, Address: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if err != nil {
			t.Fatal(err)
		}
		if svcs := <-woke; svcs["api"] == nil || svcs["web"] == nil {
			t.Fatalf("woken Services = %v", svcs)
		}
	case <-time.After(time.Minute):
		t.Fatal("the blocking Services query did not wake within a minute of the change")
	}

	// KV across nodes; reads from another node are ?consistent.
	consistent := &consulapi.QueryOptions{RequireConsistent: true}
	bin := []byte{0, 0xff, 1, 0xfe, '\n', 0}
	if _, err := c1.KV().Put(&consulapi.KVPair{Key: "app/bin", Value: bin, Flags: 7}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.KV().Put(&consulapi.KVPair{Key: "app/conf/port", Value: []byte("8080"), Flags: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.KV().Put(&consulapi.KVPair{Key: "app/conf/host", Value: []byte("db")}, nil); err != nil {
		t.Fatal(err)
	}
	got, _, err := c3.KV().Get("app/bin", consistent)
	if err != nil || got == nil || !bytes.Equal(got.Value, bin) || got.Flags != 7 {
		t.Fatalf("binary value on n3 = %+v, %v", got, err)
	}
	ok, _, err := c3.KV().CAS(&consulapi.KVPair{Key: "app/bin", Value: []byte("v2"), ModifyIndex: got.ModifyIndex}, nil)
	if err != nil || !ok {
		t.Fatalf("CAS with the current index: %v %v", ok, err)
	}
	ok, _, err = c1.KV().CAS(&consulapi.KVPair{Key: "app/bin", Value: []byte("v3"), ModifyIndex: got.ModifyIndex}, nil)
	if err != nil || ok {
		t.Fatalf("CAS with a stale index: %v %v", ok, err)
	}
	list, _, err := c1.KV().List("app/", consistent)
	if err != nil || len(list) != 3 || string(list[0].Value) != "v2" || list[2].Key != "app/conf/port" || list[2].Flags != 1 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	keys, _, err := c2.KV().Keys("app/", "/", consistent)
	if err != nil || !slices.Equal(keys, []string{"app/bin", "app/conf/"}) {
		t.Fatalf("Keys = %q, %v", keys, err)
	}
	if _, err := c3.KV().DeleteTree("app/conf/", nil); err != nil {
		t.Fatal(err)
	}
	keys, _, err = c1.KV().Keys("app/", "", consistent)
	if err != nil || !slices.Equal(keys, []string{"app/bin"}) {
		t.Fatalf("Keys after DeleteTree = %q, %v", keys, err)
	}
}
