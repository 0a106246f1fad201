package consul_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/consul"
	"github.com/nexus/nexus/internal/retry"
)

// BenchmarkBlockingFanout: 10,000 blocking health queries spread over 100
// services (100 watchers each) on one node; each op changes one service
// and waits until its watchers have all answered. A change must wake only
// that service's watchers (Consul's long-standing complaint:
// hashicorp/consul#1244, #4984). Reported per op: answered (watchers that
// returned: 100 is the ideal), wakeups (queries woken and read again,
// answered or not: nexus_consul_blocking_wakeups_total), and fanout-ms
// (change to the last of its watchers answering).
//
// The watchers call the mapping's handler (ServeMounted) with in-process
// requests, the admin API's authentication, blocking read and answer
// included, but no sockets: 10,000 HTTP connections would need 20,000 file
// descriptors in one process.
//
//	go test -run '^$' -bench BlockingFanout -benchtime 20x ./consul/
func BenchmarkBlockingFanout(b *testing.B) {
	const services, perService = 100, 100
	h := newHarness(b)
	for s := range services {
		if err := h.client.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: fmt.Sprintf("svc-%d", s), Port: 1000 + s}); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var answered [services]atomic.Int64
	var total atomic.Int64
	var wg sync.WaitGroup
	for s := range services {
		for range perService {
			wg.Add(1)
			go func() {
				defer wg.Done()
				watch(ctx, h.v1, s, &answered[s], &total)
			}()
		}
	}
	// Every watcher is parked.
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Minute)
	err := retry.Until(pctx, "every watcher parked", func() error {
		if n := gaugeValue(b, h, "nexus_consul_blocking_queries"); n < services*perService {
			return fmt.Errorf("%v of %d parked", n, services*perService)
		}
		return nil
	})
	pcancel()
	if err != nil {
		b.Fatal(err)
	}
	total.Store(0)
	wake0 := gaugeValue(b, h, "nexus_consul_blocking_wakeups_total")
	var fanout time.Duration
	b.ResetTimer()
	for i := range b.N {
		s := i % services
		before := answered[s].Load()
		start := time.Now()
		if err := h.client.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: fmt.Sprintf("svc-%d", s), Port: 1000 + s,
			Tags: []string{strconv.Itoa(i)}}); err != nil {
			b.Fatal(err)
		}
		for answered[s].Load() < before+perService {
			time.Sleep(100 * time.Microsecond)
		}
		fanout += time.Since(start)
	}
	b.StopTimer()
	// Let wrongly woken watchers, if any, show before counting.
	time.Sleep(200 * time.Millisecond)
	n := float64(b.N)
	b.ReportMetric(float64(total.Load())/n, "answered/op")
	b.ReportMetric((gaugeValue(b, h, "nexus_consul_blocking_wakeups_total")-wake0)/n, "wakeups/op")
	b.ReportMetric(float64(fanout.Microseconds())/1000/n, "fanout-ms/op")
	// The watchers' blocking reads end with the server.
	cancel()
}

// watch reads service s once, then repeats a blocking health query on it
// until ctx ends, counting the blocking answers.
func watch(ctx context.Context, v1 *consul.Server, s int, answered, total *atomic.Int64) {
	path := fmt.Sprintf("/v1/health/service/svc-%d", s)
	query := ""
	for first := true; ctx.Err() == nil; first = false {
		var rc fasthttp.RequestCtx
		rc.Request.Header.SetMethod(fasthttp.MethodGet)
		rc.Request.SetRequestURI(path + query)
		_, idx := v1.ServeMounted(&rc, "bench")
		if rc.Response.StatusCode() != fasthttp.StatusOK {
			return
		}
		if !first {
			answered.Add(1)
			total.Add(1)
		}
		query = "?wait=5m&index=" + strconv.FormatUint(idx, 10)
	}
}
