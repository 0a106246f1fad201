package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/proccluster"
)

// TestThreeNodeKillLeader is the acceptance test: writes through a follower
// are visible everywhere, a kill -9 of the leader under write load elects a
// new leader among the survivors, the killed node rejoins and catches up, and
// no acknowledged write is lost on any node.
//
// It runs once per Raft log store (--raft-log-store): raft-boltdb, the
// default, and raft-wal.
func TestThreeNodeKillLeader(t *testing.T) {
	for _, store := range []struct{ name, file string }{{"boltdb", "raft.db"}, {"wal", "wal"}} {
		t.Run(store.name, func(t *testing.T) {
			o := baseOptions(t)
			o.ExtraArgs = append(o.ExtraArgs, "--raft-log-store="+store.name)
			c := startCluster(t, o)
			for _, i := range all(c) {
				if _, err := os.Stat(filepath.Join(c.Node(i).DataDir, "raft", store.file)); err != nil {
					t.Fatalf("%s runs without its %s log store: %v", c.Node(i).Name, store.name, err)
				}
			}
			threeNodeKillLeader(t, c)
		})
	}
}

func threeNodeKillLeader(t *testing.T, c *proccluster.Cluster) {
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	leader := mustLeader(t, ctx, c)
	mustAllReady(t, ctx, c)
	follower := (leader + 1) % c.N()
	t.Logf("leader %s, writing through follower %s", c.Node(leader).Name, c.Node(follower).Name)

	// --- a service registered through a follower -----------------------------
	reg := jsonValue(map[string]any{"name": "web", "type": "http", "address": "10.0.0.1", "port": 9001})
	r, err := a.do(ctx, follower, http.MethodPost, "/services/register", reg, 10*time.Second)
	if err != nil || (r.status != http.StatusCreated && r.status != http.StatusOK) {
		t.Fatalf("POST /services/register on follower: %v %v", err, r)
	}
	var inst struct {
		ID      string `json:"id"`
		Service string `json:"service"`
		Address string `json:"address"`
		Port    int    `json:"port"`
		Node    string `json:"node"`
	}
	if err := json.Unmarshal(r.body, &inst); err != nil || inst.Service != "web" || inst.Port != 9001 || inst.Address != "10.0.0.1" {
		t.Errorf("register answer: %v %s", err, r)
	}
	if inst.Node != "" && inst.Node != c.Node(follower).Name {
		t.Errorf("instance owner = %q, want the receiving node %s", inst.Node, c.Node(follower).Name)
	}
	if r.header.Get("X-Nexus-Index") == "" {
		t.Errorf("register answer lacks X-Nexus-Index")
	}
	checkService := func(i int) error {
		r, err := a.do(ctx, i, http.MethodGet, "/services/web", nil, 5*time.Second)
		if err != nil {
			return err
		}
		if r.status != http.StatusOK {
			return fmt.Errorf("GET /services/web: %s", r)
		}
		var svc struct {
			Name      string `json:"name"`
			Type      string `json:"type"`
			Instances []struct {
				ID   string `json:"id"`
				Port int    `json:"port"`
			} `json:"instances"`
		}
		if err := json.Unmarshal(r.body, &svc); err != nil {
			return fmt.Errorf("GET /services/web: %v: %s", err, r)
		}
		if svc.Name != "web" || svc.Type != "http" || len(svc.Instances) != 1 || svc.Instances[0].Port != 9001 ||
			(inst.ID != "" && svc.Instances[0].ID != inst.ID) {
			return fmt.Errorf("GET /services/web: unexpected %s", r)
		}
		return nil
	}
	if err := checkService(follower); err != nil {
		t.Errorf("read-your-writes on %s: %v", c.Node(follower).Name, err)
	}
	for _, i := range all(c) {
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := waitFor(pctx, "service web on "+c.Node(i).Name, func() error { return checkService(i) }); err != nil {
			t.Error(err)
		}
		pcancel()
	}

	// --- config keys set through a follower ---------------------------------
	values := map[string][]byte{
		"e2e/static/object": jsonValue(map[string]any{"x": 1, "s": "hi", "l": []any{true, nil, 2.5}}),
		"e2e/static/string": jsonValue("hello"),
		"e2e/static/number": jsonValue(42),
	}
	var written []entry
	for _, key := range sortedKeys(values) {
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		e, resp, err := a.putConfig(wctx, follower, key, values[key])
		wcancel()
		if err != nil {
			t.Fatal(err)
		}
		if e.Key != key || canon(e.Value) != canon(values[key]) || e.ModifyIndex == 0 {
			t.Errorf("PUT %s answered %s", key, resp)
		}
		if resp.header.Get("X-Nexus-Index") == "" {
			t.Errorf("PUT %s answer lacks X-Nexus-Index", key)
		}
		// Read-your-writes: the answering node has it at once.
		got, found, err := a.getConfig(ctx, follower, key)
		if err != nil || !found || canon(got.Value) != canon(values[key]) || got.ModifyIndex != e.ModifyIndex {
			t.Errorf("read-your-writes on %s for %s: found=%v %s@%d err=%v; want %s@%d",
				c.Node(follower).Name, key, found, got.Value, got.ModifyIndex, err, values[key], e.ModifyIndex)
		}
		written = append(written, e)
	}
	for _, e := range written {
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := a.waitConfigEverywhere(pctx, all(c), e); err != nil {
			t.Error(err)
		}
		pcancel()
	}
	if t.Failed() {
		t.FailNow()
	}

	// --- write load while the leader is killed ------------------------------
	w := newLoadWriter(a, "e2e/load/")
	w.start(ctx, 6, 100000)
	defer w.Stop()
	start := time.Now()
	if err := waitCount(ctxFor(ctx, 30*time.Second), "acknowledged writes before the kill", 30,
		func() int { return w.ackedSince(start, -1) }); err != nil {
		t.Fatalf("%v; writer: %s", err, w.summary())
	}

	killed := leader
	killedName := c.Node(killed).Name
	t.Logf("kill -9 leader %s (pid %d); writer so far: %s", killedName, c.Node(killed).PID, w.summary())
	killedAt := time.Now()
	if err := c.Kill(killed); err != nil {
		t.Fatal(err)
	}
	newLeader, newName, err := c.WaitLeader(ctxFor(ctx, 30*time.Second))
	if err != nil {
		t.Fatalf("no new leader after killing %s: %v", killedName, err)
	}
	if newLeader == killed {
		t.Fatalf("leader is still the killed node %s", killedName)
	}
	t.Logf("new leader %s after %v", newName, time.Since(killedAt).Round(time.Millisecond))

	// Writes succeed on every survivor.
	for _, i := range others(c, killed) {
		key := "e2e/after-kill/" + c.Node(i).Name
		e, _, err := a.putConfig(ctxFor(ctx, 20*time.Second), i, key, jsonValue("ok"))
		if err != nil {
			t.Fatalf("write on survivor %s after failover: %v", c.Node(i).Name, err)
		}
		written = append(written, e)
	}
	if err := waitCount(ctxFor(ctx, 20*time.Second), "load writes acknowledged after the kill", 20,
		func() int { return w.ackedSince(killedAt, -1) }); err != nil {
		t.Fatalf("%v; writer: %s", err, w.summary())
	}
	t.Logf("first write after failover acknowledged; writer: %s", w.summary())

	// --- the killed node restarts and catches up ----------------------------
	ackedBeforeRestart, _ := w.snapshot()
	if err := c.Restart(killed); err != nil {
		t.Fatal(err)
	}
	restartedAt := time.Now()
	if err := c.WaitReady(ctxFor(ctx, 60*time.Second), killed); err != nil {
		t.Fatalf("restarted %s not ready: %v", killedName, err)
	}
	t.Logf("%s ready %v after restart", killedName, time.Since(restartedAt).Round(time.Millisecond))
	// Ready means "applied up to the leader": everything acknowledged before
	// the restart must be readable there at once, without polling.
	checkHasAll(t, ctx, a, killed, "e2e/load/", ackedBeforeRestart)
	if err := waitCount(ctxFor(ctx, 20*time.Second), "load writes acknowledged by the restarted node", 20,
		func() int { return w.ackedSince(restartedAt, killed) }); err != nil {
		t.Errorf("%v; writer: %s", err, w.summary())
	}
	w.Stop()
	t.Logf("writer stopped: %s", w.summary())

	// --- no acknowledged write lost, replicas agree -------------------------
	for _, s := range w.unexpected {
		t.Errorf("response outside the contract: %s", s)
	}
	for _, s := range w.rywErrors {
		t.Errorf("read-your-writes violated: %s", s)
	}
	acked, attempted := w.snapshot()
	verifyConverged(t, ctxFor(ctx, 60*time.Second), a, "e2e/load/", acked, attempted)
	for _, e := range written {
		if err := a.waitConfigEverywhere(ctxFor(ctx, 20*time.Second), all(c), e); err != nil {
			t.Error(err)
		}
	}
	for _, i := range all(c) {
		if err := checkService(i); err != nil {
			t.Errorf("service web on %s at the end: %v", c.Node(i).Name, err)
		}
	}
}

// TestGracefulStopAndRestart: SIGTERM on the leader exits 0 and moves
// leadership; the node restarts with no membership change and no data lost.
func TestGracefulStopAndRestart(t *testing.T) {
	c := startCluster(t, baseOptions(t))
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	leader := mustLeader(t, ctx, c)
	mustAllReady(t, ctx, c)

	var written []entry
	write := func(nodes []int, prefix string, n int) {
		t.Helper()
		for k := 0; k < n; k++ {
			i := nodes[k%len(nodes)]
			key := fmt.Sprintf("%s%03d", prefix, k)
			e, _, err := a.putConfig(ctxFor(ctx, 20*time.Second), i, key, jsonValue(map[string]any{"k": k, "via": c.Node(i).Name}))
			if err != nil {
				t.Fatal(err)
			}
			written = append(written, e)
		}
	}
	write(all(c), "e2e/graceful/before/", 30)

	name := c.Node(leader).Name
	stopStart := time.Now()
	type stopResult struct {
		code int
		err  error
		took time.Duration
	}
	stopped := make(chan stopResult, 1)
	go func() {
		code, err := c.Stop(leader)
		stopped <- stopResult{code, err, time.Since(stopStart)}
	}()
	// The survivors agree on a new leader, possibly while the old one is
	// still shutting down (it transfers leadership first).
	newLeader, newName, err := c.WaitLeaderAmong(ctxFor(ctx, 30*time.Second), others(c, leader))
	if err != nil {
		t.Fatalf("no leader among the survivors after SIGTERM to %s: %v", name, err)
	}
	t.Logf("survivors agree on leader %s %v after SIGTERM to %s", newName, time.Since(stopStart).Round(time.Millisecond), name)
	var sr stopResult
	select {
	case sr = <-stopped:
	case <-ctx.Done():
		t.Fatal("Stop did not return")
	}
	if sr.err != nil {
		t.Fatalf("SIGTERM %s: %v", name, sr.err)
	}
	if sr.code != 0 {
		t.Errorf("%s exited with %d after SIGTERM, want 0", name, sr.code)
	}
	t.Logf("%s exited %d, %v after SIGTERM", name, sr.code, sr.took.Round(time.Millisecond))
	if _, cur, err := c.WaitLeader(ctxFor(ctx, 30*time.Second)); err != nil || c.Index(cur) == leader {
		t.Fatalf("leader after the stop: %q, %v", cur, err)
	}

	write(others(c, leader), "e2e/graceful/during/", 30)

	// A graceful stop is not a leave: the stopped node stays a Raft server.
	if ids, err := a.raftServers(ctx, newLeader); err != nil {
		t.Errorf("%v", err)
	} else if !contains(ids, name) || len(ids) != c.N() {
		t.Errorf("raft servers after graceful stop of %s = %v, want all %d nodes", name, ids, c.N())
	}

	if err := c.Restart(leader); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctxFor(ctx, 60*time.Second), leader); err != nil {
		t.Fatalf("%s not ready after restart: %v", name, err)
	}
	ackedSoFar := map[string]ackRecord{}
	for _, e := range written {
		ackedSoFar[e.Key] = ackRecord{value: canon(e.Value), index: e.ModifyIndex}
	}
	checkHasAll(t, ctx, a, leader, "e2e/graceful/", ackedSoFar)
	write(all(c), "e2e/graceful/after/", 15)

	for _, e := range written {
		if err := a.waitConfigEverywhere(ctxFor(ctx, 20*time.Second), all(c), e); err != nil {
			t.Error(err)
		}
	}
	acked := map[string]ackRecord{}
	attempted := map[string]string{}
	for _, e := range written {
		acked[e.Key] = ackRecord{value: canon(e.Value), index: e.ModifyIndex}
		attempted[e.Key] = canon(e.Value)
	}
	verifyConverged(t, ctxFor(ctx, 30*time.Second), a, "e2e/graceful/", acked, attempted)

	_, cur, err := c.WaitLeader(ctxFor(ctx, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := a.raftServers(ctx, c.Index(cur)); err != nil {
		t.Errorf("%v", err)
	} else if len(ids) != c.N() {
		t.Errorf("raft servers after restart = %v, want %d", ids, c.N())
	}
}

// TestDataDirOfAnotherNodeRefused: a data dir written by one node must not be
// used by a node of another name.
func TestDataDirOfAnotherNodeRefused(t *testing.T) {
	o := baseOptions(t)
	o.Nodes = 1
	o.NamePrefix = "owner" // node "owner1"; its paths never contain the name
	c := startCluster(t, o)
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	mustLeader(t, ctx, c)
	mustAllReady(t, ctx, c)
	e, _, err := a.putConfig(ctxFor(ctx, 20*time.Second), 0, "e2e/owned", jsonValue("by owner1"))
	if err != nil {
		t.Fatal(err)
	}
	if code, err := c.Stop(0); err != nil || code != 0 {
		t.Fatalf("Stop owner1 = %d, %v", code, err)
	}

	startedAt := time.Now()
	if err := c.StartWith(0, func(args []string) []string {
		return proccluster.SetArg(args, "--node", "intruder9")
	}); err != nil {
		t.Fatal(err)
	}
	code, err := c.WaitExit(ctxFor(ctx, 20*time.Second), 0)
	out := c.LastRunLogs(0)
	if err != nil {
		_ = c.Kill(0)
		t.Fatalf("node intruder9 on owner1's data dir kept running: %v\n%s", err, out)
	}
	t.Logf("intruder9 exited with %d after %v", code, time.Since(startedAt).Round(time.Millisecond))
	if code == 0 || code == -1 {
		t.Errorf("exit code %d, want a non-zero exit (not a signal)", code)
	}
	if !strings.Contains(out, "owner1") {
		t.Errorf("stderr does not name the data dir's node owner1:\n%s", out)
	}

	// The refused start must not have damaged the data dir.
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctxFor(ctx, 60*time.Second), 0); err != nil {
		t.Fatal(err)
	}
	if err := a.waitConfigEverywhere(ctxFor(ctx, 10*time.Second), all(c), e); err != nil {
		t.Error(err)
	}
}

// verifyConverged checks, on every node, that each acknowledged key under
// prefix has its acknowledged value and index, that every present key was
// written by the test with that value, and that all nodes list the same
// entries. It polls until ctx ends.
func verifyConverged(t *testing.T, ctx context.Context, a *api, prefix string, acked map[string]ackRecord, attempted map[string]string) {
	t.Helper()
	c := a.c
	lists := make([]map[string]entry, c.N())
	for _, i := range all(c) {
		err := waitFor(ctx, fmt.Sprintf("acknowledged writes on %s", c.Node(i).Name), func() error {
			es, err := a.listConfig(ctx, i, prefix)
			if err != nil {
				return err
			}
			m := make(map[string]entry, len(es))
			for _, e := range es {
				m[e.Key] = e
			}
			lists[i] = m
			var missing, wrong []string
			for k, ack := range acked {
				e, ok := m[k]
				switch {
				case !ok:
					missing = append(missing, k)
				case canon(e.Value) != ack.value || (ack.index != 0 && e.ModifyIndex != ack.index):
					wrong = append(wrong, fmt.Sprintf("%s=%s@%d (acked %s@%d)", k, e.Value, e.ModifyIndex, ack.value, ack.index))
				}
			}
			for k, e := range m {
				if v, ok := attempted[k]; !ok || v != canon(e.Value) {
					wrong = append(wrong, fmt.Sprintf("%s=%s never written (sent %q)", k, e.Value, v))
				}
			}
			if len(missing)+len(wrong) > 0 {
				sort.Strings(missing)
				sort.Strings(wrong)
				return fmt.Errorf("%d entries listed, %d acknowledged: %d missing %v, %d wrong %v",
					len(m), len(acked), len(missing), head(missing, 10), len(wrong), head(wrong, 10))
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	// Unacknowledged writes may have been applied too; all replicas must
	// end up with the same set.
	err := waitFor(ctx, "replicas list the same entries", func() error {
		for _, i := range all(c) {
			es, err := a.listConfig(ctx, i, prefix)
			if err != nil {
				return err
			}
			m := make(map[string]entry, len(es))
			for _, e := range es {
				m[e.Key] = e
			}
			lists[i] = m
		}
		for _, i := range all(c)[1:] {
			if d := diffLists(lists[0], lists[i]); d != "" {
				return fmt.Errorf("%s vs %s: %s", c.Node(0).Name, c.Node(i).Name, d)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
		return
	}
	// Spot-check single-key reads against the lists.
	var keys []string
	for k := range acked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	step := len(keys)/100 + 1
	for _, i := range all(c) {
		for j := 0; j < len(keys); j += step {
			k := keys[j]
			e, found, err := a.getConfig(ctx, i, k)
			if err != nil || !found || canon(e.Value) != acked[k].value {
				t.Errorf("GET %s on %s: found=%v value=%s err=%v, want %s", k, c.Node(i).Name, found, e.Value, err, acked[k].value)
			}
		}
	}
	t.Logf("%d entries under %s identical on %d nodes (%d acknowledged)", len(lists[0]), prefix, c.N(), len(acked))
}

// checkHasAll reads node i's entries under prefix once (no polling) and
// reports every acknowledged key that is missing or different.
func checkHasAll(t *testing.T, ctx context.Context, a *api, i int, prefix string, acked map[string]ackRecord) {
	t.Helper()
	es, err := a.listConfig(ctx, i, prefix)
	if err != nil {
		t.Errorf("list on %s: %v", a.c.Node(i).Name, err)
		return
	}
	m := make(map[string]entry, len(es))
	for _, e := range es {
		m[e.Key] = e
	}
	var bad []string
	for k, ack := range acked {
		if e, ok := m[k]; !ok || canon(e.Value) != ack.value {
			bad = append(bad, fmt.Sprintf("%s (acked at index %d)", k, ack.index))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		st, _ := a.do(ctx, i, http.MethodGet, "/status", nil, 5*time.Second)
		t.Errorf("%s answered /ready 200 but lacks %d of %d writes acknowledged before: %v; its /status: %s",
			a.c.Node(i).Name, len(bad), len(acked), head(bad, 10), st)
	}
}

func diffLists(x, y map[string]entry) string {
	var d []string
	for k, e := range x {
		f, ok := y[k]
		if !ok {
			d = append(d, "only first: "+k)
		} else if canon(e.Value) != canon(f.Value) || e.ModifyIndex != f.ModifyIndex {
			d = append(d, fmt.Sprintf("%s: %s@%d vs %s@%d", k, e.Value, e.ModifyIndex, f.Value, f.ModifyIndex))
		}
	}
	for k := range y {
		if _, ok := x[k]; !ok {
			d = append(d, "only second: "+k)
		}
	}
	if len(d) == 0 {
		return ""
	}
	sort.Strings(d)
	return fmt.Sprintf("%d differences: %v", len(d), head(d, 10))
}

func mustLeader(t *testing.T, ctx context.Context, c *proccluster.Cluster) int {
	t.Helper()
	start := time.Now()
	i, name, err := c.WaitLeader(ctxFor(ctx, 60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader %s after %v", name, time.Since(start).Round(time.Millisecond))
	return i
}

func mustAllReady(t *testing.T, ctx context.Context, c *proccluster.Cluster) {
	t.Helper()
	if err := c.WaitAllReady(ctxFor(ctx, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// ctxFor returns a child of ctx that ends after d. The cancel func is left to
// the parent's cancellation (tests cancel their root context on return).
func ctxFor(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	_ = cancel
	return c
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func head[T any](xs []T, n int) []T {
	if len(xs) > n {
		return xs[:n]
	}
	return xs
}
