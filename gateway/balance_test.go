package gateway

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nexus/nexus/registry"
)

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	e := newEnv(t, Options{})
	ups := []*upstream_{startUpstream(t, "a"), startUpstream(t, "b"), startUpstream(t, "c")}
	for _, u := range ups {
		e.instance("web", u.name, u.addr(), nil)
	}
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web"})
	const n = 600
	for i := 0; i < n; i++ {
		if r := e.do("GET", "", "/x", nil, nil); r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
	}
	for _, u := range ups {
		if got := u.hits.Load(); got < n/3*9/10 || got > n/3*11/10 {
			t.Errorf("%s got %d of %d requests, want %d±10%%", u.name, got, n, n/3)
		}
	}
}

func TestWeightedRoundRobin(t *testing.T) {
	e := newEnv(t, Options{})
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	e.instance("web", "a", a.addr(), map[string]string{"weight": "3"})
	e.instance("web", "b", b.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web"})
	for i := 0; i < 400; i++ {
		e.do("GET", "", "/", nil, nil)
	}
	if a.hits.Load() != 300 || b.hits.Load() != 100 {
		t.Fatalf("weights 3:1 gave %d:%d", a.hits.Load(), b.hits.Load())
	}
}

func TestLeastConnPrefersIdleInstance(t *testing.T) {
	e := newEnv(t, Options{})
	slow, fast := startUpstream(t, "slow"), startUpstream(t, "fast")
	slow.handle(func(w http.ResponseWriter, r *http.Request) { time.Sleep(200 * time.Millisecond) })
	e.instance("web", "slow", slow.addr(), nil)
	e.instance("web", "fast", fast.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web", LoadBalancer: "least_conn"})
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Second)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if _, err := e.try("GET", "", "/", nil, nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s, f := slow.hits.Load(), fast.hits.Load()
	t.Logf("slow %d, fast %d", s, f)
	if f < 10*s {
		t.Fatalf("least_conn sent %d to the busy instance and %d to the idle one", s, f)
	}
}

func TestConsistentHashKeepsKey(t *testing.T) {
	e := newEnv(t, Options{})
	ups := []*upstream_{startUpstream(t, "a"), startUpstream(t, "b"), startUpstream(t, "c")}
	for _, u := range ups {
		e.instance("web", u.name, u.addr(), nil)
	}
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web", LoadBalancer: "consistent_hash", HashOn: "header:X-User"})
	owner := map[string]string{}
	used := map[string]bool{}
	for round := 0; round < 3; round++ {
		for u := 0; u < 30; u++ {
			user := fmt.Sprint("user-", u)
			r := e.do("GET", "", "/", map[string]string{"X-User": user}, nil)
			got := r.header.Get("X-Upstream")
			if prev, ok := owner[user]; ok && prev != got {
				t.Fatalf("%s went to %s, then to %s", user, prev, got)
			}
			owner[user] = got
			used[got] = true
		}
	}
	if len(used) < 2 {
		t.Fatalf("30 users all hashed to %v", used)
	}
	// Removing an instance moves only its own keys.
	gone := owner["user-0"]
	e.setStatus("web", gone, registry.StatusCritical)
	for u := 0; u < 30; u++ {
		user := fmt.Sprint("user-", u)
		got := e.do("GET", "", "/", map[string]string{"X-User": user}, nil).header.Get("X-Upstream")
		if owner[user] != gone && got != owner[user] {
			t.Errorf("%s moved from %s to %s although %s is still passing", user, owner[user], got, owner[user])
		}
		if got == gone {
			t.Errorf("%s still sent to critical instance %s", user, gone)
		}
	}
}

func TestOnlyPassingInstances(t *testing.T) {
	e := newEnv(t, Options{})
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	e.instance("web", "a", a.addr(), nil)
	e.instance("web", "b", b.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web"})
	e.setStatus("web", "a", registry.StatusWarning)
	for i := 0; i < 10; i++ {
		if got := e.do("GET", "", "/", nil, nil).header.Get("X-Upstream"); got != "b" {
			t.Fatalf("request went to %q while a is warning", got)
		}
	}
	e.setStatus("web", "b", registry.StatusCritical)
	if r := e.do("GET", "", "/", nil, nil); r.status != 503 || r.errorCode() != CodeNoHealthyUpstream {
		t.Fatalf("no passing instance: got %d %s", r.status, r.body)
	}
	e.setStatus("web", "a", registry.StatusPassing)
	if got := e.do("GET", "", "/", nil, nil).header.Get("X-Upstream"); got != "a" {
		t.Fatalf("request went to %q after a passed again", got)
	}
}
