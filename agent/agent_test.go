package agent_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/agent"
	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/storage"
)

// A one-node agent starts, becomes ready (Ready, and GET /ready 200),
// and stops once: a second Shutdown returns the first result, and the
// data dir and every port are free again.
func TestAgentStartReadyShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	p := agenttest.NewPorts(t).Node()
	dir := t.TempDir()
	a := agenttest.Start(t, agenttest.Node{Name: "n1", Dir: dir, Ports: p, Expect: 1})
	select {
	case <-a.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not become ready")
	}
	resp, err := http.Get("http://" + a.AdminAddr().String() + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ready after Ready: %d %s", resp.StatusCode, body)
	}
	select {
	case <-a.Done():
		t.Fatalf("Done before any stop: %v", a.Err())
	default:
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	dd, err := storage.Open(dir, "n1", storage.Options{})
	if err != nil {
		t.Fatalf("the data dir is still locked: %v", err)
	}
	dd.Close()
	for _, addr := range []string{p.RaftAddr(), p.HTTPAddr(), a.GatewayAddr().String()} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s still in use after Shutdown: %v", addr, err)
		}
		ln.Close()
	}
}

// A part that cannot start (the admin API's port is taken) fails Start,
// and what had started is stopped: the same node then starts on a free
// port with the same data dir.
func TestAgentStartFailureStopsWhatStarted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	pp := agenttest.NewPorts(t)
	p := pp.Node()
	dir := t.TempDir()
	taken, err := net.Listen("tcp", p.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := agenttest.Config(t, agenttest.Node{Name: "n1", Dir: dir, Ports: p, Expect: 1})
	if a, err := agent.Start(cfg, agent.Options{}); err == nil {
		_ = a.Shutdown(context.Background())
		t.Fatal("Start succeeded with the admin API's port taken")
	}
	p.HTTP = pp.Port()
	a := agenttest.Start(t, agenttest.Node{Name: "n1", Dir: dir, Ports: p, Expect: 1})
	select {
	case <-a.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not become ready after a failed start")
	}
}

// `nexus leave` (POST /cluster/leave) on a follower deregisters the
// instances it owns (100, concurrently), takes it out of Raft, and ends the agent on its own:
// Done closes with no error.
func TestAgentLeaveEndsTheAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	ps, join := agenttest.NewPorts(t).Cluster(3)
	nodes := make([]*agent.Agent, 3)
	for i := range nodes {
		nodes[i] = agenttest.Start(t, agenttest.Node{Name: fmt.Sprintf("n%d", i+1), Ports: ps[i], Expect: 3, Join: join})
	}
	for _, a := range nodes {
		select {
		case <-a.Ready():
		case <-time.After(60 * time.Second):
			t.Fatal("the cluster did not become ready")
		}
	}
	leaving := nodes[0]
	if leaving.Node().IsLeader() {
		leaving = nodes[1]
	}
	post := func(a *agent.Agent, path, body string) (int, string) {
		t.Helper()
		resp, err := http.Post("http://"+a.AdminAddr().String()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// 503 and 504: no leader at that moment (a loaded machine sees
	// elections); both requests are idempotent.
	type request struct {
		path, body string
		want       int
	}
	// 100 instances: the leave deregisters them concurrently.
	var requests []request
	for i := range 100 {
		requests = append(requests, request{"/services/register",
			fmt.Sprintf(`{"name":"web","id":"web-%d","type":"http","address":"10.0.0.1","port":%d}`, i, 1000+i), http.StatusCreated})
	}
	for _, rq := range append(requests, request{"/cluster/leave", "", http.StatusOK}) {
		retry.Run(t, func(r *retry.R) {
			switch code, body := post(leaving, rq.path, rq.body); {
			case code == rq.want, code == http.StatusOK:
			case code == http.StatusServiceUnavailable, code == http.StatusGatewayTimeout:
				r.Fatalf("POST %s: %d %s", rq.path, code, body)
			default:
				t.Fatalf("POST %s: %d %s", rq.path, code, body)
			}
		}, retry.Timeout(60*time.Second))
	}
	select {
	case <-leaving.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not end after leaving")
	}
	if err := leaving.Err(); err != nil {
		t.Fatalf("Err after a leave: %v", err)
	}
	_ = leaving.Shutdown(context.Background())
	var stay *agent.Agent
	for _, a := range nodes {
		if a != leaving {
			stay = a
		}
	}
	retry.Run(t, func(r *retry.R) {
		if n := len(stay.Node().Raft().Servers); n != 2 {
			r.Fatalf("%d raft servers after the leave, want 2", n)
		}
		tx := stay.FSM().Store().ReadTxn()
		defer tx.Abort()
		if in := tx.ServiceInstances(nil, "web"); len(in) != 0 {
			r.Fatalf("the leaving node's instances are still registered: %+v", in)
		}
	}, retry.Timeout(30*time.Second))
}
