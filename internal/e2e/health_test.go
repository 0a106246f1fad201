package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/proccluster"
)

// healthOptions keeps this file's clusters off the other tests' ports.
func healthOptions(t *testing.T) proccluster.Options {
	o := baseOptions(t)
	o.RaftPort, o.GossipPort, o.HTTPPort, o.GatewayPort = 22300, 22301, 22500, 22080
	return o
}

type instanceView struct {
	ID     string `json:"id"`
	Node   string `json:"node"`
	Status string `json:"status"`
	Checks []struct {
		Output string `json:"output"`
	} `json:"checks"`
}

// instanceOn reads one instance from node i's local replica.
func (a *api) instanceOn(ctx context.Context, i int, service, id string) (instanceView, bool) {
	r, err := a.do(ctx, i, "GET", "/services/"+service, nil, 2*time.Second)
	if err != nil || r.status != 200 {
		return instanceView{}, false
	}
	var svc struct {
		Instances []instanceView `json:"instances"`
	}
	if json.Unmarshal(r.body, &svc) != nil {
		return instanceView{}, false
	}
	for _, in := range svc.Instances {
		if in.ID == id {
			return in, true
		}
	}
	return instanceView{}, false
}

// waitStatus polls node i until the instance has status, and returns how long
// it took.
func (a *api) waitStatus(t *testing.T, i int, service, id, status string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last instanceView
	for ctx.Err() == nil {
		if in, ok := a.instanceOn(ctx, i, service, id); ok {
			last = in
			if in.Status == status {
				return time.Since(start)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node %d: %s/%s not %s within %s (last %+v)", i, service, id, status, timeout, last)
	return 0
}

func (a *api) mustDo(t *testing.T, i int, method, path string, body any, want int) response {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	r, err := a.do(context.Background(), i, method, path, b, 10*time.Second)
	if err != nil {
		t.Fatalf("%s %s on node %d: %v", method, path, i, err)
	}
	if r.status != want {
		t.Fatalf("%s %s on node %d: %s, want %d", method, path, i, r, want)
	}
	return r
}

func TestHealthChecksAndNodeFailure(t *testing.T) {
	o := healthOptions(t)
	c := startCluster(t, o)
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, _, err := c.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAllReady(ctx); err != nil {
		t.Fatal(err)
	}

	// TTL: critical until the first heartbeat; a heartbeat sent to another
	// node reaches the owner; no heartbeat for the TTL turns it critical.
	a.mustDo(t, 0, "POST", "/services/register", map[string]any{
		"name": "ttlsvc", "type": "http", "address": "10.0.0.1", "port": 1, "id": "t1", "check": map[string]string{"ttl": "2s"},
	}, 201)
	if in, _ := a.instanceOn(ctx, 0, "ttlsvc", "t1"); in.Status != "critical" {
		t.Fatalf("new TTL instance is %q, want critical until its first heartbeat", in.Status)
	}
	a.mustDo(t, 1, "PUT", "/services/ttlsvc/instances/t1/heartbeat", nil, 200)
	a.waitStatus(t, 2, "ttlsvc", "t1", "passing", 5*time.Second)
	expiry := a.waitStatus(t, 2, "ttlsvc", "t1", "critical", 10*time.Second)
	t.Logf("TTL 2s expired after %v without heartbeats", expiry)
	if in, _ := a.instanceOn(ctx, 2, "ttlsvc", "t1"); len(in.Checks) == 0 || in.Checks[0].Output == "" {
		t.Fatalf("expired TTL check keeps no output: %+v", in)
	}

	// HTTP check against a real server: passing, then 500 → critical, then
	// the server stops → critical with the error.
	var fail atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(200)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	a.mustDo(t, 1, "POST", "/services/register", map[string]any{
		"name": "websvc", "type": "http", "address": "127.0.0.1", "port": ln.Addr().(*net.TCPAddr).Port, "id": "w1",
		"check": map[string]string{"http": "http://" + ln.Addr().String() + "/health", "interval": "300ms", "timeout": "1s"},
	}, 201)
	a.waitStatus(t, 0, "websvc", "w1", "passing", 5*time.Second)
	fail.Store(true)
	a.waitStatus(t, 0, "websvc", "w1", "critical", 5*time.Second)
	fail.Store(false)
	a.waitStatus(t, 0, "websvc", "w1", "passing", 5*time.Second)
	srv.Close()
	a.waitStatus(t, 0, "websvc", "w1", "critical", 5*time.Second)

	// Node failure: kill -9 the node owning an instance without checks; the
	// leader marks it critical on every survivor; after a restart the owner
	// turns it passing again itself.
	victim := 2
	a.mustDo(t, victim, "POST", "/services/register", map[string]any{
		"name": "plain", "type": "http", "address": "10.0.0.3", "port": 3, "id": "p1",
	}, 201)
	a.waitStatus(t, 0, "plain", "p1", "passing", 5*time.Second)
	killed := time.Now()
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	var worst time.Duration
	for _, i := range []int{0, 1} {
		a.waitStatus(t, i, "plain", "p1", "critical", 10*time.Second)
		worst = max(worst, time.Since(killed))
	}
	t.Logf("kill -9 of %s: its instance critical on every survivor after %v", c.Node(victim).Name, worst)
	if worst > 5*time.Second {
		t.Errorf("instances of a killed node turned critical after %v, want under 5s", worst)
	}
	if in, _ := a.instanceOn(ctx, 0, "plain", "p1"); len(in.Checks) != 0 || in.Status != "critical" {
		t.Fatalf("after node failure: %+v", in)
	}
	if err := c.Restart(victim); err != nil {
		t.Fatal(err)
	}
	a.waitStatus(t, 0, "plain", "p1", "passing", 20*time.Second)

	// SIGSTOP: the node fails, SIGCONT: it comes back and recovers.
	if err := c.Pause(victim); err != nil {
		t.Fatal(err)
	}
	a.waitStatus(t, 0, "plain", "p1", "critical", 10*time.Second)
	if err := c.Resume(victim); err != nil {
		t.Fatal(err)
	}
	a.waitStatus(t, 0, "plain", "p1", "passing", 20*time.Second)
}
