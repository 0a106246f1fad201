package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nexus/nexus/internal/proccluster"
)

// `nexus-bench locks` measures the locks of issue 16 on a 3-node cluster of
// real agents (docs/benchmarks.md, docs/sessions.md):
//
//   - handovers: N contenders (sessions spread over the nodes) take one
//     key in turn: acquire, release at once, wait on a blocking query while
//     another holds it. Acquisitions per second, and how many of them moved
//     the lock to another session.
//   - kill: the holder's node (a follower) is killed with SIGKILL; a
//     contender on another node retries until it holds the lock. The time
//     from the kill to that acquisition is gossip's failure detection, the
//     invalidation through Raft and the lock delay; the session's
//     invalidation time (its audit record) splits the first two from the
//     third.

type locksConfig struct {
	nexus      string
	duration   time.Duration
	contenders []int
	killRounds int
	lockDelay  time.Duration
	out        string
	dir        string
	baseIP     string
	portBase   int
	verbose    bool
}

func parseLocksFlags(args []string) (locksConfig, error) {
	var cfg locksConfig
	fs := flag.NewFlagSet("locks", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.nexus, "nexus", "", "path of the nexus binary (required)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "duration of each handover phase")
	contenders := fs.String("contenders", "2,4,8,16", "comma-separated contender counts")
	fs.IntVar(&cfg.killRounds, "kill-rounds", 3, "holder-node kills to measure (0 = skip)")
	fs.DurationVar(&cfg.lockDelay, "lock-delay", 15*time.Second, "lock_delay of the holder's session in the kill rounds (the API default is 15s)")
	fs.StringVar(&cfg.out, "out", "", "also write the results as JSON to this file")
	fs.StringVar(&cfg.dir, "dir", "", "directory for data dirs and logs (default: a temporary one, removed at the end)")
	fs.StringVar(&cfg.baseIP, "base-ip", "127.0.0.", "node IP prefix; nodes are .11, .12, .13")
	fs.IntVar(&cfg.portBase, "port-base", 27300, "raft port; gossip is +1, admin API +200, gateway -220")
	fs.BoolVar(&cfg.verbose, "verbose", false, "log cluster events to stderr")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if cfg.nexus == "" {
		return cfg, errors.New("--nexus PATH is required")
	}
	if cfg.duration <= 0 || cfg.killRounds < 0 || cfg.lockDelay < 0 || cfg.lockDelay > time.Minute {
		return cfg, errors.New("--duration must be positive, --kill-rounds >= 0, --lock-delay in 0..60s")
	}
	var err error
	if cfg.contenders, err = parseClients(*contenders); err != nil {
		return cfg, fmt.Errorf("--contenders: %w", err)
	}
	return cfg, nil
}

// LocksReport is the result of nexus-bench locks.
type LocksReport struct {
	Started    time.Time        `json:"started"`
	Handovers  []HandoverResult `json:"handovers"`
	Kills      []KillRound      `json:"kills"`
	KillMedian float64          `json:"kill_to_acquire_median_ms"`
	LockDelay  string           `json:"lock_delay"`
}

// HandoverResult is one handover phase.
type HandoverResult struct {
	Contenders      int     `json:"contenders"`
	Seconds         float64 `json:"seconds"`
	Acquisitions    int     `json:"acquisitions"`
	PerSec          float64 `json:"acquisitions_per_sec"`
	Handovers       int     `json:"handovers"` // acquisitions by another session than the previous holder
	HandoversPerSec float64 `json:"handovers_per_sec"`
	Refused         int     `json:"refused"` // acquire answers "held"
	Errors          int     `json:"errors"`
}

// KillRound is one holder-node kill.
type KillRound struct {
	Killed        string  `json:"killed"`
	InvalidatedMs float64 `json:"invalidated_ms"` // kill → the session's invalidation (audit time)
	AcquiredMs    float64 `json:"acquired_ms"`    // kill → the contender's acquisition
	Error         string  `json:"error,omitempty"`
}

func runLocks(ctx context.Context, args []string) int {
	return run(ctx, "locks", args, parseLocksFlags, func(c locksConfig) string { return c.out }, benchLocks,
		func(r *LocksReport) string { return locksMarkdown(*r) })
}

// lockBench is the cluster and a client per node.
type lockBench struct {
	c    *proccluster.Cluster
	hc   *http.Client
	urls []string
}

func benchLocks(ctx context.Context, cfg locksConfig) (rep *LocksReport, err error) {
	opts := proccluster.Options{Binary: cfg.nexus, Nodes: 3, BaseIP: cfg.baseIP, Dir: cfg.dir,
		RaftPort: cfg.portBase, GossipPort: cfg.portBase + 1, HTTPPort: cfg.portBase + 200, GatewayPort: cfg.portBase - 220,
		StartTimeout: 60 * time.Second}
	if cfg.verbose {
		opts.Logf = func(f string, a ...any) { progress(f, a...) }
	}
	progress("starting 3 nodes (%s), raft port %d", cfg.nexus, cfg.portBase)
	c, err := proccluster.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	defer func() {
		if err != nil {
			for i := 0; i < c.N(); i++ {
				fmt.Fprintf(os.Stderr, "===== last log lines of %s =====\n%s\n", c.Node(i).Name, proccluster.Tail(c.Logs(i), 8<<10))
			}
		}
	}()
	maxN := 4
	for _, n := range cfg.contenders {
		maxN = max(maxN, n)
	}
	b := &lockBench{c: c, hc: newClient(2*maxN, 30*time.Second)}
	defer b.hc.CloseIdleConnections()
	for i := 0; i < c.N(); i++ {
		b.urls = append(b.urls, "http://"+c.HTTPAddr(i))
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if _, _, err := c.WaitLeader(wctx); err != nil {
		return nil, err
	}
	if err := c.WaitAllReady(wctx); err != nil {
		return nil, err
	}
	rep = &LocksReport{Started: time.Now().UTC(), LockDelay: cfg.lockDelay.String()}
	for phase, n := range cfg.contenders {
		h, err := b.handovers(ctx, n, cfg.duration, fmt.Sprintf("bench/handover/%d", phase))
		if err != nil {
			return rep, err
		}
		progress("handovers, %d contenders: %.1f acquisitions/s, %.1f handovers/s, %d refused, %d errors",
			n, h.PerSec, h.HandoversPerSec, h.Refused, h.Errors)
		rep.Handovers = append(rep.Handovers, h)
	}
	for round := 1; round <= cfg.killRounds && ctx.Err() == nil; round++ {
		k := b.killRound(ctx, round, cfg.lockDelay)
		if k.Error != "" {
			progress("kill round %d (%s): FAILED: %s", round, k.Killed, k.Error)
		} else {
			progress("kill round %d: killed %s; session invalidated after %s, lock acquired after %s",
				round, k.Killed, fmtMs(k.InvalidatedMs), fmtMs(k.AcquiredMs))
		}
		rep.Kills = append(rep.Kills, k)
	}
	var ds []time.Duration
	for _, k := range rep.Kills {
		if k.Error == "" {
			ds = append(ds, time.Duration(k.AcquiredMs*float64(time.Millisecond)))
		}
	}
	rep.KillMedian = ms(median(ds))
	return rep, ctx.Err()
}

// call makes one request to node i and decodes a 2xx answer into out.
func (b *lockBench) call(ctx context.Context, i int, method, path string, body, out any) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.urls[i]+path, rd)
	if err != nil {
		return 0, nil, err
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, resp.Header, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, resp.Header, err
		}
	}
	return resp.StatusCode, resp.Header, nil
}

type benchLockAnswer struct {
	Acquired    bool   `json:"acquired"`
	Reason      string `json:"reason"`
	LockIndex   uint64 `json:"lock_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

func (b *lockBench) session(ctx context.Context, i int, lockDelay time.Duration) (string, error) {
	var s struct {
		ID string `json:"id"`
	}
	_, _, err := b.call(ctx, i, http.MethodPost, "/sessions", map[string]string{"name": "bench", "lock_delay": lockDelay.String()}, &s)
	return s.ID, err
}

func (b *lockBench) destroy(i int, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, _ = b.call(ctx, i, http.MethodDelete, "/sessions/"+id, nil, nil)
}

// acquisition is one successful acquire: the lock_index it got and by
// which contender.
type acquisition struct {
	lockIndex uint64
	who       int
}

// handovers runs n contenders on one key for d.
func (b *lockBench) handovers(ctx context.Context, n int, d time.Duration, key string) (HandoverResult, error) {
	ids := make([]string, n)
	for k := range ids {
		id, err := b.session(ctx, k%len(b.urls), 0)
		if err != nil {
			return HandoverResult{}, err
		}
		ids[k] = id
		defer b.destroy(k%len(b.urls), id)
	}
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var acqs []acquisition
	refused, errs := 0, 0
	var wg sync.WaitGroup
	start := time.Now()
	for k := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := k % len(b.urls)
			for pctx.Err() == nil {
				var a benchLockAnswer
				_, _, err := b.call(pctx, node, http.MethodPut, "/config/"+key+"?acquire="+ids[k], nil, &a)
				if err != nil {
					if pctx.Err() == nil {
						mu.Lock()
						errs++
						mu.Unlock()
					}
					continue
				}
				if a.Acquired {
					mu.Lock()
					acqs = append(acqs, acquisition{a.LockIndex, k})
					mu.Unlock()
					if _, _, err := b.call(pctx, node, http.MethodPut, "/config/"+key+"?release="+ids[k], nil, nil); err != nil && pctx.Err() == nil {
						mu.Lock()
						errs++
						mu.Unlock()
					}
					continue
				}
				mu.Lock()
				refused++
				mu.Unlock()
				// Wait for the key to change hands.
				q := "?index=" + strconv.FormatUint(a.ModifyIndex, 10) + "&wait=5s"
				_, _, _ = b.call(pctx, node, http.MethodGet, "/config/"+key+q, nil, nil)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	h := HandoverResult{Contenders: n, Seconds: secs, Acquisitions: len(acqs), Refused: refused, Errors: errs,
		Handovers: countHandovers(acqs)}
	h.PerSec = float64(h.Acquisitions) / secs
	h.HandoversPerSec = float64(h.Handovers) / secs
	return h, nil
}

// countHandovers counts the acquisitions, in lock_index order, by another
// contender than the one before.
func countHandovers(acqs []acquisition) int {
	s := append([]acquisition(nil), acqs...)
	sort.Slice(s, func(i, j int) bool { return s[i].lockIndex < s[j].lockIndex })
	n := 0
	for i := 1; i < len(s); i++ {
		if s[i].who != s[i-1].who {
			n++
		}
	}
	return n
}

// killRound kills the node of the holder's session (a follower) and times
// the contender's acquisition on another node; the killed node is
// restarted afterwards.
func (b *lockBench) killRound(ctx context.Context, round int, lockDelay time.Duration) (k KillRound) {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	leader, _, err := b.c.WaitLeader(rctx)
	if err != nil {
		return KillRound{Error: err.Error()}
	}
	holderNode, contNode := (leader+1)%3, (leader+2)%3
	k.Killed = b.c.Node(holderNode).Name
	key := fmt.Sprintf("bench/kill/%d", round)
	holder, err := b.session(rctx, holderNode, lockDelay)
	if err != nil {
		return KillRound{Killed: k.Killed, Error: err.Error()}
	}
	cont, err := b.session(rctx, contNode, 0)
	if err != nil {
		return KillRound{Killed: k.Killed, Error: err.Error()}
	}
	defer b.destroy(contNode, cont)
	var a benchLockAnswer
	if _, _, err := b.call(rctx, holderNode, http.MethodPut, "/config/"+key+"?acquire="+holder, nil, &a); err != nil || !a.Acquired {
		return KillRound{Killed: k.Killed, Error: fmt.Sprintf("holder acquire: %+v %v", a, err)}
	}
	if err := b.c.Kill(holderNode); err != nil {
		return KillRound{Killed: k.Killed, Error: err.Error()}
	}
	killed := time.Now()
	defer func() {
		if err := b.c.Restart(holderNode); err != nil && k.Error == "" {
			k.Error = "restart: " + err.Error()
			return
		}
		if err := b.c.WaitAllReady(rctx); err != nil && k.Error == "" {
			k.Error = "restart: " + err.Error()
		}
	}()
	for {
		var a benchLockAnswer
		_, _, err := b.call(rctx, contNode, http.MethodPut, "/config/"+key+"?acquire="+cont, nil, &a)
		if err == nil && a.Acquired {
			k.AcquiredMs = ms(time.Since(killed))
			break
		}
		if rctx.Err() != nil {
			k.Error = "the contender never acquired the lock"
			return k
		}
		// A poll, not a blocking query: the end of the lock delay changes no key.
		select {
		case <-rctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	if at, ok := b.invalidationTime(rctx, contNode, holder); ok {
		k.InvalidatedMs = ms(at.Sub(killed))
	}
	return k
}

// invalidationTime reads when the session's invalidation was proposed
// (its audit record's time: the leader's clock, on this same machine).
func (b *lockBench) invalidationTime(ctx context.Context, i int, id string) (time.Time, bool) {
	var recs []struct {
		Action string `json:"action"`
		Time   string `json:"time"`
	}
	if _, _, err := b.call(ctx, i, http.MethodGet, "/audit?resource_type=session&action=invalidate&resource="+id, nil, &recs); err != nil || len(recs) == 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, recs[0].Time)
	return t, err == nil
}

func locksMarkdown(r LocksReport) string {
	var sb strings.Builder
	sb.WriteString("| contenders | acquisitions/s | handovers/s | refused (held) | errors |\n|---:|---:|---:|---:|---:|\n")
	for _, h := range r.Handovers {
		fmt.Fprintf(&sb, "| %d | %.1f | %.1f | %d | %d |\n", h.Contenders, h.PerSec, h.HandoversPerSec, h.Refused, h.Errors)
	}
	if len(r.Kills) > 0 {
		fmt.Fprintf(&sb, "\nHolder's node killed (SIGKILL), lock_delay %s:\n\n| round | killed | session invalidated after | next acquisition after |\n|---:|---|---:|---:|\n", r.LockDelay)
		for i, k := range r.Kills {
			if k.Error != "" {
				fmt.Fprintf(&sb, "| %d | %s | failed: %s | |\n", i+1, k.Killed, k.Error)
				continue
			}
			fmt.Fprintf(&sb, "| %d | %s | %s | %s |\n", i+1, k.Killed, fmtMs(k.InvalidatedMs), fmtMs(k.AcquiredMs))
		}
		fmt.Fprintf(&sb, "\nMedian kill → next acquisition: %s\n", fmtMs(r.KillMedian))
	}
	return sb.String()
}
