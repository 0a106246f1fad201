package cluster_test

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/internal/retry"
)

// A follower that already names a leader but has not applied the cluster
// identity yet (right after the cluster formed, or it joined) cannot sign
// a forward: it waits for the identity (bounded by the apply timeout)
// instead of answering no_leader, and it is not ready (GET /ready 503)
// until it has it. The identity is held back on c by its Identity hook.
func TestFollowerWaitsForClusterIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	pp := agenttest.NewPorts(t)
	pa, pb, pc := pp.Node(), pp.Node(), pp.Node()
	join := []string{pa.GossipAddr(), pb.GossipAddr()}
	a := startNode(t, "a", t.TempDir(), pa, 2, join)
	b := startNode(t, "b", t.TempDir(), pb, 2, join)
	retry.Run(t, func(r *retry.R) {
		if readyLeader([]*testNode{a, b}) < 0 {
			r.Fatal("no ready leader")
		}
	}, retry.Timeout(30*time.Second))

	// c joins as a non-voter (it never leads here: a second identity would
	// be proposed by a leader that cannot see the first).
	var held atomic.Bool
	held.Store(true)
	c := startNodeWith(t, "c", t.TempDir(), pc, 0, join, func(cfg *cluster.Config) {
		identity := cfg.Hooks.Identity
		cfg.Hooks.Identity = func() (string, string) {
			if held.Load() {
				return "", ""
			}
			return identity()
		}
	}, nil)
	retry.Run(t, func(r *retry.R) {
		if l, ok := c.node.Leader(); !ok || l.HTTPAddr == "" || l.Node == "c" {
			r.Fatalf("c names no leader to forward to: %+v %v", l, ok)
		}
	}, retry.Timeout(30*time.Second))

	if c.node.Ready() {
		t.Fatal("c is ready without the cluster identity")
	}
	resp, err := http.Get("http://" + pc.HTTPAddr() + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /ready on c without the identity: %d %s", resp.StatusCode, body)
	}

	// The identity arrives half a second after the write was sent.
	release := time.AfterFunc(500*time.Millisecond, func() { held.Store(false) })
	defer release.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.node.Apply(ctx, configSet(t, "first", `"write"`))
	if err != nil || res.Err != nil {
		t.Fatalf("a write through c while its identity was on its way: %v %+v", err, res)
	}
	if got := configValue(c.store, "first"); got != `"write"` {
		t.Fatalf("c answered before applying its write: %q", got)
	}
	retry.Run(t, func(r *retry.R) {
		if !c.node.Ready() {
			r.Fatal("c is not ready with the identity")
		}
	})
}
