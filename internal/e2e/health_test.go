package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
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

	// SIGSTOP: the survivors see the node alive -> suspect -> failed, and
	// only failed marks its instance critical; SIGCONT: it is alive again
	// everywhere and recovers.
	testSuspectThenFailed(t, c, a, victim)
}

// memberStatus returns the status node i gives member name in
// GET /cluster/members ("" if it does not list it or does not answer).
func (a *api) memberStatus(ctx context.Context, i int, name string) string {
	r, err := a.do(ctx, i, "GET", "/cluster/members", nil, 2*time.Second)
	if err != nil || r.status != 200 {
		return ""
	}
	var ms []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	if json.Unmarshal(r.body, &ms) != nil {
		return ""
	}
	for _, m := range ms {
		if m.Name == name {
			return m.Status
		}
	}
	return ""
}

// waitMember polls until every node in idx gives member name status.
func (a *api) waitMember(t *testing.T, idx []int, name, status string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := waitFor(ctx, name+" "+status, func() error {
		for _, i := range idx {
			if st := a.memberStatus(ctx, i, name); st != status {
				return fmt.Errorf("node %d: %s is %q", i, name, st)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// testSuspectThenFailed SIGSTOPs the victim (owner of the plain/p1 instance,
// without checks) and watches every survivor's /cluster/members every 20 ms.
func testSuspectThenFailed(t *testing.T, c *proccluster.Cluster, a *api, victim int) {
	name := c.Node(victim).Name
	survivors := others(c, victim)
	for _, i := range all(c) {
		for _, j := range all(c) {
			a.waitMember(t, []int{i}, c.Node(j).Name, "alive", 20*time.Second)
		}
	}
	a.waitStatus(t, survivors[0], "plain", "p1", "passing", 20*time.Second)

	type change struct {
		status string
		at     time.Duration // since SIGSTOP
	}
	views := map[int][]change{}
	var badCritical string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	paused := time.Now()
	if err := c.Pause(victim); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		// The instance first, then the members: if it is critical, the
		// leader saw the victim failed before, and with the victim still
		// stopped some survivor must say failed now.
		in, _ := a.instanceOn(ctx, survivors[0], "plain", "p1")
		failed := 0
		for _, i := range survivors {
			st := a.memberStatus(ctx, i, name)
			if v := views[i]; st != "" && (len(v) == 0 || v[len(v)-1].status != st) {
				views[i] = append(v, change{st, time.Since(paused)})
			}
			if st == "failed" {
				failed++
			}
		}
		if in.Status == "critical" && failed == 0 && badCritical == "" {
			badCritical = fmt.Sprintf("p1 critical %v after SIGSTOP while no survivor says %s failed (%v)", time.Since(paused), name, views)
		}
		if failed == len(survivors) && in.Status == "critical" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatalf("SIGSTOP of %s: not failed and critical everywhere within 30s: %+v", name, views)
	}
	if badCritical != "" {
		t.Fatal(badCritical)
	}
	var firstSuspect, firstFailed, suspectToFailed time.Duration = -1, -1, -1
	for _, i := range survivors {
		v := views[i]
		var seq []string
		for _, ch := range v {
			seq = append(seq, ch.status)
			if ch.status == "failed" && (firstFailed < 0 || ch.at < firstFailed) {
				firstFailed = ch.at
			}
		}
		switch got := strings.Join(seq, " -> "); got {
		case "alive -> suspect -> failed":
			if firstSuspect < 0 || v[1].at < firstSuspect {
				firstSuspect = v[1].at
			}
			suspectToFailed = max(suspectToFailed, v[2].at-v[1].at)
		case "alive -> failed":
			// Gossip told this survivor before its own probe of the
			// victim failed.
		default:
			t.Errorf("node %d saw %s: %s", i, name, got)
		}
	}
	var desc []string
	for _, i := range survivors {
		var seq []string
		for _, ch := range views[i] {
			seq = append(seq, fmt.Sprintf("%s@%v", ch.status, ch.at.Round(time.Millisecond)))
		}
		desc = append(desc, fmt.Sprintf("%s: %s", c.Node(i).Name, strings.Join(seq, " ")))
	}
	t.Logf("SIGSTOP of %s as seen by %s", name, strings.Join(desc, "; "))
	if firstSuspect < 0 {
		t.Fatalf("no survivor saw %s suspect before failed", name)
	}
	t.Logf("SIGSTOP of %s: suspect after %v, failed after %v (longest suspect -> failed on one node: %v)",
		name, firstSuspect.Round(time.Millisecond), firstFailed.Round(time.Millisecond), suspectToFailed.Round(time.Millisecond))
	for _, i := range survivors {
		if logs := c.LastRunLogs(i); !strings.Contains(logs, `"msg":"member suspect"`) && len(views[i]) == 3 {
			t.Errorf("node %d showed %s suspect without an info line \"member suspect\"", i, name)
		}
	}

	if err := c.Resume(victim); err != nil {
		t.Fatal(err)
	}
	back := a.waitMember(t, survivors, name, "alive", 20*time.Second)
	t.Logf("SIGCONT of %s: alive on every survivor after %v", name, back.Round(time.Millisecond))
	a.waitStatus(t, survivors[0], "plain", "p1", "passing", 20*time.Second)
	// The resumed node's own view settles too: no peer left suspect.
	for _, i := range survivors {
		a.waitMember(t, []int{victim}, c.Node(i).Name, "alive", 10*time.Second)
	}

	// A short stop: SIGCONT as soon as a survivor suspects the victim. It
	// answers again before gossip declares it failed (about 1.5 s later), so
	// it goes suspect -> alive and its instance stays passing throughout.
	views = map[int][]change{}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	var resumedAt, aliveAfter time.Duration = -1, -1
	var critical string
	paused = time.Now()
	if err := c.Pause(victim); err != nil {
		t.Fatal(err)
	}
	for ctx2.Err() == nil {
		in, _ := a.instanceOn(ctx2, survivors[0], "plain", "p1")
		if in.Status == "critical" && critical == "" {
			critical = fmt.Sprintf("p1 critical %v after a short SIGSTOP", time.Since(paused))
		}
		alive, suspect := 0, false
		for _, i := range survivors {
			st := a.memberStatus(ctx2, i, name)
			if v := views[i]; st != "" && (len(v) == 0 || v[len(v)-1].status != st) {
				views[i] = append(v, change{st, time.Since(paused)})
			}
			alive += btoi(st == "alive")
			suspect = suspect || st == "suspect"
		}
		if resumedAt < 0 && suspect {
			if err := c.Resume(victim); err != nil {
				t.Fatal(err)
			}
			resumedAt = time.Since(paused)
		}
		if resumedAt >= 0 && alive == len(survivors) {
			aliveAfter = time.Since(paused) - resumedAt
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resumedAt < 0 {
		_ = c.Resume(victim)
	}
	desc = desc[:0]
	sawShort := false
	for _, i := range survivors {
		var seq, at []string
		for _, ch := range views[i] {
			seq = append(seq, ch.status)
			at = append(at, fmt.Sprintf("%s@%v", ch.status, ch.at.Round(time.Millisecond)))
		}
		desc = append(desc, fmt.Sprintf("%s: %s", c.Node(i).Name, strings.Join(at, " ")))
		switch strings.Join(seq, " -> ") {
		case "alive -> suspect -> alive":
			sawShort = true
		case "alive":
		default:
			t.Errorf("short SIGSTOP: node %d saw %s", i, strings.Join(seq, " -> "))
		}
	}
	t.Logf("short SIGSTOP of %s (SIGCONT at the first suspicion) as seen by %s", name, strings.Join(desc, "; "))
	if ctx2.Err() != nil || !sawShort {
		t.Fatalf("short SIGSTOP of %s: no survivor saw it suspect -> alive (SIGCONT after %v)", name, resumedAt)
	}
	if critical != "" {
		t.Fatal(critical)
	}
	t.Logf("short SIGSTOP of %s: SIGCONT after %v, alive on every survivor %v later", name,
		resumedAt.Round(time.Millisecond), aliveAfter.Round(time.Millisecond))
	if st, _ := a.instanceOn(context.Background(), survivors[0], "plain", "p1"); st.Status != "passing" {
		t.Fatalf("after a short SIGSTOP p1 is %q", st.Status)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
