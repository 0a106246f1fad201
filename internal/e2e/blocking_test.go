package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A blocked watcher on a follower wakes shortly after a write on the leader,
// and thousands of idle watchers cost the node no CPU.
func TestBlockingQueries(t *testing.T) {
	o := healthOptions(t)
	c := startCluster(t, o)
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader, _, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAllReady(ctx); err != nil {
		t.Fatal(err)
	}
	follower := (leader + 1) % c.N()

	// Wake-up latency: write on the leader, watcher blocked on a follower.
	a.mustDo(t, leader, "PUT", "/config/watch/k", "v0", 200)
	var lat []time.Duration
	for round := 1; round <= 30; round++ {
		r, err := a.do(ctx, follower, "GET", "/config/watch/k?consistent", nil, 5*time.Second)
		if err != nil || r.status != 200 {
			t.Fatalf("read: %v %v", r, err)
		}
		idx := r.header.Get("X-Nexus-Index")
		woke := make(chan time.Time, 1)
		go func() {
			r, err := a.do(ctx, follower, "GET", "/config/watch/k?index="+idx+"&wait=20s", nil, 25*time.Second)
			if err != nil || r.status != 200 {
				t.Errorf("blocking read: %v %v", r, err)
			}
			woke <- time.Now()
		}()
		time.Sleep(50 * time.Millisecond) // let the watcher block
		a.mustDo(t, leader, "PUT", "/config/watch/k", fmt.Sprintf("v%d", round), 200)
		acked := time.Now()
		select {
		case w := <-woke:
			lat = append(lat, w.Sub(acked))
		case <-time.After(10 * time.Second):
			t.Fatal("blocked watcher did not wake within 10s of the write")
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p50, p99 := lat[len(lat)/2], lat[len(lat)-1]
	t.Logf("write acknowledged on the leader → watcher on a follower woke: p50 %v, max %v (n=%d)", p50, p99, len(lat))
	if p95 := lat[len(lat)*95/100]; p95 > 100*time.Millisecond {
		t.Errorf("blocked watcher woke %v after the change (p95), want under 100ms", p95)
	}

	// 10,000 idle watchers on one node.
	const watchers = 10000
	r, err := a.do(ctx, follower, "GET", "/config/watch/k?consistent", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	idx := r.header.Get("X-Nexus-Index")
	tr := &http.Transport{MaxConnsPerHost: watchers + 10, MaxIdleConnsPerHost: watchers + 10,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	wctx, wcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for i := 0; i < watchers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(wctx, "GET", c.URL(follower, "/config/watch/k?index="+idx+"&wait=2m"), nil)
			resp, err := hc.Do(req)
			if err == nil {
				resp.Body.Close()
				return
			}
			if wctx.Err() == nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
			}
		}()
	}
	// Wait until the node reports them all blocked.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if n := blockingGauge(t, a, ctx, follower); n >= watchers {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := blockingGauge(t, a, ctx, follower); n < watchers {
		wcancel()
		wg.Wait()
		t.Fatalf("only %v of %d watchers blocked; errors: %v", n, watchers, first(errs, 3))
	}
	pid := c.Node(follower).PID
	cpu0 := procCPU(t, pid)
	time.Sleep(5 * time.Second)
	cpu1 := procCPU(t, pid)
	t.Logf("%d blocked watchers: node CPU over 5 s idle = %v", watchers, cpu1-cpu0)
	if cpu1-cpu0 > 500*time.Millisecond {
		t.Errorf("idle watchers used %v CPU in 5 s, want near zero", cpu1-cpu0)
	}
	// One write wakes them all.
	a.mustDo(t, leader, "PUT", "/config/watch/k", "final", 200)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Error("not every watcher woke within 60s of the write")
	}
	wcancel()
	if len(errs) > 0 {
		t.Errorf("%d watchers failed: %v", len(errs), first(errs, 3))
	}
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// blockingGauge reads nexus_api_blocking_queries from node i.
func blockingGauge(t *testing.T, a *api, ctx context.Context, i int) float64 {
	r, err := a.do(ctx, i, "GET", "/metrics", nil, 5*time.Second)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(r.body), "\n") {
		if strings.HasPrefix(line, "nexus_api_blocking_queries ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "nexus_api_blocking_queries ")), 64)
			return v
		}
	}
	return 0
}

// procCPU is the user+system CPU time of a process (Linux /proc).
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which ends with ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ = 100
}
