package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// services is the number of services the registration phase spreads its
// instances over.
func (b *scaleBench) services() int { return b.cfg.instances / 10 }

func serviceName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// registration is the body of registration i: two tags, one metadata key,
// ten instances per service, as issue 21 measured.
func registration(i int) []byte {
	return fmt.Appendf(nil, `{"name":%q,"type":"http","id":"i-%07d","address":"10.%d.%d.%d","port":8080,`+
		`"tags":["blue","v1"],"metadata":{"zone":"z%d"}}`, serviceName(i/10), i, (i>>16)&255, (i>>8)&255, i&255, i%3)
}

// register registers the instances, then reports their rate, latency,
// errors and the memory they take on every node.
func (b *scaleBench) register(ctx context.Context) error {
	rssBefore, err := b.rssAll()
	if err != nil {
		return err
	}
	n := b.cfg.instances
	res := b.runCount(ctx, fmt.Sprintf("register %d instances / %d services", n, b.services()), n, b.cfg.clients, func(i int) scaleOp {
		return scaleOp{http.MethodPost, b.urls[i%len(b.urls)] + "/services/register", registration(i), http.StatusCreated}
	})
	r := b.rep
	sec := fmt.Sprintf("registration (%d instances, %d clients)", n, b.cfg.clients)
	r.add(sec, "rate overall", "≥ 2,000/s", "%.0f/s", res.OpsPerSec)
	if len(res.TenthRates) > 0 {
		r.add(sec, "first tenth → last tenth", "last ≥ 0.8x first", "%.0f/s → %.0f/s (%.2fx)",
			res.TenthRates[0], res.TenthRates[len(res.TenthRates)-1], res.firstLastRatio())
	}
	r.add(sec, "p99", "≤ 100 ms", "%s", fmtMs(res.P99Ms))
	r.add(sec, "errors", "0", "%s", res.errorText())
	if err := b.settle(ctx); err != nil {
		return err
	}
	rss, err := b.rssAll()
	if err != nil {
		return err
	}
	sec = fmt.Sprintf("memory (%d instances, default audit backlog)", n)
	r.add(sec, "RSS per node", "≤ 800 MB at 100,000", "%s", mibs(rss))
	per := make([]int64, len(rss))
	for i := range rss {
		per[i] = (rss[i] - rssBefore[i]) / int64(n)
	}
	r.add(sec, "RSS growth per instance", "", "%v bytes", per)
	var heap []int64
	for i := range b.urls {
		v, err := b.metric(ctx, i, "go_memstats_heap_inuse_bytes")
		if err != nil {
			return err
		}
		heap = append(heap, int64(v))
	}
	r.add(sec, "Go heap in use per node", "", "%s", mibs(heap))
	return nil
}

// settle waits until every node applied what the leader committed.
func (b *scaleBench) settle(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, commit, err := b.leaderCommit(sctx)
	if err != nil {
		return err
	}
	for i := range b.urls {
		if err := b.waitApplied(sctx, i, commit); err != nil {
			return err
		}
	}
	return nil
}

// paced sends rate requests per second for d (op(i) makes request i) from
// a pool of workers, and returns how many were sent and failed.
func (b *scaleBench) paced(ctx context.Context, rate int, d time.Duration, op func(i int) scaleOp) (sent, failed int) {
	jobs := make(chan int, rate)
	var fails atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				o := op(i)
				if r := doFast(b.fast, o.method, o.url, o.body, o.ok, 30*time.Second); !r.ok {
					fails.Add(1)
				}
			}
		}()
	}
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		<-t.C
		want := int(float64(rate) * time.Since(start).Seconds())
		for ; sent < want; sent++ {
			jobs <- sent
		}
	}
	close(jobs)
	wg.Wait()
	return sent, int(fails.Load())
}

// watch blocks watchers on services of their own and writes to other
// services: those writes must wake none of them and cost them no CPU.
func (b *scaleBench) watch(ctx context.Context) error {
	svcs := b.services()
	w := min(b.cfg.watchers, svcs)
	if !b.cfg.only["register"] {
		return errors.New("needs the register phase (the watched services)")
	}
	// Unrelated writes: registrations of instances of services no watcher
	// watches: those after the watched ones, and past the catalog (new
	// services, then their re-registrations) when every service is
	// watched, as at the full size (10,000 watchers on 10,000 services).
	unwatched := max((svcs-w)*10, 10000)
	write := func(i int) scaleOp {
		k := w*10 + i%unwatched
		return scaleOp{http.MethodPost, b.urls[i%len(b.urls)] + "/services/register", registration(k), http.StatusOK}
	}
	// Those past the catalog exist first (a first registration answers
	// 201, the measured ones re-register: 200).
	if past := w*10 + unwatched - b.cfg.instances; past > 0 {
		res := b.runCount(ctx, fmt.Sprintf("register %d instances of unwatched services", past), past, b.cfg.clients, func(i int) scaleOp {
			return scaleOp{http.MethodPost, b.urls[i%len(b.urls)] + "/services/register", registration(b.cfg.instances + i), http.StatusCreated}
		})
		if res.Errors > 0 {
			return fmt.Errorf("registering the unwatched services: %s", res.errorText())
		}
	}
	cpu0, err := b.cpuAll()
	if err != nil {
		return err
	}
	sent, failed := b.paced(ctx, b.cfg.watchRate, b.cfg.watchDuration, write)
	cpu1, err := b.cpuAll()
	if err != nil {
		return err
	}
	sec := fmt.Sprintf("blocking queries (%d watchers on %d services, %d writes/s elsewhere)", w, w, b.cfg.watchRate)
	b.rep.add(sec, "cluster CPU without watchers", "", "%.2f s for %d writes (%d failed)", cpu1-cpu0, sent, failed)

	// The watchers: net/http, so that they can be cancelled at the end.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: w + 8, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	answered := make(chan string, w)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := 0; i < w; i++ {
		u := b.urls[i%len(b.urls)] + "/services/" + serviceName(i)
		idx, err := indexOfGet(wctx, hc, u)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(wctx, http.MethodGet, fmt.Sprintf("%s?index=%d&wait=5m", u, idx), nil)
			resp, err := hc.Do(req)
			if err != nil {
				return // cancelled at the end
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answered <- u
		}()
	}
	if err := b.waitMetric(ctx, "nexus_api_blocking_queries", float64(w)); err != nil {
		return err
	}
	wake0, err := b.metricAll(ctx, "nexus_api_blocking_wakeups_total")
	if err != nil {
		return err
	}
	cpu2, err := b.cpuAll()
	if err != nil {
		return err
	}
	sent, failed = b.paced(ctx, b.cfg.watchRate, b.cfg.watchDuration, write)
	cpu3, err := b.cpuAll()
	if err != nil {
		return err
	}
	wake1, err := b.metricAll(ctx, "nexus_api_blocking_wakeups_total")
	if err != nil {
		return err
	}
	b.rep.add(sec, "cluster CPU with watchers", "same as without", "%.2f s for %d writes (%d failed)", cpu3-cpu2, sent, failed)
	b.rep.add(sec, "watcher wakeups during the writes", "0", "%.0f", wake1-wake0)
	b.rep.add(sec, "watchers answered during the writes", "0", "%d", len(answered))
	// A write to one watched service wakes its watcher.
	t0 := time.Now()
	if r := doFast(b.fast, http.MethodPost, b.urls[0]+"/services/register", registration(0), http.StatusOK, 30*time.Second); !r.ok {
		return fmt.Errorf("write to a watched service: %s", r.err)
	}
	select {
	case u := <-answered:
		b.rep.add(sec, "write to one watched service → its watcher answers", "", "%s (%s)", fmtMs(ms(time.Since(t0))), u)
	case <-time.After(30 * time.Second):
		return errors.New("the watcher of svc-00000 did not answer its service's change")
	}
	return nil
}

func indexOfGet(ctx context.Context, hc *http.Client, u string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %d", u, resp.StatusCode)
	}
	return strconv.ParseUint(resp.Header.Get("X-Nexus-Index"), 10, 64)
}

// metricAll sums a metric over the nodes.
func (b *scaleBench) metricAll(ctx context.Context, name string) (float64, error) {
	sum := 0.0
	for i := range b.urls {
		v, err := b.metric(ctx, i, name)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// waitMetric waits until a metric summed over the nodes reaches want.
func (b *scaleBench) waitMetric(ctx context.Context, name string, want float64) error {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		v, err := b.metricAll(wctx, name)
		if err == nil && v >= want {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("%s stayed at %v, want %v", name, v, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// routesPhase adds routes and measures what they cost the gateway: every
// route accepted, a route change served by every gateway soon, and the
// throughput of one route with all the others present.
func (b *scaleBench) routesPhase(ctx context.Context) error {
	uctx, stop := context.WithCancel(ctx)
	defer stop()
	upstream := fmt.Sprintf("127.0.0.1:%d", b.cfg.upstreamPort)
	go func() { _ = serveUpstream(uctx, upstream) }()
	host, port, _ := net.SplitHostPort(upstream)
	p, _ := strconv.Atoi(port)
	reg := fmt.Appendf(nil, `{"name":"bench-up","type":"http","id":"up-1","address":%q,"port":%d}`, host, p)
	if r := doFast(b.fast, http.MethodPost, b.urls[0]+"/services/register", reg, http.StatusCreated, 30*time.Second); !r.ok {
		return fmt.Errorf("register the upstream: %s", r.err)
	}
	if err := b.addRoute("bench", "/bench"); err != nil {
		return err
	}
	gw := b.c.Node(0).GatewayAddr
	if err := b.waitServed(ctx, "/bench"); err != nil {
		return err
	}
	one := b.gatewayMedian(ctx, gw, "/bench")
	sec := fmt.Sprintf("gateway (%d routes, %d clients adding them)", b.cfg.routes, b.cfg.routeClients)
	svcs := max(b.services(), 1)
	res := b.runCount(ctx, fmt.Sprintf("add %d routes", b.cfg.routes), b.cfg.routes, b.cfg.routeClients, func(i int) scaleOp {
		body := fmt.Appendf(nil, `{"id":"r-%05d","service":%q,"paths":["/r/%05d"]}`, i, serviceName(i%svcs), i)
		return scaleOp{http.MethodPost, b.urls[i%len(b.urls)] + "/gateway/routes", body, http.StatusCreated}
	})
	b.rep.add(sec, "routes accepted", "all", "%d of %d (errors %s)", res.Ops, b.cfg.routes, res.errorText())
	b.rep.add(sec, "route add rate, p99", "", "%.0f/s, %s", res.OpsPerSec, fmtMs(res.P99Ms))
	if err := b.waitMetric(ctx, "nexus_gateway_routes", float64(3*(res.Ops+1))); err != nil {
		return err
	}
	var worst, worstAck time.Duration
	for j := 0; j < b.cfg.propagations; j++ {
		path := fmt.Sprintf("/prop/%d", j)
		t0 := time.Now()
		if err := b.addRoute(fmt.Sprintf("prop-%d", j), path); err != nil {
			return err
		}
		acked := time.Now()
		if err := b.waitServed(ctx, path); err != nil {
			return err
		}
		worst, worstAck = max(worst, time.Since(acked)), max(worstAck, time.Since(t0))
	}
	b.rep.add(sec, fmt.Sprintf("route change → served by all 3 gateways (worst of %d)", b.cfg.propagations), "≤ 100 ms",
		"%s after the write's answer (%s after it was sent)", fmtMs(ms(worst)), fmtMs(ms(worstAck)))
	many := b.gatewayMedian(ctx, gw, "/bench")
	ratio := 0.0
	if one > 0 {
		ratio = many / one
	}
	b.rep.add(sec, fmt.Sprintf("gateway throughput, 1 route → all routes (median of %d × %s)", b.cfg.gatewayRounds, b.cfg.gatewayTime),
		"≥ 0.9x", "%.0f/s → %.0f/s (%.2fx)", one, many, ratio)
	return nil
}

func (b *scaleBench) addRoute(id, path string) error {
	body := fmt.Appendf(nil, `{"id":%q,"service":"bench-up","paths":[%q]}`, id, path)
	if r := doFast(b.fast, http.MethodPost, b.urls[0]+"/gateway/routes", body, http.StatusCreated, 30*time.Second); !r.ok {
		return fmt.Errorf("add route %s: %s", id, r.err)
	}
	return nil
}

// waitServed waits until every node's gateway answers 200 on path, polling
// each every millisecond.
func (b *scaleBench) waitServed(ctx context.Context, path string) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	errc := make(chan error, b.c.N())
	for i := 0; i < b.c.N(); i++ {
		u := "http://" + b.c.Node(i).GatewayAddr + path
		go func() {
			for {
				if r := doFast(b.fast, http.MethodGet, u, nil, http.StatusOK, 5*time.Second); r.ok {
					errc <- nil
					return
				}
				select {
				case <-wctx.Done():
					errc <- fmt.Errorf("%s not served: %w", u, wctx.Err())
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
	}
	var first error
	for i := 0; i < b.c.N(); i++ {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// gatewayMedian is the median of gatewayRounds loads.
func (b *scaleBench) gatewayMedian(ctx context.Context, gw, path string) float64 {
	var rates []float64
	for range b.cfg.gatewayRounds {
		rates = append(rates, b.gatewayLoad(ctx, gw, path))
	}
	sort.Float64s(rates)
	return rates[len(rates)/2]
}

// gatewayLoad sends GET path to a gateway from gatewayConns keep-alive
// connections for gatewayTime and returns the successful requests per
// second.
func (b *scaleBench) gatewayLoad(ctx context.Context, gw, path string) float64 {
	c := &fasthttp.Client{MaxConnsPerHost: b.cfg.gatewayConns, NoDefaultUserAgentHeader: true, ReadTimeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	u := "http://" + gw + path
	var okN atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(b.cfg.gatewayTime)
	start := time.Now()
	for range b.cfg.gatewayConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				if r := doFast(c, http.MethodGet, u, nil, http.StatusOK, 10*time.Second); r.ok {
					okN.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(okN.Load()) / time.Since(start).Seconds()
}

// configPhase writes the config keys and reports their rate and memory.
func (b *scaleBench) configPhase(ctx context.Context) error {
	rssBefore, err := b.rssAll()
	if err != nil {
		return err
	}
	values := make([][]byte, 64)
	for i := range values {
		values[i] = valueFor(uint64(i + 1))
	}
	m := b.cfg.configKeys
	res := b.runCount(ctx, fmt.Sprintf("write %d config keys", m), m, b.cfg.clients, func(i int) scaleOp {
		return scaleOp{http.MethodPut, fmt.Sprintf("%s/config/cfg/%07d", b.urls[i%len(b.urls)], i), values[i%len(values)], http.StatusOK}
	})
	sec := fmt.Sprintf("config (%d keys of %d bytes, %d clients)", m, valueSize, b.cfg.clients)
	b.rep.add(sec, "rate overall", "", "%.0f/s", res.OpsPerSec)
	if len(res.TenthRates) > 0 {
		b.rep.add(sec, "first tenth → last tenth", "last ≥ 0.8x first", "%.0f/s → %.0f/s (%.2fx)",
			res.TenthRates[0], res.TenthRates[len(res.TenthRates)-1], res.firstLastRatio())
	}
	b.rep.add(sec, "p99, errors", "", "%s, %s", fmtMs(res.P99Ms), res.errorText())
	if err := b.settle(ctx); err != nil {
		return err
	}
	rss, err := b.rssAll()
	if err != nil {
		return err
	}
	per := make([]int64, len(rss))
	for i := range rss {
		per[i] = (rss[i] - rssBefore[i]) / int64(m)
	}
	b.rep.add(sec, "RSS per node after", "", "%s", mibs(rss))
	b.rep.add(sec, "RSS growth per key", "", "%v bytes", per)
	return nil
}

// lists times the first page of each list on a follower.
func (b *scaleBench) lists(ctx context.Context) error {
	li, _, err := b.c.WaitLeader(ctx)
	if err != nil {
		return err
	}
	node := (li + 1) % b.c.N()
	sec := "lists (first page, median / max of 20, on a follower)"
	for _, p := range []string{"/services", "/services?limit=100", "/discover/http", "/discover/http?limit=100",
		"/config?prefix=cfg/", "/config?prefix=cfg/&limit=100", "/gateway/routes?limit=100"} {
		var ds []time.Duration
		size := 0
		for range 20 {
			t0 := time.Now()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			req.SetRequestURI(b.urls[node] + p)
			err := b.fast.DoTimeout(req, resp, 30*time.Second)
			ds = append(ds, time.Since(t0))
			size = len(resp.Body())
			status := resp.StatusCode()
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
			if err != nil || status != http.StatusOK {
				return fmt.Errorf("GET %s: %v %d", p, err, status)
			}
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		b.rep.add(sec, "GET "+p, "≤ 10 ms", "%s / %s (%d KiB)", fmtMs(ms(median(ds))), fmtMs(ms(ds[len(ds)-1])), size>>10)
	}
	return nil
}

// snapshot saves a snapshot through the API and restores it when it fits
// the restore endpoint's limit.
func (b *scaleBench) snapshot(ctx context.Context) error {
	li, _, err := b.c.WaitLeader(ctx)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, b.urls[li]+"/cluster/snapshot", nil)
	resp, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /cluster/snapshot: %v %d", err, resp.StatusCode)
	}
	took := time.Since(t0)
	sec := "snapshot (GET/PUT /cluster/snapshot on the leader)"
	b.rep.add(sec, "save: time, size", "", "%s, %s", fmtMs(ms(took)), mib(int64(len(body))))
	const maxRestore = 64 << 20 // api.MaxSnapshotBytes
	if len(body) > maxRestore {
		b.rep.add(sec, "restore", "", "n/a: %s is above the 64 MiB limit of PUT /cluster/snapshot (see restart and catch-up)", mib(int64(len(body))))
		return nil
	}
	t0 = time.Now()
	req, _ = http.NewRequestWithContext(sctx, http.MethodPut, b.urls[li]+"/cluster/snapshot", bytes.NewReader(body))
	resp, err = b.hc.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT /cluster/snapshot: %d %s", resp.StatusCode, msg)
	}
	b.rep.add(sec, "restore (whole cluster)", "", "%s", fmtMs(ms(time.Since(t0))))
	return b.settle(ctx)
}

// restartPhase stops a follower, restarts it and times it until it is
// ready with everything the leader committed.
func (b *scaleBench) restartPhase(ctx context.Context) error {
	return b.rejoin(ctx, "restart", false)
}

// catchUp wipes a follower's data and restarts it: it catches up by a
// snapshot install from the leader.
func (b *scaleBench) catchUp(ctx context.Context) error {
	return b.rejoin(ctx, "catch-up", true)
}

func (b *scaleBench) rejoin(ctx context.Context, what string, wipe bool) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	li, _, err := b.c.WaitLeader(rctx)
	if err != nil {
		return err
	}
	f := (li + 1) % b.c.N()
	if _, err := b.c.Stop(f); err != nil {
		return err
	}
	if wipe {
		dir := b.c.Node(f).DataDir
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	_, commit, err := b.leaderCommit(rctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := b.c.Restart(f); err != nil {
		return err
	}
	if err := b.c.WaitReady(rctx, f); err != nil {
		return err
	}
	if err := b.waitApplied(rctx, f, commit); err != nil {
		return err
	}
	took := time.Since(t0)
	st, err := b.status(rctx, f)
	if err != nil {
		return err
	}
	if wipe {
		b.rep.add("recovery", "fresh node (data wiped) → caught up", "≤ 30 s", "%s (%d instances, %d keys, %d routes)",
			fmtMs(ms(took)), st.Instances, st.ConfigEntries, st.Routes)
	} else {
		b.rep.add("recovery", "restarted node → ready with all", "≤ 15 s", "%s (%d instances, %d keys, %d routes)",
			fmtMs(ms(took)), st.Instances, st.ConfigEntries, st.Routes)
	}
	return b.c.WaitAllReady(rctx)
}
