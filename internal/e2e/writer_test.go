package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"
)

// loadWriter runs goroutines that write distinct keys under a prefix to all
// nodes and records every acknowledged (2xx) write. 503, 504 and transport
// errors count as not acknowledged. After each 2xx it reads the key back from
// the same node (read-your-writes) unless that node restarted in between.
type loadWriter struct {
	a      *api
	prefix string

	mu         sync.Mutex
	attempted  map[string]string    // key -> canonical value sent
	acked      map[string]ackRecord // key -> acknowledgement
	statuses   map[string]int       // outcome class -> count
	unexpected []string             // responses outside the contract
	rywErrors  []string             // read-your-writes violations

	stop chan struct{}
	wg   sync.WaitGroup
}

type ackRecord struct {
	value string // canonical JSON
	index uint64
	node  int
	at    time.Time // when the request was sent
}

func newLoadWriter(a *api, prefix string) *loadWriter {
	return &loadWriter{
		a: a, prefix: prefix,
		attempted: map[string]string{},
		acked:     map[string]ackRecord{},
		statuses:  map[string]int{},
		stop:      make(chan struct{}),
	}
}

// start launches n goroutines; they end at Stop, when ctx ends, or after
// maxPerWorker writes each.
func (w *loadWriter) start(ctx context.Context, n, maxPerWorker int) {
	for g := 0; g < n; g++ {
		w.wg.Add(1)
		go func(g int) {
			defer w.wg.Done()
			for seq := 0; seq < maxPerWorker; seq++ {
				select {
				case <-w.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				if !w.writeOne(ctx, g, seq) {
					// Back off a little after a failure so that a dead node
					// is not hammered with connection attempts.
					select {
					case <-w.stop:
						return
					case <-ctx.Done():
						return
					case <-time.After(25 * time.Millisecond):
					}
				}
			}
		}(g)
	}
}

func (w *loadWriter) writeOne(ctx context.Context, g, seq int) bool {
	c := w.a.c
	i := (g + seq) % c.N()
	key := fmt.Sprintf("%sg%02d-%06d", w.prefix, g, seq)
	val := jsonValue(fmt.Sprintf("v-%d-%d-%d", g, seq, time.Now().UnixNano()))
	w.mu.Lock()
	w.attempted[key] = canon(val)
	w.mu.Unlock()

	pidBefore := c.Node(i).PID
	sent := time.Now()
	r, err := w.a.do(ctx, i, http.MethodPut, "/config/"+key, val, 5*time.Second)
	switch {
	case err != nil:
		w.count("transport_error")
		return false
	case r.status == http.StatusServiceUnavailable:
		w.count("503 " + r.errorCode())
		return false
	case r.status == http.StatusGatewayTimeout:
		w.count("504 " + r.errorCode())
		return false
	case r.status/100 != 2:
		w.count(fmt.Sprintf("%d %s", r.status, r.errorCode()))
		w.note(&w.unexpected, "PUT %s on %s: %s", key, c.Node(i).Name, r)
		return false
	}
	w.count("2xx")
	var e entry
	if err := json.Unmarshal(r.body, &e); err != nil || e.Key != key || canon(e.Value) != canon(val) || e.ModifyIndex == 0 {
		w.note(&w.unexpected, "PUT %s on %s: 2xx with unexpected body: %s", key, c.Node(i).Name, r)
	}
	w.mu.Lock()
	w.acked[key] = ackRecord{value: canon(val), index: e.ModifyIndex, node: i, at: sent}
	w.mu.Unlock()

	// Read-your-writes on the node that acknowledged.
	got, found, err := w.a.getConfig(ctx, i, key)
	if err != nil || c.Node(i).PID != pidBefore {
		return true // node gone or restarted: nothing to conclude
	}
	if !found || canon(got.Value) != canon(val) {
		w.note(&w.rywErrors, "%s acknowledged PUT %s=%s (index %d) but then answered found=%v value=%s index=%d",
			c.Node(i).Name, key, val, e.ModifyIndex, found, got.Value, got.ModifyIndex)
	}
	return true
}

func (w *loadWriter) count(class string) {
	w.mu.Lock()
	w.statuses[class]++
	w.mu.Unlock()
}

func (w *loadWriter) note(list *[]string, format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(*list) < 50 {
		*list = append(*list, fmt.Sprintf(format, args...))
	}
}

// Stop ends the goroutines and waits for them.
func (w *loadWriter) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// ackedSince counts acknowledgements of requests sent at or after t (to node
// `node`, or any node if node < 0).
func (w *loadWriter) ackedSince(t time.Time, node int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.acked {
		if !a.at.Before(t) && (node < 0 || a.node == node) {
			n++
		}
	}
	return n
}

func (w *loadWriter) snapshot() (acked map[string]ackRecord, attempted map[string]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	acked = make(map[string]ackRecord, len(w.acked))
	for k, v := range w.acked {
		acked[k] = v
	}
	attempted = make(map[string]string, len(w.attempted))
	for k, v := range w.attempted {
		attempted[k] = v
	}
	return acked, attempted
}

func (w *loadWriter) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var classes []string
	for k := range w.statuses {
		classes = append(classes, k)
	}
	sort.Strings(classes)
	s := fmt.Sprintf("attempted=%d acked=%d;", len(w.attempted), len(w.acked))
	for _, k := range classes {
		s += fmt.Sprintf(" %s=%d", k, w.statuses[k])
	}
	return s
}

// waitCount waits until f() >= n.
func waitCount(ctx context.Context, what string, n int, f func() int) error {
	return waitFor(ctx, what, func() error {
		if got := f(); got < n {
			return fmt.Errorf("%d of %d", got, n)
		}
		return nil
	})
}
