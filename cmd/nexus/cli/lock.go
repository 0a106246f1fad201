package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// `nexus lock PREFIX -- CMD [ARG]...` runs CMD only while it holds the lock
// on the config key PREFIX/.lock through a session of its own, like
// `consul lock`: at most one holder in the cluster runs its command. It
// renews the session; when the lock is lost (the session ended, the key
// was released or deleted, or no renew succeeded for a whole TTL) it stops
// CMD with SIGTERM, then SIGKILL after --kill-after. It exits with CMD's
// status (128+N when a signal N ended it). docs/sessions.md.

// Waits of the lock loop.
const (
	lockBlockingWait = 30 * time.Second       // one blocking query on the key
	lockRetry        = time.Second            // after a failed request
	lockDelayPoll    = 500 * time.Millisecond // the end of a lock delay is not a key change: poll it
)

// lockAnswer is the answer of PUT /config/{key}?acquire=.
type lockAnswer struct {
	Acquired    bool   `json:"acquired"`
	Reason      string `json:"reason"`
	Session     string `json:"session"`
	LockIndex   uint64 `json:"lock_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

// lockEntry is the part of a config entry the holder watches.
type lockEntry struct {
	Session   string `json:"session"`
	LockIndex uint64 `json:"lock_index"`
}

// locker is one run of nexus lock.
type locker struct {
	c       *client
	key, id string
	ttl     time.Duration
	long    *http.Client // for blocking queries: longer than --timeout
	verbose bool
	errOut  io.Writer
}

func (l *locker) logf(format string, args ...any) {
	fmt.Fprintf(l.errOut, "nexus lock: "+format+"\n", args...)
}

// lockedWriter serializes this process's messages with CMD's stderr when
// that goes through a copying goroutine (a stderr that is not a file).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func lockRun(fs *flag.FlagSet) action {
	ttl := fs.Duration("ttl", 15*time.Second, "session `TTL`: how long the lock outlives this process after its last renew (10s..24h)")
	lockDelay := fs.String("lock-delay", "", "`DUR` nobody can take the lock after a holder lost it (default 15s, max 60s)")
	name := fs.String("name", "nexus-lock", "session `NAME` (ACL rules on sessions match it)")
	killAfter := fs.Duration("kill-after", 10*time.Second, "SIGKILL CMD when it still runs `DUR` after its SIGTERM")
	waitMax := fs.Duration("wait", 0, "give up (exit 1) when the lock is not held within `DUR` (0: wait for ever)")
	verbose := fs.Bool("verbose", false, "tell on stderr when the lock is acquired and released")
	return func(c *client, args []string) error {
		prefix := strings.TrimSuffix(args[0], "/")
		if prefix == "" {
			return usagef("PREFIX must not be empty")
		}
		if err := checkDuration("lock-delay", *lockDelay); err != nil {
			return err
		}
		if *killAfter <= 0 {
			return usagef("--kill-after must be positive")
		}
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sigs)

		r, err := c.call(http.MethodPost, "/sessions", nil, sessionBody{Name: *name, TTL: ttl.String(), LockDelay: *lockDelay})
		if err != nil {
			return err
		}
		s, err := decodeAs[sessionView](r.body)
		if err != nil {
			return err
		}
		l := &locker{c: c, key: prefix + "/.lock", id: s.ID, ttl: *ttl, verbose: *verbose,
			long: &http.Client{Transport: c.hc.Transport, Timeout: lockBlockingWait + c.timeout}, errOut: c.errOut}
		if _, isFile := c.errOut.(*os.File); !isFile {
			l.errOut = &lockedWriter{w: c.errOut}
		}
		defer l.destroy()
		return l.run(args[1:], sigs, *killAfter, *waitMax)
	}
}

// run acquires the lock, runs cmd while it holds it and releases it.
func (l *locker) run(cmdArgs []string, sigs <-chan os.Signal, killAfter, waitMax time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lost := make(chan string, 2)
	go l.keepAlive(ctx, lost)

	actx, acancel := ctx, context.CancelFunc(func() {})
	if waitMax > 0 {
		actx, acancel = context.WithTimeout(ctx, waitMax)
	}
	got := make(chan acquired, 1)
	go func() { got <- l.acquire(actx) }()
	var a acquired
	select {
	case a = <-got:
	case sig := <-sigs:
		acancel()
		<-got
		return exitStatus(128 + signalNumber(sig))
	case why := <-lost:
		acancel()
		<-got
		return fmt.Errorf("lost the session while waiting for the lock: %s", why)
	}
	acancel()
	if a.err != nil {
		if errors.Is(actx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("the lock %s was not acquired within %s", l.key, waitMax)
		}
		return a.err
	}
	if l.verbose {
		l.logf("holding %s (session %s, lock_index %d)", l.key, l.id, a.lockIndex)
	}
	defer l.release()
	go l.watch(ctx, a.index, lost)

	cmd := exec.Command(cmdArgs[0], cmdArgs[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = l.c.stdin, l.c.out, l.errOut
	cmd.Env = append(os.Environ(), "NEXUS_LOCK_KEY="+l.key, "NEXUS_LOCK_SESSION="+l.id,
		"NEXUS_LOCK_INDEX="+strconv.FormatUint(a.lockIndex, 10))
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start %s: %v", cmdArgs[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		select {
		case <-exited:
			return commandStatus(cmd.ProcessState)
		case sig := <-sigs:
			signalGroup(cmd.Process, sig.(syscall.Signal))
		case why := <-lost:
			l.logf("lost the lock %s: %s; stopping %s", l.key, why, cmdArgs[0])
			stop(cmd, exited, killAfter)
			return commandStatus(cmd.ProcessState)
		}
	}
}

// stop sends SIGTERM to cmd's process group, SIGKILL after killAfter,
// and waits for it.
func stop(cmd *exec.Cmd, exited <-chan error, killAfter time.Duration) {
	signalGroup(cmd.Process, syscall.SIGTERM)
	t := time.NewTimer(killAfter)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		signalGroup(cmd.Process, syscall.SIGKILL)
		<-exited
	}
}

// commandStatus is the exit of nexus lock for CMD's: nil for 0.
func commandStatus(st *os.ProcessState) error {
	code := exitCodeOf(st)
	if code == 0 {
		return nil
	}
	return exitStatus(code)
}

func signalNumber(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return int(s)
	}
	return 1
}

// acquired is the outcome of the acquire loop.
type acquired struct {
	lockIndex uint64
	index     uint64 // the key's modify_index at the acquisition
	err       error
}

// acquire tries until the session holds the key: when another session
// holds it, a blocking query waits for the key to change; during a lock
// delay it polls, since the delay's end changes no key.
func (l *locker) acquire(ctx context.Context) acquired {
	value, _ := encodeJSON(map[string]any{"session": l.id, "pid": os.Getpid(), "host": hostname()})
	q := url.Values{"acquire": {l.id}}
	for {
		r, err := l.c.callWith(ctx, l.c.hc, http.MethodPut, configPath(l.key), q, json.RawMessage(value))
		if ctx.Err() != nil {
			return acquired{err: ctx.Err()}
		}
		var ae *apiError
		switch {
		case errors.As(err, &ae) && ae.status < 500:
			return acquired{err: err}
		case err != nil:
			if !sleepCtx(ctx, lockRetry) {
				return acquired{err: ctx.Err()}
			}
			continue
		}
		a, err := decodeAs[lockAnswer](r.body)
		if err != nil {
			return acquired{err: err}
		}
		if a.Acquired {
			return acquired{lockIndex: a.LockIndex, index: a.ModifyIndex}
		}
		if a.Reason == "lock_delay" {
			if !sleepCtx(ctx, lockDelayPoll) {
				return acquired{err: ctx.Err()}
			}
			continue
		}
		// Held: wait until the key changes (or the wait passes).
		bq := url.Values{"index": {strconv.FormatUint(a.ModifyIndex, 10)}, "wait": {lockBlockingWait.String()}}
		if _, err := l.c.callWith(ctx, l.long, http.MethodGet, configPath(l.key), bq, nil); err != nil && !isNotFound(err) {
			if !sleepCtx(ctx, lockRetry) {
				return acquired{err: ctx.Err()}
			}
		}
	}
}

// keepAlive renews the session every TTL/2 (every second after a failed
// renew) and reports when it is gone, or when no renew succeeded for a
// whole TTL: the leader may have ended it by then.
func (l *locker) keepAlive(ctx context.Context, lost chan<- string) {
	last := time.Now()
	t := time.NewTimer(l.ttl / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		left := l.ttl - time.Since(last)
		if left <= 0 {
			lost <- fmt.Sprintf("no renew succeeded for %s (the session's TTL)", l.ttl)
			return
		}
		rctx, cancel := context.WithTimeout(ctx, left)
		_, err := l.c.callWith(rctx, l.c.hc, http.MethodPut, pathOf("sessions", l.id, "renew"), nil, nil)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			last = time.Now()
			t.Reset(l.ttl / 2)
		case isNotFound(err):
			lost <- "the session ended (its TTL passed, its node failed, or it was destroyed)"
			return
		default:
			if l.verbose {
				l.logf("renew failed, retrying: %v", err)
			}
			t.Reset(min(lockRetry, max(l.ttl-time.Since(last), 0)))
		}
	}
}

// watch follows the key with blocking queries and reports when the
// session no longer holds it.
func (l *locker) watch(ctx context.Context, index uint64, lost chan<- string) {
	for {
		q := url.Values{"index": {strconv.FormatUint(index, 10)}, "wait": {lockBlockingWait.String()}}
		r, err := l.c.callWith(ctx, l.long, http.MethodGet, configPath(l.key), q, nil)
		switch {
		case ctx.Err() != nil:
			return
		case isNotFound(err):
			lost <- "the lock key was deleted"
			return
		case err != nil:
			// keepAlive decides when an unreachable API means a lost lock.
			if !sleepCtx(ctx, lockRetry) {
				return
			}
			continue
		}
		e, err := decodeAs[lockEntry](r.body)
		if err == nil && e.Session != l.id {
			lost <- "the key is no longer held by this session"
			return
		}
		if n, err := strconv.ParseUint(r.header.Get("X-Nexus-Index"), 10, 64); err == nil && n > index {
			index = n
		}
	}
}

// release gives the key up and destroy ends the session: best effort,
// each bounded by --timeout.
func (l *locker) release() {
	_, err := l.c.call(http.MethodPut, configPath(l.key), url.Values{"release": {l.id}}, nil)
	if err != nil {
		l.logf("release of %s failed (the session's end releases it): %v", l.key, err)
	} else if l.verbose {
		l.logf("released %s", l.key)
	}
}

func (l *locker) destroy() {
	if _, err := l.c.call(http.MethodDelete, pathOf("sessions", l.id), nil, nil); err != nil {
		l.logf("destroying session %s failed (its TTL ends it): %v", l.id, err)
	}
}

func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == http.StatusNotFound
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
