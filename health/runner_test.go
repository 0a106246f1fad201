package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/registry"
)

func owned(service, id string, checks ...registry.Check) registry.Instance {
	return registry.Instance{
		ID: id, Service: service, Type: "http", Address: "127.0.0.1", Port: 1, Node: "n1",
		Status: registry.StatusCritical, Checks: checks, Tags: []string{}, DependsOn: []string{},
	}
}

// TestRunnerTTL: critical until the first heartbeat, passing with it,
// critical again when no heartbeat comes for the TTL, not a moment before;
// heartbeats that change nothing propose nothing. The TTL runs on a fake
// clock: the test moves time, nothing waits for it.
func TestRunnerTTL(t *testing.T) {
	deps, w := testDeps(t, newMembership("n1", nil))
	clk := newFakeClock()
	deps.Clock = clk
	w.register(t, owned("ttl", "t1", registry.Check{Kind: registry.CheckTTL, TTL: "300ms", Status: registry.StatusCritical}))
	r := runRunner(t, deps)
	ctx := context.Background()

	// The runner watches the TTL and has compared the catalog with it:
	// nothing to change yet.
	retry.Run(t, retry.Cond("the TTL watched", func() bool { return clk.armedFor(clk.Now().Add(300 * time.Millisecond)) }))
	waitRounds(t, r, 1)
	if got := w.logStrings(); len(got) != 0 {
		t.Fatalf("proposed before any heartbeat: %q", got)
	}
	for i := 0; i < 8; i++ { // 800 ms of heartbeats, well inside the TTL each time
		if err := r.Heartbeat(ctx, "ttl", "t1", "", "ok"); err != nil {
			t.Fatal(err)
		}
		clk.Advance(100 * time.Millisecond)
	}
	waitInstance(t, deps.Store, "ttl", "t1", registry.StatusPassing, 5*time.Second)
	if err := r.Heartbeat(ctx, "ttl", "t1", registry.StatusWarning, "degraded"); err != nil {
		t.Fatal(err)
	}
	deadline := clk.Now().Add(300 * time.Millisecond)
	// A millisecond before the TTL: the watcher looked (its timer fired)
	// and waits for the deadline again, so it did not expire.
	clk.Advance(299 * time.Millisecond)
	retry.Run(t, retry.Cond("the watcher to wait for the deadline", func() bool { return clk.armedFor(deadline) }))
	if st, _ := instanceStatus(deps.Store, "ttl", "t1"); st != registry.StatusWarning {
		t.Fatalf("before the TTL: %s", st)
	}
	clk.Advance(time.Millisecond)
	waitInstance(t, deps.Store, "ttl", "t1", registry.StatusCritical, 5*time.Second)
	waitRounds(t, r, 2) // anti-entropy again: nothing new
	want := []string{"ttl/t1 passing", "ttl/t1 warning", "ttl/t1 critical"}
	if got := w.logStrings(); !reflect.DeepEqual(got, want) {
		t.Fatalf("proposals %q, want %q", got, want)
	}
	if _, out := instanceStatus(deps.Store, "ttl", "t1"); out != "TTL expired: no heartbeat for 300ms" {
		t.Fatalf("output %q", out)
	}

	// Heartbeats for what is not a TTL check or not known.
	w.register(t, owned("plain", "p1"))
	if err := r.Heartbeat(ctx, "plain", "p1", "", ""); err != ErrNoTTLCheck {
		t.Fatalf("heartbeat without a TTL check: %v", err)
	}
	if err := r.Heartbeat(ctx, "nope", "x", "", ""); err != ErrNotFound {
		t.Fatalf("heartbeat of an unknown instance: %v", err)
	}
}

// TestRunnerHTTPProposesOnlyChanges: a check run every 20 ms proposes a
// status only when the status changes.
func TestRunnerHTTPProposesOnlyChanges(t *testing.T) {
	var code atomic.Int32
	code.Store(200)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	deps, w := testDeps(t, newMembership("n1", nil))
	w.register(t, owned("web", "w1", registry.Check{Kind: registry.CheckHTTP, HTTP: srv.URL + "/health", Interval: "20ms", Timeout: "1s"}))
	r := runRunner(t, deps)

	for _, step := range []struct {
		code   int32
		status string
	}{
		{200, registry.StatusPassing}, {201, registry.StatusPassing}, {429, registry.StatusWarning},
		{500, registry.StatusCritical}, {404, registry.StatusCritical}, {200, registry.StatusPassing},
	} {
		code.Store(step.code)
		waitInstance(t, deps.Store, "web", "w1", step.status, 2*time.Second)
		// Many more check runs (and anti-entropy rounds) in the same state.
		h := hits.Load()
		retry.Run(t, retry.Cond("8 more check runs", func() bool { return hits.Load() >= h+8 }))
		waitRounds(t, r, 1)
	}
	want := []string{"web/w1 passing", "web/w1 warning", "web/w1 critical", "web/w1 passing"}
	if got := w.logStrings(); !reflect.DeepEqual(got, want) {
		t.Fatalf("proposals %q, want %q (after %d check runs)", got, want, hits.Load())
	}
	if log := w.log(); !strings.Contains(log[1].output, "429 Too Many Requests") || !strings.Contains(log[2].output, "500 Internal Server Error") {
		t.Fatalf("outputs: %+v", log)
	}
}

// TestRunnerTCP: passing while something listens, critical once it stops.
func TestRunnerTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	deps, w := testDeps(t, newMembership("n1", nil))
	w.register(t, owned("db", "d1", registry.Check{Kind: registry.CheckTCP, TCP: ln.Addr().String(), Interval: "20ms", Timeout: "500ms"}))
	r := runRunner(t, deps)
	// More check runs and rounds in each state change nothing more.
	settled := func(status string) {
		t.Helper()
		runs := counter(r.m.checkRuns.WithLabelValues(registry.CheckTCP, status))
		retry.Run(t, retry.Cond("3 more check runs", func() bool {
			return counter(r.m.checkRuns.WithLabelValues(registry.CheckTCP, status)) >= runs+3
		}))
		waitRounds(t, r, 1)
	}
	waitInstance(t, deps.Store, "db", "d1", registry.StatusPassing, 2*time.Second)
	settled(registry.StatusPassing)
	ln.Close()
	waitInstance(t, deps.Store, "db", "d1", registry.StatusCritical, 2*time.Second)
	settled(registry.StatusCritical)
	want := []string{"db/d1 passing", "db/d1 critical"}
	if got := w.logStrings(); !reflect.DeepEqual(got, want) {
		t.Fatalf("proposals %q, want %q", got, want)
	}
}

// TestRunnerAntiEntropy: the owner corrects the catalog from its checks, once:
// an instance without a check marked critical (the leader did, while this
// node was failed) turns passing; instances of other nodes are left alone.
func TestRunnerAntiEntropy(t *testing.T) {
	deps, w := testDeps(t, newMembership("n1", nil))
	w.register(t, owned("plain", "p1"))
	other := owned("plain", "p2")
	other.Node = "n2"
	w.register(t, other)
	r := runRunner(t, deps)
	waitInstance(t, deps.Store, "plain", "p1", registry.StatusPassing, 2*time.Second)
	waitRounds(t, r, 3)
	want := []string{"plain/p1 passing"}
	if got := w.logStrings(); !reflect.DeepEqual(got, want) {
		t.Fatalf("proposals %q, want %q", got, want)
	}
	if st, _ := instanceStatus(deps.Store, "plain", "p2"); st != registry.StatusCritical {
		t.Fatalf("another node's instance changed to %s", st)
	}
}

// TestRunnerFollowsChanges: without any periodic pass, the runner follows
// the store's changes: a new owned instance is corrected, an instance that
// moved to another node is forgotten, and a restore is re-read whole.
func TestRunnerFollowsChanges(t *testing.T) {
	deps, w := testDeps(t, newMembership("n1", nil))
	deps.AntiEntropyInterval = time.Hour
	r := runRunner(t, deps)
	waitKnown(t, r, 0)

	w.register(t, owned("plain", "p1"), owned("plain", "p2"))
	waitInstance(t, deps.Store, "plain", "p1", registry.StatusPassing, 5*time.Second)
	waitInstance(t, deps.Store, "plain", "p2", registry.StatusPassing, 5*time.Second)
	waitKnown(t, r, 2)

	moved := owned("plain", "p2")
	moved.Node = "n2"
	w.register(t, moved)
	waitKnown(t, r, 1)

	// A restore replaces everything: the runner hears a reset and reads
	// the new state whole.
	src := registry.NewStore()
	tx := src.WriteTxn(1)
	for _, in := range []registry.Instance{owned("plain", "p3"), owned("plain", "p4"), moved} {
		if _, _, e := tx.RegisterInstance(in); e != nil {
			t.Fatal(e)
		}
	}
	tx.Commit()
	rtx := src.ReadTxn()
	dump := rtx.Dump()
	rtx.Abort()
	if err := deps.Store.Restore(func(tx *registry.Tx) error { return tx.Load(dump) }); err != nil {
		t.Fatal(err)
	}
	waitInstance(t, deps.Store, "plain", "p3", registry.StatusPassing, 5*time.Second)
	waitInstance(t, deps.Store, "plain", "p4", registry.StatusPassing, 5*time.Second)
	waitKnown(t, r, 2)
	if st, _ := instanceStatus(deps.Store, "plain", "p2"); st != registry.StatusCritical {
		t.Fatalf("n2's instance changed to %s", st)
	}
}
