package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/valyala/fasthttp"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus/nexus/internal/proccluster"
)

type raftConfig struct {
	nexus          string
	duration       time.Duration
	clients        []int
	readClients    int
	failoverRounds int
	out            string
	clusterFlags
	// args, when set, rewrites a node's agent arguments (an older
	// baseline binary that lacks some flags: ab-raft).
	args func(i int, args []string) []string
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func parseRaftFlags(args []string) (raftConfig, error) {
	var cfg raftConfig
	fs := flag.NewFlagSet("raft", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.nexus, "nexus", "", "path of the nexus binary (required)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "duration of each load phase")
	clients := fs.String("clients", "1,16,64", "comma-separated client counts for the write phase")
	fs.IntVar(&cfg.readClients, "read-clients", 64, "clients for the read phases")
	fs.IntVar(&cfg.failoverRounds, "failover-rounds", 5, "leader kills to measure (0 = skip)")
	fs.StringVar(&cfg.out, "out", "", "also write the results as JSON to this file")
	cfg.clusterFlags.register(fs, 28300)
	if err := parseFlags(fs, args, &cfg.nexus); err != nil {
		return cfg, err
	}
	if err := cfg.clusterFlags.validate(); err != nil {
		return cfg, err
	}
	if cfg.duration <= 0 {
		return cfg, errors.New("--duration must be positive")
	}
	if cfg.readClients < 1 || cfg.failoverRounds < 0 {
		return cfg, errors.New("--read-clients must be >= 1 and --failover-rounds >= 0")
	}
	var err error
	if cfg.clients, err = parseClients(*clients); err != nil {
		return cfg, fmt.Errorf("--clients: %w", err)
	}
	return cfg, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s nexus-bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func runRaft(ctx context.Context, args []string) int {
	return run(ctx, "raft", args, parseRaftFlags, func(c raftConfig) string { return c.out }, benchRaft, func(r *Report) string { return formatMarkdown(*r) })
}

// bench holds the cluster and one HTTP client per node.
type bench struct {
	cfg     raftConfig
	c       *proccluster.Cluster
	clients []*http.Client   // one per node, keep-alive, sized for the largest client count
	fast    *fasthttp.Client // the load phases' client
	urls    []string         // "http://host:port" per node
	keySeq  atomic.Uint64
}

func benchRaft(ctx context.Context, cfg raftConfig) (rep *Report, err error) {
	maxClients := cfg.readClients
	for _, n := range cfg.clients {
		maxClients = max(maxClients, n)
	}
	opts := cfg.options(cfg.nexus)
	opts.Args = chain(opts.Args, cfg.args)
	c, err := startCluster(ctx, opts, cfg.verbose)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	defer dumpLogsOnError(c, &err)

	b := &bench{cfg: cfg, c: c, fast: &fasthttp.Client{MaxConnsPerHost: 1024, ReadTimeout: 15 * time.Second, WriteTimeout: 5 * time.Second, NoDefaultUserAgentHeader: true, RetryIf: func(*fasthttp.Request) bool { return false }}}
	for i := 0; i < c.N(); i++ {
		b.clients = append(b.clients, newClient(maxClients, 10*time.Second))
		b.urls = append(b.urls, "http://"+c.HTTPAddr(i))
	}
	defer func() {
		for _, hc := range b.clients {
			hc.CloseIdleConnections()
		}
	}()

	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	leaderIdx, leader, err := c.WaitLeader(wctx)
	if err != nil {
		return nil, err
	}
	if err := c.WaitAllReady(wctx); err != nil {
		return nil, err
	}
	progress("leader %s; all nodes ready", leader)

	rep = &Report{Started: time.Now().UTC(), Nodes: c.N(), DurationPerPhase: cfg.duration.String(), ValueBytes: valueSize}

	// (a) config writes at each client count.
	for _, n := range cfg.clients {
		r := b.writePhase(ctx, n)
		progress("config write, %d clients: %.1f/s p50 %s p99 %s errors %d", n, r.OpsPerSec, fmtMs(r.P50Ms), fmtMs(r.P99Ms), r.Errors)
		rep.Phases = append(rep.Phases, r)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}

	// One client on the leader and one on a follower: a follower's answer
	// waits until it applied the write itself (read-your-writes); it learns
	// of the commit from the no-op the leader appends after a lone forwarded
	// write (cluster/apply.go nudgeCommit), else at the next CommitTimeout.
	for _, target := range []struct {
		name string
		idx  int
	}{{"leader", leaderIdx}, {"follower", (leaderIdx + 1) % b.voters()}} {
		r := b.writePhaseTo(ctx, "config write via "+target.name, 1, target.idx)
		progress("%s, 1 client: %.1f/s p50 %s p99 %s errors %d", r.Phase, r.OpsPerSec, fmtMs(r.P50Ms), fmtMs(r.P99Ms), r.Errors)
		rep.Phases = append(rep.Phases, r)
	}

	// Keys for the read phases.
	readKeys, err := b.populate(ctx, 1024, 16)
	if err != nil {
		return rep, err
	}

	// (b) local reads.
	r := b.readPhase(ctx, "local read", cfg.readClients, readKeys, "")
	progress("local read, %d clients: %.1f/s p50 %s p99 %s errors %d", r.Clients, r.OpsPerSec, fmtMs(r.P50Ms), fmtMs(r.P99Ms), r.Errors)
	rep.Phases = append(rep.Phases, r)

	// (c) linearizable reads, if the agent supports them.
	if ok, why := b.consistentSupported(ctx, readKeys[0]); !ok {
		progress("consistent read: n/a (%s)", why)
		rep.Phases = append(rep.Phases, PhaseResult{Phase: "consistent read", Clients: cfg.readClients, NA: true, Note: why})
	} else {
		r := b.readPhase(ctx, "consistent read", cfg.readClients, readKeys, "?consistent")
		progress("consistent read, %d clients: %.1f/s p50 %s p99 %s errors %d", r.Clients, r.OpsPerSec, fmtMs(r.P50Ms), fmtMs(r.P99Ms), r.Errors)
		rep.Phases = append(rep.Phases, r)
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}

	// (c') both again on the read replicas only (--non-voters).
	if replicas := b.replicas(); len(replicas) > 0 {
		for _, q := range []struct{ phase, query string }{{"local read on read replicas", ""}, {"consistent read on read replicas", "?consistent"}} {
			r := b.readPhaseOn(ctx, q.phase, cfg.readClients, readKeys, q.query, replicas)
			progress("%s, %d clients: %.1f/s p50 %s p99 %s errors %d", q.phase, r.Clients, r.OpsPerSec, fmtMs(r.P50Ms), fmtMs(r.P99Ms), r.Errors)
			rep.Phases = append(rep.Phases, r)
		}
	}

	// (d) failover.
	for round := 1; round <= cfg.failoverRounds; round++ {
		f := b.failoverRound(ctx, round)
		if f.Error != "" {
			progress("failover round %d: killed %s: FAILED: %s", round, f.Killed, f.Error)
		} else {
			progress("failover round %d: killed %s, new leader %s, first acknowledged write after %s", round, f.Killed, f.NewLeader, fmtMs(f.Ms))
		}
		rep.Failover = append(rep.Failover, f)
		rep.FailoverMedianMs = failoverMedian(rep.Failover)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if f.Error != "" && !c.Running(c.Index(f.Killed)) {
			return rep, fmt.Errorf("failover round %d: %s", round, f.Error)
		}
	}
	return rep, nil
}

// newClient returns a keep-alive client for one node that can hold conns
// idle connections.
func newClient(conns int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        0, // no overall limit
			MaxIdleConnsPerHost: conns + 8,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// opResult is the outcome of one request.
type opResult struct {
	ok  bool
	err string // description of a failure, for samples
}

// do sends one request and drains the body so the connection is reused.
func do(ctx context.Context, hc *http.Client, method, url string, body []byte, okStatus int) opResult {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return opResult{err: err.Error()}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return opResult{err: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != okStatus {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return opResult{err: fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return opResult{ok: true}
}

// doFast sends one request with the fasthttp client: the load generator
// shares the two cores with the cluster, so it must spend as little CPU per
// request as it can (net/http costs about as much as the node serving it).
func doFast(c *fasthttp.Client, method, url string, body []byte, okStatus int, timeout time.Duration) opResult {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if err := c.DoTimeout(req, resp, timeout); err != nil {
		return opResult{err: err.Error()}
	}
	if resp.StatusCode() != okStatus {
		b := resp.Body()
		if len(b) > 300 {
			b = b[:300]
		}
		return opResult{err: fmt.Sprintf("%d %s", resp.StatusCode(), bytes.TrimSpace(b))}
	}
	return opResult{ok: true}
}

// load runs n workers for cfg.duration; worker w sends to node w%3 the
// request op(w, seq) returns. It returns the summarized result.
func (b *bench) load(ctx context.Context, phase string, n int, op func(w, seq int) (method, url string, body []byte)) PhaseResult {
	end := time.Now().Add(b.cfg.duration)
	lctx, cancel := context.WithDeadline(ctx, end.Add(10*time.Second)) // bounds a straggling request
	defer cancel()
	var (
		mu      sync.Mutex
		lat     []time.Duration
		errs    int
		samples []string
		wg      sync.WaitGroup
	)
	cpu0 := b.clusterCPU()
	start := time.Now()
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var my []time.Duration
			myErrs := 0
			var mySamples []string
			for seq := 0; time.Now().Before(end) && lctx.Err() == nil; seq++ {
				method, url, body := op(w, seq)
				t0 := time.Now()
				r := doFast(b.fast, method, url, body, http.StatusOK, time.Until(end)+5*time.Second)
				d := time.Since(t0)
				if r.ok {
					my = append(my, d)
					continue
				}
				myErrs++
				if len(mySamples) < 3 {
					mySamples = append(mySamples, r.err)
				}
				// Do not spin on a failing node.
				time.Sleep(5 * time.Millisecond)
			}
			mu.Lock()
			lat = append(lat, my...)
			errs += myErrs
			if len(samples) < 10 {
				samples = append(samples, mySamples...)
			}
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	res := summarize(phase, n, time.Since(start), lat, errs)
	if cpu := b.clusterCPU() - cpu0; res.Ops > 0 && cpu > 0 {
		res.CPUPerOpUs = float64(cpu.Microseconds()) / float64(res.Ops)
	}
	if len(samples) > 10 {
		samples = samples[:10]
	}
	res.ErrorSamples = samples
	if errs > 0 && len(samples) > 0 {
		res.Note = "first error: " + samples[0]
	}
	return res
}

// clusterCPU is the user+system CPU time the running nodes used so far
// (each node process and its children).
func (b *bench) clusterCPU() time.Duration {
	var total time.Duration
	for _, i := range b.c.Live() {
		if d, err := treeCPU(b.c.Node(i).PID); err == nil {
			total += d
		}
	}
	return total
}

// writePhaseTo sends every write of n clients to one node.
func (b *bench) writePhaseTo(ctx context.Context, phase string, n, node int) PhaseResult {
	body := valueFor(1)
	return b.load(ctx, phase, n, func(w, seq int) (string, string, []byte) {
		return http.MethodPut, b.urls[node] + "/config/" + keyFor('f', b.keySeq.Add(1)), body
	})
}

func (b *bench) writePhase(ctx context.Context, n int) PhaseResult {
	bodies := make([][]byte, n)
	for w := range bodies {
		bodies[w] = valueFor(uint64(w + 1))
	}
	return b.load(ctx, "config write", n, func(w, seq int) (string, string, []byte) {
		key := keyFor('w', b.keySeq.Add(1))
		return http.MethodPut, b.urls[w%len(b.urls)] + "/config/" + key, bodies[w]
	})
}

// populate writes count read keys (through clients workers over all nodes)
// and waits until the last one is readable on every node.
func (b *bench) populate(ctx context.Context, count, clients int) ([]string, error) {
	keys := make([]string, count)
	for k := range keys {
		keys[k] = keyFor('r', uint64(k))
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, clients)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			hc := b.clients[w%len(b.clients)]
			for {
				k := int(next.Add(1)) - 1
				if k >= count {
					return
				}
				for attempt := 0; ; attempt++ {
					r := do(pctx, hc, http.MethodPut, b.urls[w%len(b.urls)]+"/config/"+keys[k], valueFor(uint64(k)), http.StatusOK)
					if r.ok {
						break
					}
					if pctx.Err() != nil || attempt >= 50 {
						errc <- fmt.Errorf("populate %s: %s", keys[k], r.err)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	// Every key must be readable on every node before reads are measured.
	for i := range b.urls {
		for {
			ok := true
			for _, k := range []string{keys[0], keys[count-1]} {
				if r := do(pctx, b.clients[i], http.MethodGet, b.urls[i]+"/config/"+k, nil, http.StatusOK); !r.ok {
					ok = false
				}
			}
			if ok {
				break
			}
			select {
			case <-pctx.Done():
				return nil, fmt.Errorf("populate: read keys not visible on %s: %w", b.c.Node(i).Name, pctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return keys, nil
}

func (b *bench) readPhase(ctx context.Context, phase string, n int, keys []string, query string) PhaseResult {
	all := make([]int, len(b.urls))
	for i := range all {
		all[i] = i
	}
	return b.readPhaseOn(ctx, phase, n, keys, query, all)
}

// readPhaseOn reads keys from the nodes given, spread over them.
func (b *bench) readPhaseOn(ctx context.Context, phase string, n int, keys []string, query string, nodes []int) PhaseResult {
	return b.load(ctx, phase, n, func(w, seq int) (string, string, []byte) {
		k := keys[(w*7919+seq)%len(keys)]
		return http.MethodGet, b.urls[nodes[w%len(nodes)]] + "/config/" + k + query, nil
	})
}

// voters is the number of voting nodes (the first ones).
func (b *bench) voters() int { return b.c.N() - b.cfg.nonVoters }

// replicas are the indexes of the read replicas (--non-voters).
func (b *bench) replicas() []int {
	var r []int
	for i := b.voters(); i < b.c.N(); i++ {
		r = append(r, i)
	}
	return r
}

// consistentSupported probes GET /config/{key}?consistent; 400 or 404 (the
// key exists) means the agent does not support the parameter.
func (b *bench) consistentSupported(ctx context.Context, key string) (bool, string) {
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	last := ""
	for i := 0; pctx.Err() == nil; i++ {
		node := i % len(b.urls)
		r := do(pctx, b.clients[node], http.MethodGet, b.urls[node]+"/config/"+key+"?consistent", nil, http.StatusOK)
		if r.ok {
			return true, ""
		}
		last = r.err
		if len(r.err) >= 3 && (r.err[:3] == "400" || r.err[:3] == "404") {
			return false, "?consistent answered " + r.err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false, "?consistent never answered 200: " + last
}

// failoverRound kills the leader with SIGKILL while writers hammer the
// survivors, and measures from the kill until the first acknowledged write
// that was sent after it. Then it restarts the node and waits until the
// cluster is ready again.
func (b *bench) failoverRound(ctx context.Context, round int) (f FailoverRound) {
	f.Round = round
	c := b.c
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	leader, name, err := c.WaitLeader(rctx)
	if err != nil {
		f.Error = err.Error()
		return f
	}
	f.Killed = name
	if err := c.WaitAllReady(rctx); err != nil {
		f.Error = err.Error()
		return f
	}

	var survivors []int
	for i := 0; i < c.N(); i++ {
		if i != leader {
			survivors = append(survivors, i)
		}
	}
	// Separate short-timeout clients: a write stuck on the dead leader must
	// not hide the first one that succeeds.
	short := make(map[int]*http.Client)
	for _, i := range survivors {
		short[i] = newClient(8, time.Second)
	}
	defer func() {
		for _, hc := range short {
			hc.CloseIdleConnections()
		}
	}()

	var (
		killAt   atomic.Int64 // unix nanos; 0 before the kill
		firstAck atomic.Int64 // unix nanos of the first ack of a write sent after the kill
		preAcks  atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	body := valueFor(uint64(round))
	const perSurvivor = 4
	for _, i := range survivors {
		for g := 0; g < perSurvivor; g++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-rctx.Done():
						return
					default:
					}
					sent := time.Now().UnixNano()
					r := do(rctx, short[i], http.MethodPut, b.urls[i]+"/config/"+keyFor('f', b.keySeq.Add(1)), body, http.StatusOK)
					if !r.ok {
						time.Sleep(2 * time.Millisecond)
						continue
					}
					done := time.Now().UnixNano()
					if k := killAt.Load(); k != 0 && sent >= k {
						for {
							cur := firstAck.Load()
							if cur != 0 && cur <= done {
								break
							}
							if firstAck.CompareAndSwap(cur, done) {
								break
							}
						}
					} else if k == 0 {
						preAcks.Add(1)
					}
				}
			}(i)
		}
	}
	var stopOnce sync.Once
	stopWriters := func() { stopOnce.Do(func() { close(stop); wg.Wait() }) }
	defer stopWriters()

	// Writes must flow before the kill, so the connections are warm.
	for preAcks.Load() < 20 {
		select {
		case <-rctx.Done():
			f.Error = "no writes acknowledged before the kill"
			return f
		case <-time.After(10 * time.Millisecond):
		}
	}

	killTime := time.Now()
	killAt.Store(killTime.UnixNano())
	if err := c.Kill(leader); err != nil {
		f.Error = err.Error()
		return f
	}
	deadline := time.After(30 * time.Second)
	for firstAck.Load() == 0 {
		select {
		case <-rctx.Done():
			f.Error = "canceled"
			return f
		case <-deadline:
			f.Error = "no write acknowledged within 30s of the kill"
			stopWriters()
			_ = b.restart(rctx, leader)
			return f
		case <-time.After(time.Millisecond):
		}
	}
	f.Ms = ms(time.Duration(firstAck.Load() - killTime.UnixNano()))
	stopWriters()
	if _, nl, err := c.WaitLeader(rctx); err == nil {
		f.NewLeader = nl
	}
	if err := b.restart(rctx, leader); err != nil {
		f.Error = "restart: " + err.Error()
	}
	return f
}

// restart restarts node i and waits until every node is ready.
func (b *bench) restart(ctx context.Context, i int) error {
	if err := b.c.Restart(i); err != nil {
		return err
	}
	if err := b.c.WaitReady(ctx, i); err != nil {
		return err
	}
	if _, _, err := b.c.WaitLeader(ctx); err != nil {
		return err
	}
	return b.c.WaitAllReady(ctx)
}
