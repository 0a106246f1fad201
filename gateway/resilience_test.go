package gateway

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/registry"
)

func TestRetryGoesToAnotherInstance(t *testing.T) {
	e := newEnv(t, Options{})
	live := startUpstream(t, "live")
	e.instance("web", "dead", deadAddr(t), nil)
	e.instance("web", "live", live.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web"})
	// Connect failures are retried whatever the method.
	for _, m := range []string{"GET", "POST", "PATCH"} {
		for i := 0; i < 10; i++ {
			if r := e.do(m, "", "/", nil, strings.NewReader("body")); r.status != 200 {
				t.Fatalf("%s: %d %s", m, r.status, r.body)
			}
		}
	}
	// retries 0: the dead instance's share of requests fails until outlier
	// ejection takes it out (3 consecutive failures).
	e.instance("web2", "dead", deadAddr(t), nil)
	e.instance("web2", "live", live.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web2", Retries: intp(0)})
	failed := 0
	for i := 0; i < 10; i++ {
		if r := e.do("GET", "", "/", nil, nil); r.status == 502 {
			failed++
		}
	}
	if failed == 0 || failed > 3 {
		t.Fatalf("retries 0: %d of 10 failed, want 1..3 (until ejection)", failed)
	}
}

func TestNoRetryOfNonIdempotentAfterSend(t *testing.T) {
	e := newEnv(t, Options{})
	var calls atomic.Int64
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	drop := func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close() // the request arrived, no answer
	}
	a.handle(drop)
	b.handle(drop)
	e.instance("web", "a", a.addr(), nil)
	e.instance("web", "b", b.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web", Retries: intp(3)})
	if r := e.do("POST", "", "/", nil, strings.NewReader("x")); r.status != 502 || r.errorCode() != CodeUpstreamError {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("POST reached upstreams %d times, want 1", n)
	}
	calls.Store(0)
	if r := e.do("GET", "", "/", nil, nil); r.status != 502 {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	// 1 + 3 retries over two instances; each instance also gets fasthttp's
	// one same-connection retry for idempotent requests.
	if n := calls.Load(); n < 2 {
		t.Fatalf("GET reached upstreams %d times, want retries", n)
	}
}

func TestKillInstanceUnderLoadNoErrors(t *testing.T) {
	e := newEnv(t, Options{})
	ups := []*upstream_{startUpstream(t, "a"), startUpstream(t, "b"), startUpstream(t, "c")}
	for _, u := range ups {
		u.handle(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(2 * time.Millisecond)
			_, _ = w.Write([]byte("ok"))
		})
		e.instance("web", u.name, u.addr(), nil)
	}
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web"})
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := e.try("GET", "", "/", nil, nil)
				if err != nil || r.status != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, r.String(err))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	ups[1].kill()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d ok, %d failed; killed instance served %d", ok.Load(), failed.Load(), ups[1].hits.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d client-visible errors after killing an instance, first: %v", failed.Load(), firstErr.Load())
	}
}

func (r resp) String(err error) string {
	if err != nil {
		return err.Error()
	}
	return http.StatusText(r.status) + " " + string(r.body)
}

func TestCircuitBreakerOpensAndCloses(t *testing.T) {
	e := newEnv(t, Options{})
	up := startUpstream(t, "a")
	var failing atomic.Bool
	failing.Store(true)
	up.handle(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	e.instance("web", "a", up.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web",
		CircuitBreaker: &registry.CircuitBreaker{ConsecutiveFailures: 3, OpenFor: "300ms"}})
	for i := 0; i < 3; i++ {
		if r := e.do("GET", "", "/", nil, nil); r.status != 500 {
			t.Fatalf("request %d: %d, want the upstream's 500", i, r.status)
		}
	}
	before := up.hits.Load()
	r := e.do("GET", "", "/", nil, nil)
	if r.status != 503 || r.errorCode() != CodeCircuitOpen || r.header.Get("Retry-After") == "" {
		t.Fatalf("breaker open: got %d %s", r.status, r.body)
	}
	if up.hits.Load() != before {
		t.Fatal("an open breaker let a request through")
	}
	// Half-open trial fails: open again.
	time.Sleep(350 * time.Millisecond)
	if r := e.do("GET", "", "/", nil, nil); r.status != 500 {
		t.Fatalf("half-open trial: got %d", r.status)
	}
	if r := e.do("GET", "", "/", nil, nil); r.status != 503 {
		t.Fatalf("after failed trial: got %d, want 503", r.status)
	}
	// Trial succeeds: closed.
	failing.Store(false)
	time.Sleep(350 * time.Millisecond)
	for i := 0; i < 5; i++ {
		if r := e.do("GET", "", "/", nil, nil); r.status != 200 {
			t.Fatalf("after recovery: request %d got %d %s", i, r.status, r.body)
		}
	}
	if v := metricValue(t, e, "nexus_gateway_breaker_state", map[string]string{"route": "r", "instance": "a"}); v != 0 {
		t.Fatalf("breaker_state gauge %v, want 0 (closed)", v)
	}
}

func TestBreakerRoutesAroundOpenInstance(t *testing.T) {
	e := newEnv(t, Options{})
	bad, good := startUpstream(t, "bad"), startUpstream(t, "good")
	bad.handle(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	e.instance("web", "bad", bad.addr(), nil)
	e.instance("web", "good", good.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web",
		CircuitBreaker: &registry.CircuitBreaker{ConsecutiveFailures: 2, OpenFor: "10s"}})
	for i := 0; i < 20; i++ {
		e.do("GET", "", "/", nil, nil)
	}
	if n := bad.hits.Load(); n != 2 {
		t.Fatalf("failing instance got %d requests, want 2 before its breaker opened", n)
	}
}
