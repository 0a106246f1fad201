package e2etest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/nexus/nexus/internal/proccluster"
	"github.com/nexus/nexus/internal/retry"
)

// TestConsul_LocksAndSemaphore drives Consul's lock recipes, unchanged,
// against three real nodes: api.SemaphorePrefix with limit 2 and three
// contenders on three nodes; api.LockKey between two contenders on two
// nodes, handed over after Unlock; then again after the holder's node is
// killed with SIGKILL: the waiter gets the lock once gossip declares the
// node failed, the leader invalidates its session and the lock delay ends.
func TestConsul_LocksAndSemaphore(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader, _, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The holder and the waiter run on the two followers, so the kill
	// leaves the leader (and the quorum) in place.
	var followers []int
	for i := 0; i < c.N(); i++ {
		if i != leader {
			followers = append(followers, i)
		}
	}
	holder, waiter := followers[0], followers[1]
	clients := []*consulapi.Client{client(t, c, 0), client(t, c, 1), client(t, c, 2)}
	stop := make(chan struct{})
	defer close(stop)

	t.Run("semaphore", func(t *testing.T) { semaphore(t, clients, stop) })
	t.Run("handover after Unlock", func(t *testing.T) { handover(t, clients[holder], clients[waiter], stop) })
	t.Run("holder node killed", func(t *testing.T) { holderKilled(t, c, clients, holder, waiter, stop) })
}

// acquired runs acquire in the background and reports its outcome.
func acquired(acquire func() (<-chan struct{}, error)) <-chan error {
	done := make(chan error, 1)
	go func() {
		lost, err := acquire()
		if err == nil && lost == nil {
			err = fmt.Errorf("gave up")
		}
		done <- err
	}()
	return done
}

// within waits for done, failing the test after d.
func within(t *testing.T, done <-chan error, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s: not within %s", what, d)
	}
}

// notYet fails the test if done already reported.
func notYet(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s too early (err %v)", what, err)
	default:
	}
}

func semaphore(t *testing.T, clients []*consulapi.Client, stop chan struct{}) {
	sems := make([]*consulapi.Semaphore, len(clients))
	for i, cl := range clients {
		var err error
		if sems[i], err = cl.SemaphorePrefix("sem/pool", 2); err != nil {
			t.Fatal(err)
		}
	}
	within(t, acquired(func() (<-chan struct{}, error) { return sems[0].Acquire(stop) }), time.Minute, "first holder")
	within(t, acquired(func() (<-chan struct{}, error) { return sems[1].Acquire(stop) }), time.Minute, "second holder")
	third := acquired(func() (<-chan struct{}, error) { return sems[2].Acquire(stop) })
	// The third contender's entry exists (.lock plus three contenders),
	// and it waits: the limit is 2.
	retry.Run(t, func(r *retry.R) {
		keys, _, err := clients[2].KV().Keys("sem/pool/", "", &consulapi.QueryOptions{RequireConsistent: true})
		if err != nil || len(keys) != 4 {
			r.Fatalf("keys = %q, %v", keys, err)
		}
	}, retry.Timeout(time.Minute))
	notYet(t, third, "a third holder of a semaphore of limit 2")
	if err := sems[0].Release(); err != nil {
		t.Fatal(err)
	}
	within(t, third, time.Minute, "the third contender after a release")
	for _, s := range sems[1:] {
		if err := s.Release(); err != nil {
			t.Fatal(err)
		}
	}
}

func handover(t *testing.T, holder, waiter *consulapi.Client, stop chan struct{}) {
	l1, err := holder.LockKey("jobs/handover")
	if err != nil {
		t.Fatal(err)
	}
	l2, err := waiter.LockKey("jobs/handover")
	if err != nil {
		t.Fatal(err)
	}
	within(t, acquired(func() (<-chan struct{}, error) { return l1.Lock(stop) }), time.Minute, "first lock")
	second := acquired(func() (<-chan struct{}, error) { return l2.Lock(stop) })
	p, _, err := waiter.KV().Get("jobs/handover", &consulapi.QueryOptions{RequireConsistent: true})
	if err != nil || p == nil || p.Session == "" || p.LockIndex != 1 {
		t.Fatalf("held key = %+v, %v", p, err)
	}
	notYet(t, second, "the second lock while the first is held")
	start := time.Now()
	if err := l1.Unlock(); err != nil {
		t.Fatal(err)
	}
	within(t, second, time.Minute, "the second lock after Unlock")
	t.Logf("handover after Unlock: %s", time.Since(start).Round(time.Millisecond))
	p, _, _ = waiter.KV().Get("jobs/handover", &consulapi.QueryOptions{RequireConsistent: true})
	if p == nil || p.LockIndex != 2 || p.Flags != consulapi.LockFlagValue {
		t.Fatalf("key after the handover = %+v", p)
	}
	if err := l2.Unlock(); err != nil {
		t.Fatal(err)
	}
}

var lockDelaysMetric = regexp.MustCompile(`(?m)^nexus_lock_delays (\d+)`)

func holderKilled(t *testing.T, c *proccluster.Cluster, clients []*consulapi.Client, holderNode, waiterNode int, stop chan struct{}) {
	const lockDelay = 5 * time.Second
	holder, waiter := clients[holderNode], clients[waiterNode]
	opts := func() *consulapi.LockOptions {
		return &consulapi.LockOptions{Key: "jobs/killed", SessionTTL: "15s",
			SessionOpts: &consulapi.SessionEntry{Name: "killed-test", TTL: "15s", LockDelay: lockDelay}}
	}
	l1, err := holder.LockOpts(opts())
	if err != nil {
		t.Fatal(err)
	}
	l2, err := waiter.LockOpts(opts())
	if err != nil {
		t.Fatal(err)
	}
	within(t, acquired(func() (<-chan struct{}, error) { return l1.Lock(stop) }), time.Minute, "the holder's lock")
	consistent := &consulapi.QueryOptions{RequireConsistent: true}
	held, _, err := waiter.KV().Get("jobs/killed", consistent)
	if err != nil || held == nil || held.Session == "" {
		t.Fatalf("held key = %+v, %v", held, err)
	}
	if s, _, err := waiter.Session().Info(held.Session, consistent); err != nil || s == nil ||
		s.Node != c.Node(holderNode).Name || s.LockDelay != lockDelay {
		t.Fatalf("holder's session = %+v, %v", s, err)
	}
	second := acquired(func() (<-chan struct{}, error) { return l2.Lock(stop) })
	notYet(t, second, "the waiter's lock while the holder lives")

	killed := time.Now()
	if err := c.Kill(holderNode); err != nil {
		t.Fatal(err)
	}
	// The leader invalidates the session (node failed): the key is
	// released and in its lock delay, which the waiter's node shows.
	var released time.Duration
	retry.Run(t, func(r *retry.R) {
		if released == 0 {
			p, _, err := waiter.KV().Get("jobs/killed", consistent)
			if err != nil || p == nil || p.Session != "" {
				r.Fatalf("key = %+v, %v", p, err)
			}
			released = time.Since(killed)
		}
		if n := lockDelays(c.URL(waiterNode, "/metrics")); n != "1" {
			r.Fatalf("nexus_lock_delays = %q", n)
		}
	}, retry.Timeout(2*time.Minute))
	within(t, second, 2*time.Minute, "the waiter's lock after the holder's node was killed")
	got := time.Since(killed)
	t.Logf("holder node killed: key released after %s, waiter holds after %s (lock delay %s)",
		released.Round(time.Millisecond), got.Round(time.Millisecond), lockDelay)
	// The release was seen at most a poll late; the leader times the
	// delay from when it applied the release.
	if got < released+lockDelay-time.Second {
		t.Fatalf("the waiter held the lock %s after the release, before the %s lock delay ended", got-released, lockDelay)
	}
	p, _, err := waiter.KV().Get("jobs/killed", consistent)
	if err != nil || p == nil || p.Session == "" || p.Session == held.Session || p.LockIndex != held.LockIndex+1 {
		t.Fatalf("key after the takeover = %+v (was %+v), %v", p, held, err)
	}
	if s, _, err := waiter.Session().Info(held.Session, consistent); err != nil || s != nil {
		t.Fatalf("the killed holder's session = %+v, %v", s, err)
	}
	if err := l2.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// lockDelays reads nexus_lock_delays from a node's /metrics ("" when
// unreadable).
func lockDelays(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := lockDelaysMetric.FindSubmatch(b)
	if m == nil {
		return ""
	}
	return string(m[1])
}
