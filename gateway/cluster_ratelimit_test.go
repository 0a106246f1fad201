package gateway

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/registry"
)

// memBus is an in-process Exchanger network (the cluster implements the
// real one over gossip).
type memBus struct {
	mu       sync.Mutex
	handlers map[string]func(string, []byte)
}

type memEx struct {
	bus  *memBus
	name string
}

func (e memEx) Broadcast(msg []byte) {
	e.bus.mu.Lock()
	var hs []func(string, []byte)
	for n, h := range e.bus.handlers {
		if n != e.name {
			hs = append(hs, h)
		}
	}
	e.bus.mu.Unlock()
	cp := append([]byte(nil), msg...)
	for _, h := range hs {
		go h(e.name, cp)
	}
}

func (e memEx) OnMessage(h func(string, []byte)) {
	e.bus.mu.Lock()
	defer e.bus.mu.Unlock()
	e.bus.handlers[e.name] = h
}

func (e memEx) Peers() int { return 3 }

func TestClusterScopeRateLimitAcrossGateways(t *testing.T) {
	if testing.Short() {
		t.Skip("timed load test")
	}
	up := startUpstream(t, "a")
	bus := &memBus{handlers: map[string]func(string, []byte){}}
	const rps = 200.0
	route, _ := registry.NormalizeRoute(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web",
		RateLimit: &registry.RateLimit{RPS: rps, Burst: 20, Key: "header:X-Client", Scope: "cluster"}})
	host, port, _ := net.SplitHostPort(up.addr())
	var addrs []string
	for _, name := range []string{"n1", "n2", "n3"} {
		store := registry.NewStore()
		tx := store.WriteTxn(1)
		_, _, _ = tx.RegisterInstance(registry.Instance{ID: "a", Service: "web", Type: "http", Address: host, Port: atoi(port), Node: name, Status: "passing"})
		_, _, _, _ = tx.UpsertRoute(route, false)
		tx.Commit()
		g, err := New(Deps{Store: store, Node: name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Registerer: prometheus.NewRegistry(), Exchanger: memEx{bus, name}, Options: Options{ShareInterval: 250 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		go func() { _ = g.Serve(ln) }()
		t.Cleanup(func() { _ = g.Shutdown(t.Context()) })
		addrs = append(addrs, ln.Addr().String())
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var allowed, refused atomic.Int64
	var measuring atomic.Bool
	load := func(addr string, workers int, from, until time.Time, wg *sync.WaitGroup) {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Until(from))
				for time.Now().Before(until) {
					req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
					req.Header.Set("X-Client", "one-client")
					res, err := client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if measuring.Load() {
						switch res.StatusCode {
						case 200:
							allowed.Add(1)
						case 429:
							refused.Add(1)
						}
					}
				}
			}()
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	load(addrs[0], 4, start, start.Add(4*time.Second), &wg)
	load(addrs[1], 1, start, start.Add(4*time.Second), &wg)
	load(addrs[2], 2, start.Add(1500*time.Millisecond), start.Add(4*time.Second), &wg)
	time.Sleep(2 * time.Second) // one interval after the third node started
	measuring.Store(true)
	m0 := time.Now()
	time.Sleep(1900 * time.Millisecond)
	measuring.Store(false)
	elapsed := time.Since(m0).Seconds()
	wg.Wait()
	got := float64(allowed.Load()) / elapsed
	offered := float64(allowed.Load()+refused.Load()) / elapsed
	t.Logf("cluster-scope limit %.0f/s over 3 gateways: offered %.1f/s, admitted %.1f/s (%+.1f%%)", rps, offered, got, (got-rps)/rps*100)
	if got > rps*1.15 {
		t.Fatalf("admitted %.1f/s with a cluster limit of %.0f/s", got, rps)
	}
	// Admitting too little is a fault only if the clients offered enough:
	// on an overloaded machine seven sequential clients may not.
	if offered < rps*1.5 {
		t.Logf("offered only %.1f/s: the lower bound is not checked", offered)
		return
	}
	if got < rps*0.8 {
		t.Fatalf("admitted %.1f/s of %.1f/s offered with a cluster limit of %.0f/s", got, offered, rps)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
