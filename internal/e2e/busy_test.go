package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/retry"
)

// TestRegistrationsSurviveElections: a leader that stops answering for
// about as long as the election timeout (SIGSTOP for 450 ms, inside the
// 300-600 ms randomized timeout: what CPU starvation does to a node; 100 ms
// longer after each stall that caused no election, up to 900 ms) causes
// an election, and resumes while the others still name it leader while clients register
// instances on every node. A write that reached no leader (this node or the
// one it asked was no longer leader) was not dispatched: the node waits for
// the next leader and sends it there, so no registration is refused with
// 503 no_leader (issue 21: 1,824 of 20,000 were). A write in flight on the
// old leader when it lost leadership waits for the next leader to decide
// it: answered with its result when that leader committed it, sent again
// when it did not (cluster/lost.go), so none answers 504 outcome_unknown
// either; every registration answered 201 is in the catalog.
func TestRegistrationsSurviveElections(t *testing.T) {
	c := startCluster(t, baseOptions(t))
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mustLeader(t, ctx, c)
	mustAllReady(t, ctx, c)

	var ok atomic.Int64
	var mu sync.Mutex
	failures := map[string]int{}
	var samples []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Appendf(nil, `{"name":"svc-%d","type":"http","id":"i-%d-%d","address":"10.0.0.1","port":8080,"tags":["a","b"],"metadata":{"k":"v"}}`, i%50, w, i)
				r, err := a.do(ctx, w%c.N(), "POST", "/services/register", body, 20*time.Second)
				if err == nil && r.status == 201 {
					ok.Add(1)
					continue
				}
				what := "transport"
				if err == nil {
					what = strconv.Itoa(r.status)
				}
				mu.Lock()
				failures[what]++
				if len(samples) < 5 {
					samples = append(samples, fmt.Sprintf("%s %v", r, err))
				}
				mu.Unlock()
			}
		}()
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	elections := 0
	stall := 450 * time.Millisecond
	for round := 0; round < 10 && elections < 2; round++ {
		before := ok.Load()
		retry.Run(t, func(r *retry.R) {
			if ok.Load() < before+50 {
				r.Fatalf("%d registrations since round %d", ok.Load()-before, round)
			}
		}, retry.Timeout(time.Minute))
		leader := mustLeader(t, ctx, c)
		term := raftTerm(t, ctx, a, leader)
		if err := c.Pause(leader); err != nil {
			t.Fatal(err)
		}
		time.Sleep(stall) // the fault: a stall as long as an election timeout
		if err := c.Resume(leader); err != nil {
			t.Fatal(err)
		}
		// An election is a new term, whoever wins it: the stalled leader
		// may step down and be elected again.
		if next := mustLeader(t, ctx, c); raftTerm(t, ctx, a, next) > term {
			elections++
		} else {
			// Both followers' randomized timeouts outlasted the stall (the
			// pre-vote needs a majority that lost the leader): stall
			// longer, up to past the largest timeout.
			stall = min(stall+100*time.Millisecond, 900*time.Millisecond)
		}
	}
	before := ok.Load()
	retry.Run(t, func(r *retry.R) {
		if ok.Load() < before+50 {
			r.Fatalf("%d registrations since the last stall", ok.Load()-before)
		}
	}, retry.Timeout(time.Minute))
	close(stop)
	wg.Wait()

	retries, lost := 0.0, 0.0
	for i := range c.N() {
		retries += metricValue(t, ctx, a, i, "nexus_write_no_leader_retries_total")
		lost += metricValue(t, ctx, a, i, "nexus_write_leadership_lost_total")
	}
	t.Logf("%d registrations, failures %v, %d elections, %v writes tried again, %v in flight at a lost leadership: %q",
		ok.Load(), failures, elections, retries, lost, samples)
	if elections == 0 {
		t.Fatal("no stall caused an election: nothing was tested")
	}
	if len(failures) > 0 {
		t.Fatalf("registrations failed: %v (%q)", failures, samples)
	}
	// Every acknowledged registration is applied, on every node.
	leader := mustLeader(t, ctx, c)
	retry.Run(t, func(r *retry.R) {
		for i := range c.N() {
			if n := instanceCount(t, ctx, a, i); n != int(ok.Load()) {
				r.Fatalf("%s holds %d instances, %d registrations were acknowledged (leader %s)", a.c.Node(i).Name, n, ok.Load(), a.c.Node(leader).Name)
			}
		}
	}, retry.Timeout(30*time.Second))
}

// instanceCount is the number of instances node i holds (GET /status).
func instanceCount(t *testing.T, ctx context.Context, a *api, i int) int {
	var st struct {
		Instances int `json:"instances"`
	}
	getJSON(t, ctx, a, i, "/status", &st)
	return st.Instances
}

// raftTerm is the Raft term node i knows.
func raftTerm(t *testing.T, ctx context.Context, a *api, i int) uint64 {
	var v struct {
		Term uint64 `json:"term"`
	}
	getJSON(t, ctx, a, i, "/cluster/raft", &v)
	return v.Term
}

// getJSON decodes node i's 200 answer to GET path into out.
func getJSON(t *testing.T, ctx context.Context, a *api, i int, path string, out any) {
	t.Helper()
	r, err := a.do(ctx, i, "GET", path, nil, 10*time.Second)
	if err != nil || r.status != 200 {
		t.Fatalf("GET %s on %s: %v %v", path, a.c.Node(i).Name, r, err)
	}
	if err := json.Unmarshal(r.body, out); err != nil {
		t.Fatalf("GET %s on %s: %v", path, a.c.Node(i).Name, err)
	}
}

// metricValue sums the samples of a metric on node i's /metrics.
func metricValue(t *testing.T, ctx context.Context, a *api, i int, name string) float64 {
	t.Helper()
	r, err := a.do(ctx, i, "GET", "/metrics", nil, 10*time.Second)
	if err != nil || r.status != 200 {
		t.Fatalf("GET /metrics on %s: %v %v", a.c.Node(i).Name, r, err)
	}
	sum := 0.0
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), name)
		if !found || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
