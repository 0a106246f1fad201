package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// A write acknowledged by node A is seen by a ?consistent read on node B
// right after, every time (linearizable reads through the read index).
func TestConsistentReadSeesWriteOnOtherNode(t *testing.T) {
	o := healthOptions(t)
	c := startCluster(t, o)
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAllReady(ctx); err != nil {
		t.Fatal(err)
	}
	const rounds = 300
	stale := 0
	for i := 0; i < rounds; i++ {
		w, r := i%c.N(), (i+1)%c.N()
		want := fmt.Sprintf("v%d", i)
		a.mustDo(t, w, "PUT", "/config/lin/k", want, 200)
		resp, err := a.do(ctx, r, "GET", "/config/lin/k?consistent", nil, 5*time.Second)
		if err != nil || resp.status != 200 {
			t.Fatalf("round %d: consistent read on node %d: %v %v", i, r, resp, err)
		}
		var e struct {
			Value string `json:"value"`
		}
		if err := json.Unmarshal(resp.body, &e); err != nil {
			t.Fatal(err)
		}
		if e.Value != want {
			stale++
			t.Errorf("round %d: write on node %d then consistent read on node %d saw %q, want %q", i, w, r, e.Value, want)
		}
	}
	t.Logf("%d write-then-consistent-read rounds across nodes, %d stale", rounds, stale)
}
