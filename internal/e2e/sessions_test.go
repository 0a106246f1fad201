package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/proccluster"
	"github.com/nexus/nexus/internal/retry"
)

// sessionOptions keeps this file's clusters off the other tests' ports.
func sessionOptions(t *testing.T) proccluster.Options {
	o := baseOptions(t)
	o.RaftPort, o.GossipPort, o.HTTPPort, o.GatewayPort = 24300, 24301, 24500, 24080
	return o
}

type sessionView struct {
	ID   string `json:"id"`
	Node string `json:"node"`
}

type lockAnswer struct {
	Acquired  bool   `json:"acquired"`
	Reason    string `json:"reason"`
	Session   string `json:"session"`
	LockIndex uint64 `json:"lock_index"`
}

// startSessionCluster starts three nodes and waits for a leader; it
// returns the leader's index.
func startSessionCluster(t *testing.T) (*proccluster.Cluster, *api, int) {
	t.Helper()
	c := startCluster(t, sessionOptions(t))
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader, _, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAllReady(ctx); err != nil {
		t.Fatal(err)
	}
	return c, a, leader
}

func (a *api) createSession(t *testing.T, i int, body map[string]any) sessionView {
	t.Helper()
	var s sessionView
	if err := json.Unmarshal(a.mustDo(t, i, "POST", "/sessions", body, 201).body, &s); err != nil || s.ID == "" {
		t.Fatalf("create session: %v", err)
	}
	return s
}

func (a *api) acquire(ctx context.Context, i int, key, id string) (lockAnswer, error) {
	r, err := a.do(ctx, i, "PUT", "/config/"+key+"?acquire="+id, []byte(`{"holder":"`+id+`"}`), 5*time.Second)
	if err != nil {
		return lockAnswer{}, err
	}
	if r.status != http.StatusOK {
		return lockAnswer{}, fmt.Errorf("acquire on %s: %s", a.c.Node(i).Name, r)
	}
	var l lockAnswer
	return l, json.Unmarshal(r.body, &l)
}

// sessionAlive reads node i's replica: whether the session exists.
func (a *api) sessionAlive(ctx context.Context, i int, id string) (bool, error) {
	r, err := a.do(ctx, i, "GET", "/sessions/"+id, nil, 5*time.Second)
	switch {
	case err != nil:
		return false, err
	case r.status == http.StatusOK:
		return true, nil
	case r.status == http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("GET /sessions/%s: %s", id, r)
}

// endReason returns the reason of a session's invalidation or destroy
// in node i's audit trail ("" when there is none yet).
func (a *api) endReason(ctx context.Context, i int, id string) (string, error) {
	r, err := a.do(ctx, i, "GET", "/audit?resource_type=session&resource="+id, nil, 5*time.Second)
	if err != nil {
		return "", err
	}
	var recs []struct {
		Action string `json:"action"`
		After  struct {
			Reason string `json:"reason"`
		} `json:"after"`
	}
	if err := json.Unmarshal(r.body, &recs); err != nil {
		return "", fmt.Errorf("GET /audit: %v: %s", err, r)
	}
	for _, rec := range recs {
		if rec.Action == "invalidate" || rec.Action == "destroy" {
			return rec.After.Reason, nil
		}
	}
	return "", nil
}

// TestSessions_KillHolderNodeFreesLock: kill -9 of the node owning the
// holder's session ends the session once gossip declares the node failed;
// the other contender gets the lock only after the lock delay.
func TestSessions_KillHolderNodeFreesLock(t *testing.T) {
	c, a, leader := startSessionCluster(t)
	holderNode := (leader + 1) % 3
	contenderNode := (leader + 2) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// No TTL: only the node's failure can end it.
	holder := a.createSession(t, holderNode, map[string]any{"name": "holder", "lock_delay": "3s"})
	if holder.Node != c.Node(holderNode).Name {
		t.Fatalf("session node %q, want %q", holder.Node, c.Node(holderNode).Name)
	}
	contender := a.createSession(t, contenderNode, map[string]any{"name": "contender"})
	if l, err := a.acquire(ctx, holderNode, "e2e/leader", holder.ID); err != nil || !l.Acquired || l.LockIndex != 1 {
		t.Fatalf("holder acquire: %+v %v", l, err)
	}
	if l, err := a.acquire(ctx, contenderNode, "e2e/leader", contender.ID); err != nil || l.Acquired || l.Reason != "held" {
		t.Fatalf("contender acquire while held: %+v %v", l, err)
	}

	if err := c.Kill(holderNode); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	reasons := map[string]int{}
	var got lockAnswer
	err := retry.Until(ctx, "the contender to acquire", func() error {
		l, err := a.acquire(ctx, contenderNode, "e2e/leader", contender.ID)
		if err != nil {
			return err
		}
		if !l.Acquired {
			reasons[l.Reason]++
			return fmt.Errorf("not acquired: %s", l.Reason)
		}
		got = l
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lock moved %v after kill -9 of %s (attempts refused: %v)", time.Since(killed), c.Node(holderNode).Name, reasons)
	if got.LockIndex != 2 || got.Session != contender.ID {
		t.Fatalf("acquired %+v, want lock_index 2 for the contender", got)
	}
	if reasons["lock_delay"] == 0 {
		t.Fatalf("the lock delay was never seen refusing the contender: %v", reasons)
	}
	if why, err := a.endReason(ctx, contenderNode, holder.ID); err != nil || why != "node_failed" {
		t.Fatalf("holder session ended for %q (%v), want node_failed", why, err)
	}

	// Fenced writes through the surviving nodes: a transaction guarded by
	// the old holder's session is refused (409 naming the op, nothing
	// written); the new holder's applies.
	for _, i := range others(c, holderNode) {
		fenced := func(session string, v int) response {
			body := jsonValue(map[string]any{"ops": []map[string]any{
				{"op": "check-session", "key": "e2e/leader", "session": session},
				{"op": "set", "key": "e2e/epoch", "value": v},
			}})
			r, err := a.do(ctx, i, "POST", "/txn", body, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		r := fenced(holder.ID, -1)
		var conflict struct {
			Errors []struct {
				OpIndex int `json:"op_index"`
			} `json:"errors"`
		}
		if r.status != http.StatusConflict || r.errorCode() != "txn_conflict" || json.Unmarshal(r.body, &conflict) != nil ||
			len(conflict.Errors) != 1 || conflict.Errors[0].OpIndex != 0 {
			t.Fatalf("txn fenced by the dead holder via %s: %s", c.Node(i).Name, r)
		}
		if r := fenced(contender.ID, i); r.status != http.StatusOK {
			t.Fatalf("txn fenced by the holder via %s: %s", c.Node(i).Name, r)
		}
		if e, found, err := a.getConfig(ctx, i, "e2e/epoch"); err != nil || !found || canon(e.Value) != fmt.Sprint(i) {
			t.Fatalf("e2e/epoch on %s = %+v %v %v", c.Node(i).Name, e, found, err)
		}
	}
}

// lockProc is a `nexus lock` process.
type lockProc struct {
	cmd    *exec.Cmd
	stderr string // path of its stderr
	done   chan struct{}
}

func startLock(t *testing.T, c *proccluster.Cluster, i int, dir, name string, cmdArgs ...string) *lockProc {
	t.Helper()
	args := append([]string{"lock", "--http-addr", c.HTTPAddr(i), "--ttl", "10s", "--lock-delay", "1s",
		"--kill-after", "2s", "--verbose", "e2e/job", "--"}, cmdArgs...)
	cmd := exec.Command(nexusBinary, args...)
	out, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	errPath := filepath.Join(dir, name+".err")
	errFile, err := os.Create(errPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, errFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &lockProc{cmd: cmd, stderr: errPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); out.Close(); errFile.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *lockProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		b, _ := os.ReadFile(p.stderr)
		t.Fatalf("nexus lock still runs after %v; stderr:\n%s", timeout, b)
		return -1
	}
}

func fileHas(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

// TestSessions_PausedLockHolderLosesItsLock: a `nexus lock` holder that
// is SIGSTOPped stops renewing; the leader ends its session once its TTL
// passes, and a waiting `nexus lock` on another node runs its command.
// Resumed, the old holder sees the lock lost and stops its command.
func TestSessions_PausedLockHolderLosesItsLock(t *testing.T) {
	c, a, leader := startSessionCluster(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	holder := startLock(t, c, (leader+1)%3, dir, "a", "sh", "-c", `echo A >> `+log+`; exec sleep 600`)
	retry.Run(t, func(r *retry.R) {
		if !fileHas(log, "A") {
			r.Fatal("A has not run yet")
		}
	}, retry.Timeout(60*time.Second), retry.What("holder A to run its command"))
	waiter := startLock(t, c, (leader+2)%3, dir, "b", "sh", "-c", `echo B >> `+log)
	retry.Run(t, func(r *retry.R) {
		resp, err := a.do(ctx, leader, "GET", "/sessions", nil, 5*time.Second)
		r.Check(err)
		var ss []sessionView
		r.Check(json.Unmarshal(resp.body, &ss))
		if len(ss) != 2 {
			r.Fatalf("%d sessions", len(ss))
		}
	}, retry.Timeout(30*time.Second), retry.What("waiter B's session"))
	if fileHas(log, "B") {
		t.Fatal("B ran while A held the lock")
	}

	if err := holder.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	retry.Run(t, func(r *retry.R) {
		if !fileHas(log, "B") {
			r.Fatal("B has not run yet")
		}
	}, retry.Timeout(90*time.Second), retry.What("waiter B to run its command"))
	took := time.Since(stopped)
	t.Logf("B ran %v after A was stopped (TTL 10s, lock delay 1s)", took)
	// A renewed at most TTL/2 before it stopped: its session cannot have
	// ended earlier than TTL/2 after the stop.
	if took < 5*time.Second {
		t.Fatalf("B ran %v after A stopped: A's session ended before its TTL", took)
	}
	if code := waiter.wait(t, 30*time.Second); code != 0 {
		b, _ := os.ReadFile(waiter.stderr)
		t.Fatalf("B exited %d: %s", code, b)
	}
	var sessions []sessionView
	if err := json.Unmarshal(a.mustDo(t, leader, "GET", "/sessions", nil, 200).body, &sessions); err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 0 {
		t.Fatalf("sessions after B: %+v; A's ended, B destroyed its own", sessions)
	}

	// Resumed, A finds its lock lost and stops its command (SIGTERM: 143).
	if err := holder.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := holder.wait(t, 30*time.Second); code != 128+int(syscall.SIGTERM) {
		b, _ := os.ReadFile(holder.stderr)
		t.Fatalf("A exited %d, want 143; stderr:\n%s", code, b)
	}
	if !fileHas(holder.stderr, "lost the lock e2e/job/.lock") {
		b, _ := os.ReadFile(holder.stderr)
		t.Fatalf("A's stderr:\n%s", b)
	}
}

// TestSessions_LeaderChangeEndsNoSessionEarly: a new leader gives every
// session a full TTL from its election, so a leader change in the middle
// of a TTL ends no session early, and renews across the change keep a
// session alive.
func TestSessions_LeaderChangeEndsNoSessionEarly(t *testing.T) {
	c, a, leader := startSessionCluster(t)
	f1, f2 := (leader+1)%3, (leader+2)%3
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Both sessions belong to a node that survives, so the old leader's
	// failure is not a reason to end them.
	idle := a.createSession(t, f1, map[string]any{"name": "idle", "ttl": "10s", "node": c.Node(f1).Name})
	kept := a.createSession(t, f1, map[string]any{"name": "kept", "ttl": "10s", "node": c.Node(f1).Name})
	created := time.Now()

	renewErr := make(chan error, 1)
	stopRenew := make(chan struct{})
	go func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		lastOK := time.Now()
		for {
			select {
			case <-stopRenew:
				renewErr <- nil
				return
			case <-tick.C:
			}
			for _, i := range []int{f1, f2} {
				r, err := a.do(ctx, i, "PUT", "/sessions/"+kept.ID+"/renew", nil, 3*time.Second)
				if err == nil && r.status == http.StatusOK {
					lastOK = time.Now()
					break
				}
				if err == nil && r.status == http.StatusNotFound {
					renewErr <- errors.New("a renewed session ended: " + r.String())
					return
				}
			}
			if time.Since(lastOK) > 8*time.Second {
				renewErr <- errors.New("no renew succeeded for 8s")
				return
			}
		}
	}()

	// Mid-TTL, the leader dies (a scheduled fault, not a wait for a result).
	<-time.After(time.Until(created.Add(5 * time.Second)))
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if _, _, err := c.WaitLeaderAmong(ctx, []int{f1, f2}); err != nil {
		t.Fatal(err)
	}
	var gone time.Time
	err := retry.Until(ctx, "the idle session to end", func() error {
		alive, err := a.sessionAlive(ctx, f2, idle.ID)
		if err != nil {
			return err
		}
		if alive {
			return errors.New("idle session alive")
		}
		gone = time.Now()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("idle session (TTL 10s) ended %v after its creation, %v after the leader was killed", gone.Sub(created), gone.Sub(killed))
	if gone.Sub(killed) < 10*time.Second {
		t.Fatalf("the idle session ended %v after the leader change: earlier than a full TTL from the new leader", gone.Sub(killed))
	}
	if why, err := a.endReason(ctx, f2, idle.ID); err != nil || why != "ttl" {
		t.Fatalf("idle session ended for %q (%v), want ttl", why, err)
	}
	close(stopRenew)
	if err := <-renewErr; err != nil {
		t.Fatal(err)
	}
	if alive, err := a.sessionAlive(ctx, f2, kept.ID); err != nil || !alive {
		t.Fatalf("the renewed session ended across the leader change (%v)", err)
	}
}
