package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/proccluster"
)

func aclOptions(t *testing.T) proccluster.Options {
	o := baseOptions(t)
	o.RaftPort, o.GossipPort, o.HTTPPort, o.GatewayPort = 23300, 23301, 23500, 23080
	o.ExtraArgs = append(o.ExtraArgs, "--acl-enabled")
	return o
}

// as returns a client of the same cluster that sends token.
func (a *api) as(token string) *api { return &api{c: a.c, hc: a.hc, token: token} }

// TestACLAcrossNodes: on a real 3-node cluster with ACLs on, a token made
// on the leader works at once on every follower (resolved through the
// leader), its revocation stops it on every node within 1 s, and a write
// sent through a follower with a revoked token never applies.
func TestACLAcrossNodes(t *testing.T) {
	c := startCluster(t, aclOptions(t))
	anon := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader, _, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAllReady(ctx); err != nil {
		t.Fatal(err)
	}
	var boot struct {
		SecretID string `json:"secret_id"`
	}
	r := anon.mustDo(t, leader, "POST", "/acl/bootstrap", nil, 200)
	if err := json.Unmarshal(r.body, &boot); err != nil || boot.SecretID == "" {
		t.Fatalf("bootstrap: %v %s", err, r.body)
	}
	// Once per cluster, whichever node is asked.
	for _, i := range all(c) {
		if r := anon.mustDo(t, i, "POST", "/acl/bootstrap", nil, 403); r.errorCode() != "acl_bootstrapped" {
			t.Fatalf("second bootstrap on node %d: %s", i, r)
		}
	}
	root := anon.as(boot.SecretID)
	for _, i := range all(c) {
		if r, _ := anon.do(ctx, i, "PUT", "/config/app/x", []byte(`{"value":1}`), 5*time.Second); r.status != 401 {
			t.Fatalf("anonymous write on node %d: %s", i, r)
		}
	}
	root.mustDo(t, leader, "POST", "/acl/policies", map[string]any{"name": "app",
		"rules": []map[string]string{{"resource": "config", "prefix": "app/", "access": "write"}}}, 201)

	for round := 0; round < 3; round++ {
		var tok struct {
			AccessorID string `json:"accessor_id"`
			SecretID   string `json:"secret_id"`
		}
		r := root.mustDo(t, leader, "POST", "/acl/tokens", map[string]any{"policies": []string{"app"}}, 201)
		if err := json.Unmarshal(r.body, &tok); err != nil {
			t.Fatal(err)
		}
		user := anon.as(tok.SecretID)
		// Right away on every node: a follower that has not applied the
		// token yet asks the leader before answering.
		for _, i := range all(c) {
			user.mustDo(t, i, "PUT", fmt.Sprintf("/config/app/r%d-n%d", round, i), map[string]any{"value": i}, 200)
			if r, _ := user.do(ctx, i, "PUT", "/config/other", []byte(`{"value":1}`), 5*time.Second); r.status != 403 {
				t.Fatalf("write outside the policy on node %d: %s", i, r)
			}
		}
		// Revoke on one node; measure until every node refuses it.
		revoker := (leader + round) % c.N()
		start := time.Now()
		root.mustDo(t, revoker, "DELETE", "/acl/tokens/"+tok.AccessorID, nil, 200)
		var wg sync.WaitGroup
		took := make([]time.Duration, c.N())
		for _, i := range all(c) {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				for time.Since(start) < 5*time.Second {
					r, err := user.do(ctx, i, "GET", "/config/app/r0-n0", nil, 2*time.Second)
					if err == nil && r.status == 401 {
						took[i] = time.Since(start)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
				took[i] = -1
			}(i)
		}
		wg.Wait()
		for i, d := range took {
			if d < 0 || d > time.Second {
				t.Fatalf("round %d: node %d still accepted the revoked token after %v", round, i, d)
			}
		}
		t.Logf("round %d: revocation on node %d refused everywhere after %v", round, revoker, took)
		// The revoked token writes nowhere, whichever node is asked.
		for _, i := range all(c) {
			if r, _ := user.do(ctx, i, "PUT", "/config/app/late", []byte(`{"value":1}`), 5*time.Second); r.status != 401 {
				t.Fatalf("revoked token write on node %d: %s", i, r)
			}
		}
	}
	if r, _ := root.do(ctx, leader, "GET", "/config/app/late?consistent", nil, 5*time.Second); r.status != 404 {
		t.Fatalf("a revoked token's write applied: %s", r)
	}
}
