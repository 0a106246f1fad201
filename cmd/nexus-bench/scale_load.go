package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// scaleOp is one request of a counted load: the method, URL, body and the
// status that means success.
type scaleOp struct {
	method, url string
	body        []byte
	ok          int
}

// runCount sends total requests from clients workers (op(i) makes request
// i) and records latencies, failures by status, and when each tenth of the
// requests completed. Failures are not retried: they are the figure.
func (b *scaleBench) runCount(ctx context.Context, phase string, total, clients int, op func(i int) scaleOp) CountResult {
	var (
		next, done atomic.Int64
		mu         sync.Mutex
		lat        = make([]time.Duration, 0, total)
		codes      = map[string]int{}
		errs       int
		samples    []string
		wg         sync.WaitGroup
	)
	tenth := max(total/10, 1)
	marks := make([]atomic.Int64, total/tenth+1)
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var my []time.Duration
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= total {
					break
				}
				o := op(i)
				t0 := time.Now()
				r := doFast(b.fast, o.method, o.url, o.body, o.ok, 60*time.Second)
				d := time.Since(t0)
				if r.ok {
					my = append(my, d)
				} else {
					code, _, _ := strings.Cut(r.err, " ")
					if _, err := strconv.Atoi(code); err != nil {
						code = "transport"
					}
					mu.Lock()
					errs++
					codes[code]++
					if len(samples) < 5 {
						samples = append(samples, r.err)
					}
					mu.Unlock()
				}
				if n := done.Add(1); n%int64(tenth) == 0 {
					marks[n/int64(tenth)].Store(time.Now().UnixNano())
				}
			}
			mu.Lock()
			lat = append(lat, my...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res := CountResult{PhaseResult: summarize(phase, clients, time.Since(start), lat, errs), Codes: codes}
	res.ErrorSamples = samples
	if len(samples) > 0 {
		res.Note = "first error: " + samples[0]
	}
	prev := start.UnixNano()
	for k := 1; k < len(marks) && k <= 10; k++ {
		t := marks[k].Load()
		if t == 0 {
			break
		}
		res.TenthRates = append(res.TenthRates, float64(tenth)/(float64(t-prev)/1e9))
		prev = t
	}
	b.rep.Phases = append(b.rep.Phases, res)
	progress("%s: %d ops, %.0f/s, p99 %s, errors %s", phase, res.Ops, res.OpsPerSec, fmtMs(res.P99Ms), res.errorText())
	return res
}

// rssBytes is the resident set size of node i's process.
func (b *scaleBench) rssBytes(i int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", b.c.Node(i).PID))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for %s", b.c.Node(i).Name)
}

// rssAll returns the RSS of every node.
func (b *scaleBench) rssAll() ([]int64, error) {
	out := make([]int64, b.c.N())
	for i := range out {
		v, err := b.rssBytes(i)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// cpuSeconds is the user+system CPU time node i's process used so far.
func (b *scaleBench) cpuSeconds(i int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.c.Node(i).PID))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count after its ')'.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", b.c.Node(i).PID)
	}
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100, nil // clock ticks (USER_HZ = 100)
}

func (b *scaleBench) cpuAll() (float64, error) {
	sum := 0.0
	for i := 0; i < b.c.N(); i++ {
		v, err := b.cpuSeconds(i)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// metric returns the sum of the samples of a metric family on node i's
// /metrics (e.g. go_memstats_heap_inuse_bytes).
func (b *scaleBench) metric(ctx context.Context, i int, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.urls[i]+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err == nil {
			sum, found = sum+v, true
		}
	}
	if !found {
		return 0, fmt.Errorf("%s: no %s in /metrics", b.c.Node(i).Name, name)
	}
	return sum, sc.Err()
}

// nodeStatus is what the benchmark reads from GET /status.
type nodeStatus struct {
	Raft struct {
		State        string `json:"state"`
		CommitIndex  uint64 `json:"commit_index"`
		AppliedIndex uint64 `json:"applied_index"`
	} `json:"raft"`
	Instances     int `json:"instances"`
	ConfigEntries int `json:"config_entries"`
	Routes        int `json:"routes"`
}

func (b *scaleBench) status(ctx context.Context, i int) (nodeStatus, error) {
	var st nodeStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.urls[i]+"/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: GET /status answered %d", b.c.Node(i).Name, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitApplied waits until node i applied index, polling every 10 ms.
func (b *scaleBench) waitApplied(ctx context.Context, i int, index uint64) error {
	for {
		if st, err := b.status(ctx, i); err == nil && st.Raft.AppliedIndex >= index {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not apply index %d: %w", b.c.Node(i).Name, index, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// leaderCommit returns the leader's index and its commit index.
func (b *scaleBench) leaderCommit(ctx context.Context) (int, uint64, error) {
	li, _, err := b.c.WaitLeader(ctx)
	if err != nil {
		return 0, 0, err
	}
	st, err := b.status(ctx, li)
	return li, st.Raft.CommitIndex, err
}

func mib(v int64) string { return fmt.Sprintf("%.0f MiB", float64(v)/(1<<20)) }

func mibs(vs []int64) string {
	var parts []string
	for _, v := range vs {
		parts = append(parts, mib(v))
	}
	return strings.Join(parts, ", ")
}

func maxOf(vs []int64) int64 {
	m := int64(0)
	for _, v := range vs {
		m = max(m, v)
	}
	return m
}
