package main

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/nexus/nexus/internal/retry"
)

// TestRunWhileLeader: the duty runs only while the node leads, its
// context ends with leadership, a new leadership starts it again, and
// stop waits for it.
func TestRunWhileLeader(t *testing.T) {
	var leading, running, starts atomic.Int32
	stop := runWhileLeader(func() bool { return leading.Load() == 1 }, func(ctx context.Context) {
		starts.Add(1)
		running.Add(1)
		<-ctx.Done()
		running.Add(-1)
	})
	wait := func(what string, cond func() bool) {
		t.Helper()
		retry.Run(t, func(r *retry.R) {
			if !cond() {
				r.Fatalf("not yet: running %d, starts %d", running.Load(), starts.Load())
			}
		}, retry.What(what))
	}
	leading.Store(1)
	wait("the duty to start", func() bool { return running.Load() == 1 })
	leading.Store(0)
	wait("the duty to stop with leadership", func() bool { return running.Load() == 0 })
	leading.Store(1)
	wait("a second leadership", func() bool { return running.Load() == 1 && starts.Load() == 2 })
	stop()
	if running.Load() != 0 {
		t.Fatal("stop returned while the duty still ran")
	}
	stop() // idempotent
}
