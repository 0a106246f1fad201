package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/cmd/nexus/cli"
	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/registry"
)

// liveAPI is a real one-node agent (Raft, FSM, admin API) on loopback:
// nexus lock runs against it unchanged.
type liveAPI struct {
	addr  string
	store *registry.Store
}

func newLiveAPI(t *testing.T) *liveAPI {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a node")
	}
	a := agenttest.Start(t, agenttest.Node{Name: "n1", Ports: agenttest.NewPorts(t).Node(), Expect: 1})
	select {
	case <-a.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not become ready")
	}
	return &liveAPI{addr: a.AdminAddr().String(), store: a.FSM().Store()}
}

// lockRunResult is the outcome of one nexus lock run.
type lockRunResult struct {
	code           int
	stdout, stderr string
}

// runLock runs nexus lock in this process against the live API.
func (a *liveAPI) runLock(args ...string) lockRunResult {
	var stdout, stderr bytes.Buffer
	code := cli.Run(append([]string{"lock", "--http-addr", a.addr}, args...), strings.NewReader(""), &stdout, &stderr, nil)
	return lockRunResult{code, stdout.String(), stderr.String()}
}

func (a *liveAPI) entry(key string) *registry.ConfigEntry {
	tx := a.store.ReadTxn()
	defer tx.Abort()
	return tx.ConfigGet(nil, key)
}

func (a *liveAPI) sessions() []registry.Session {
	tx := a.store.ReadTxn()
	defer tx.Abort()
	return tx.Sessions(nil)
}

// TestLock_RunsCommandWhileHolding: CMD runs holding the lock with its
// fencing token in the environment; nexus lock exits with CMD's status,
// releases the key and destroys its session.
func TestLock_RunsCommandWhileHolding(t *testing.T) {
	a := newLiveAPI(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	res := a.runLock("--ttl", "10s", "jobs/report", "--", "sh", "-c",
		`echo "$NEXUS_LOCK_KEY $NEXUS_LOCK_INDEX" > `+out+`; echo hello; exit 3`)
	if res.code != 3 || res.stdout != "hello\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil || string(b) != "jobs/report/.lock 1\n" {
		t.Fatalf("CMD saw %q (%v)", b, err)
	}
	if e := a.entry("jobs/report/.lock"); e == nil || e.Session != "" || e.LockIndex != 1 {
		t.Fatalf("key after = %+v", e)
	}
	if s := a.sessions(); len(s) != 0 {
		t.Fatalf("sessions left: %+v", s)
	}
}

// TestLock_OneHolderAtATime: contenders run their command one after the
// other (a second mkdir of the same directory would fail), the waiters
// woken by blocking queries when the key is released.
func TestLock_OneHolderAtATime(t *testing.T) {
	a := newLiveAPI(t)
	held := filepath.Join(t.TempDir(), "held")
	const n = 4
	results := make(chan lockRunResult, n)
	for i := 0; i < n; i++ {
		go func() {
			results <- a.runLock("--ttl", "10s", "jobs/one", "--", "sh", "-c", `mkdir `+held+` && sleep 0.2 && rmdir `+held)
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case r := <-results:
			if r.code != 0 {
				t.Fatalf("a contender exited %d: %s", r.code, r.stderr)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("contenders did not finish")
		}
	}
	if e := a.entry("jobs/one/.lock"); e == nil || e.LockIndex != n {
		t.Fatalf("key after = %+v, want lock_index %d", e, n)
	}
}

// TestLock_LostLockStopsCommand: when its session is destroyed the holder
// stops CMD with SIGTERM (SIGKILL after --kill-after when CMD ignores it)
// and exits with CMD's status.
func TestLock_LostLockStopsCommand(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		code         int
	}{
		{"CMD exits on SIGTERM", `trap "exit 7" TERM; touch STARTED; while :; do sleep 0.05; done`, 7},
		{"CMD ignores SIGTERM", `trap "" TERM; touch STARTED; while :; do sleep 0.05; done`, 128 + 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newLiveAPI(t)
			started := filepath.Join(t.TempDir(), "started")
			done := make(chan lockRunResult, 1)
			go func() {
				done <- a.runLock("--ttl", "10s", "--kill-after", "300ms", "jobs/lost", "--", "sh", "-c",
					strings.ReplaceAll(tc.script, "STARTED", started))
			}()
			retry.Run(t, func(r *retry.R) {
				if _, err := os.Stat(started); err != nil {
					r.Fatal(err)
				}
			}, retry.What("CMD to start"))
			ss := a.sessions()
			if len(ss) != 1 {
				t.Fatalf("sessions = %+v", ss)
			}
			req, _ := http.NewRequest(http.MethodDelete, "http://"+a.addr+"/sessions/"+ss[0].ID, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			select {
			case r := <-done:
				if r.code != tc.code || !strings.Contains(r.stderr, "lost the lock jobs/lost/.lock") {
					t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("nexus lock did not stop CMD")
			}
		})
	}
}

// TestLock_WaitGivesUp: --wait bounds the wait for a held lock.
func TestLock_WaitGivesUp(t *testing.T) {
	a := newLiveAPI(t)
	started := filepath.Join(t.TempDir(), "started")
	holder := make(chan lockRunResult, 1)
	go func() {
		holder <- a.runLock("--ttl", "10s", "jobs/w", "--", "sh", "-c", `touch `+started+`; sleep 30`)
	}()
	retry.Run(t, func(r *retry.R) {
		if _, err := os.Stat(started); err != nil {
			r.Fatal(err)
		}
	})
	start := time.Now()
	r := a.runLock("--wait", "500ms", "jobs/w", "--", "true")
	if r.code != 1 || !strings.Contains(r.stderr, "was not acquired within 500ms") || time.Since(start) > 20*time.Second {
		t.Fatalf("exit %d after %v, stderr %q", r.code, time.Since(start), r.stderr)
	}
	// End the holder: destroying its session stops its sleep.
	for _, s := range a.sessions() {
		req, _ := http.NewRequest(http.MethodDelete, "http://"+a.addr+"/sessions/"+s.ID, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	select {
	case <-holder:
	case <-time.After(30 * time.Second):
		t.Fatal("holder did not stop")
	}
}
