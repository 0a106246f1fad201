package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/proccluster"
)

// gatewayOptions are the cluster options of the gateway e2e tests: ports
// apart from the other e2e tests'.
func gatewayOptions(t *testing.T) proccluster.Options {
	o := baseOptions(t)
	o.RaftPort = envInt("NEXUS_E2E_GW_RAFT_PORT", 19300)
	o.GossipPort = envInt("NEXUS_E2E_GW_GOSSIP_PORT", 19301)
	o.HTTPPort = envInt("NEXUS_E2E_GW_HTTP_PORT", 19500)
	o.GatewayPort = envInt("NEXUS_E2E_GW_GATEWAY_PORT", 19080)
	return o
}

// gatewayClient sends requests to the nodes' gateways.
type gatewayClient struct {
	c  *proccluster.Cluster
	hc *http.Client
}

func newGatewayClient(t *testing.T, c *proccluster.Cluster) *gatewayClient {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &gatewayClient{c: c, hc: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

func (g *gatewayClient) get(i int, path string) (int, string, error) {
	res, err := g.hc.Get("http://" + g.c.Node(i).GatewayAddr + path)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// startEcho starts an upstream on 127.0.0.1 answering "echo <path>".
func startEcho(t *testing.T) (string, int) {
	return "127.0.0.1", startNamedEcho(t, "echo")
}

// TestGatewayRouteFromLeaderServedByFollowerAndSurvivesLeaderKill adds a
// route on the leader, checks that a follower's gateway serves it (and
// measures how fast every follower picks routes up), then kills the leader
// under gateway load and checks that the followers' gateways keep serving.
func TestGatewayRouteFromLeaderServedByFollowerAndSurvivesLeaderKill(t *testing.T) {
	c := startCluster(t, gatewayOptions(t))
	a := newAPI(t, c)
	gw := newGatewayClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	leader := mustLeader(t, ctx, c)
	mustAllReady(t, ctx, c)
	followers := others(c, leader)

	// The instance is registered on a follower, which owns it: when the
	// leader dies its instances turn critical, this one stays passing.
	host, port := startEcho(t)
	reg := jsonValue(map[string]any{"name": "echo", "type": "http", "address": host, "port": port})
	if r, err := a.do(ctx, followers[0], http.MethodPost, "/services/register", reg, 10*time.Second); err != nil || r.status >= 300 {
		t.Fatalf("register on follower: %v %v", err, r)
	}
	route := jsonValue(map[string]any{"id": "r-echo", "paths": []string{"/echo/"}, "service": "echo", "strip_path": true})
	if r, err := a.do(ctx, leader, http.MethodPost, "/gateway/routes", route, 10*time.Second); err != nil || r.status != http.StatusCreated {
		t.Fatalf("POST /gateway/routes on leader: %v %v", err, r)
	}
	for _, f := range followers {
		err := waitFor(ctxFor(ctx, 10*time.Second), "route on "+c.Node(f).Name, func() error {
			status, body, err := gw.get(f, "/echo/hello")
			if err != nil {
				return err
			}
			if status != 200 || body != "echo /hello" {
				return fmt.Errorf("%d %q", status, body)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// Route propagation: from the leader's acknowledgement of a new route to
	// every follower's gateway serving it.
	var lags []time.Duration
	for k := 0; k < 20; k++ {
		id := fmt.Sprintf("r-sync-%d", k)
		path := fmt.Sprintf("/sync%d/", k)
		body := jsonValue(map[string]any{"id": id, "paths": []string{path}, "service": "echo"})
		r, err := a.do(ctx, leader, http.MethodPost, "/gateway/routes", body, 10*time.Second)
		if err != nil || r.status != http.StatusCreated {
			t.Fatalf("POST route %s: %v %v", id, err, r)
		}
		acked := time.Now()
		for _, f := range followers {
			for {
				status, _, err := gw.get(f, path+"x")
				if err == nil && status == 200 {
					break
				}
				if time.Since(acked) > 10*time.Second {
					t.Fatalf("%s not served by %s after 10s (last %d %v)", id, c.Node(f).Name, status, err)
				}
				time.Sleep(500 * time.Microsecond)
			}
			lags = append(lags, time.Since(acked))
		}
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	p99 := lags[len(lags)*99/100]
	t.Logf("route propagation leader ack → follower gateway serving: n=%d p50=%v p99=%v max=%v",
		len(lags), lags[len(lags)/2], p99, lags[len(lags)-1])
	if p99 > time.Second {
		t.Errorf("route propagation p99 %v, want well under 1s (target 100ms)", p99)
	}

	// Kill the leader while the followers' gateways take load.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, f := range followers {
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func(f int) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					status, body, err := gw.get(f, "/echo/during")
					if err != nil || status != 200 || body != "echo /during" {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %d %q %v", c.Node(f).Name, status, body, err))
						continue
					}
					ok.Add(1)
				}
			}(f)
		}
	}
	time.Sleep(500 * time.Millisecond)
	t.Logf("killing leader %s", c.Node(leader).Name)
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	newLeader, name, err := c.WaitLeaderAmong(ctxFor(ctx, 30*time.Second), followers)
	if err != nil {
		t.Fatalf("no new leader: %v", err)
	}
	t.Logf("new leader %s (index %d)", name, newLeader)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("gateway requests during the leader kill: %d ok, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d gateway requests failed during the leader kill (first: %v)", failed.Load(), firstErr.Load())
	}
	// A route added after the failover is served too.
	body := jsonValue(map[string]any{"id": "r-after", "paths": []string{"/after/"}, "service": "echo", "strip_path": true})
	if r, err := a.do(ctx, newLeader, http.MethodPost, "/gateway/routes", body, 10*time.Second); err != nil || r.status != http.StatusCreated {
		t.Fatalf("POST route after failover: %v %v", err, r)
	}
	for _, f := range followers {
		err := waitFor(ctxFor(ctx, 10*time.Second), "route after failover on "+c.Node(f).Name, func() error {
			status, body, err := gw.get(f, "/after/x")
			if err != nil || status != 200 || body != "echo /x" {
				return fmt.Errorf("%d %q %v", status, body, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
