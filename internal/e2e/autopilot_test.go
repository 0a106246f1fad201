package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/proccluster"
	"github.com/nexus/nexus/internal/retry"
)

// Ports of the autopilot and snapshot tests: distinct from the other e2e
// tests, so a cluster left over by one cannot answer another.
const (
	apRaftPort    = 21300
	apGossipPort  = 21301
	apHTTPPort    = 21500
	apGatewayPort = 21080
)

// apOptions is a cluster of n nodes on 127.0.0.11.. with the autopilot
// ports and extra agent flags.
func apOptions(t *testing.T, n int, extra ...string) proccluster.Options {
	o := baseOptions(t)
	o.Nodes = n
	o.BaseIP = ""
	o.RaftPort, o.GossipPort, o.HTTPPort, o.GatewayPort = apRaftPort, apGossipPort, apHTTPPort, apGatewayPort
	o.ExtraArgs = extra
	return o
}

// raftSuffrage returns id -> suffrage of GET /cluster/raft on node i.
func (a *api) raftSuffrage(ctx context.Context, i int) (map[string]string, error) {
	r, err := a.do(ctx, i, http.MethodGet, "/cluster/raft", nil, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		return nil, fmt.Errorf("GET /cluster/raft: %s", r)
	}
	var body struct {
		Servers []struct {
			ID       string `json:"id"`
			Suffrage string `json:"suffrage"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		return nil, fmt.Errorf("GET /cluster/raft: %v: %s", err, r)
	}
	out := map[string]string{}
	for _, s := range body.Servers {
		out[s.ID] = s.Suffrage
	}
	return out, nil
}

// member is one entry of GET /cluster/members.
type member struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Raft   string `json:"raft"`
}

func (a *api) members(ctx context.Context, i int) (map[string]member, error) {
	r, err := a.do(ctx, i, http.MethodGet, "/cluster/members", nil, 5*time.Second)
	if err != nil {
		return nil, err
	}
	var ms []member
	if r.status != http.StatusOK || json.Unmarshal(r.body, &ms) != nil {
		return nil, fmt.Errorf("GET /cluster/members: %s", r)
	}
	out := map[string]member{}
	for _, m := range ms {
		out[m.Name] = m
	}
	return out, nil
}

// metric returns the value of an unlabelled series in node i's /metrics.
func (a *api) metric(ctx context.Context, i int, name string) (float64, error) {
	r, err := a.do(ctx, i, http.MethodGet, "/metrics", nil, 5*time.Second)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics of %s", name, a.c.Node(i).Name)
}

// nexusCLI runs a client subcommand of the binary against node i.
func nexusCLI(ctx context.Context, t *testing.T, c *proccluster.Cluster, i int, args ...string) (string, error) {
	t.Helper()
	all := append([]string{"--http-addr", c.HTTPAddr(i), "--timeout", "2m"}, args...)
	cmd := exec.CommandContext(ctx, nexusBinary, all...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// A fourth server started next to a running three-node cluster joins as a
// non-voter and is promoted once healthy for the stabilization time.
func TestAutopilotFourthServerJoinsAsNonVoter(t *testing.T) {
	const stabilization = 2 * time.Second
	flags := []string{"--autopilot-stabilization-time", stabilization.String()}
	c := startCluster(t, apOptions(t, 3, flags...))
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mustLeader(t, ctx, c)
	mustAllReady(t, ctx, c)

	// The fourth node: its own harness on 127.0.1.11 (same ports, another
	// loopback address), no --bootstrap-expect, joining n1.
	o := apOptions(t, 1, append([]string{"--bootstrap-expect", "0",
		"--join", net.JoinHostPort(c.Node(0).IP, strconv.Itoa(apGossipPort))}, flags...)...)
	o.BaseIP, o.NamePrefix = "127.0.1.", "x"
	startedAt := time.Now()
	x := startCluster(t, o)
	xa := newAPI(t, x)

	var addedAt time.Time
	li := -1
	err := waitFor(ctxFor(ctx, 30*time.Second), "x1 in the raft configuration", func() error {
		var err error
		li, _, err = c.WaitLeader(ctxFor(ctx, 10*time.Second))
		if err != nil {
			return err
		}
		s, err := a.raftSuffrage(ctx, li)
		if err != nil {
			return err
		}
		switch s["x1"] {
		case "":
			return fmt.Errorf("raft %v", s)
		case "nonvoter":
			addedAt = time.Now()
			return nil
		}
		t.Fatalf("x1 joined raft as %q, want nonvoter", s["x1"])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Gossip and Raft side by side, during the stabilization time.
	if ms, err := a.members(ctx, li); err != nil || ms["x1"].Status != "alive" || ms["x1"].Raft != "nonvoter" {
		t.Errorf("members on the leader while x1 is a non-voter: %v %+v", err, ms["x1"])
	}
	err = waitFor(ctxFor(ctx, 60*time.Second), "x1 promoted", func() error {
		s, err := a.raftSuffrage(ctx, 0)
		if err != nil {
			return err
		}
		if s["x1"] != "voter" {
			return fmt.Errorf("raft %v", s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(addedAt)
	t.Logf("x1: process start to non-voter %v, non-voter to voter %v (stabilization %v)",
		addedAt.Sub(startedAt).Round(time.Millisecond), took.Round(time.Millisecond), stabilization)
	if took < stabilization-500*time.Millisecond {
		t.Errorf("promoted %v after joining Raft, before the stabilization time %v", took, stabilization)
	}
	for _, i := range all(c) {
		if ms, err := a.members(ctx, i); err != nil || ms["x1"].Raft != "voter" || ms["x1"].Status != "alive" {
			t.Errorf("members on %s: %v x1=%+v", c.Node(i).Name, err, ms["x1"])
		}
	}
	// The new voter takes writes (forwarded to the leader, applied here).
	e, r, err := xa.putConfig(ctx, 0, "joined/x1", []byte(`"yes"`))
	if err != nil {
		t.Fatalf("write through x1: %v %s", err, r)
	}
	if err := a.waitConfigEverywhere(ctxFor(ctx, 20*time.Second), all(c), e); err != nil {
		t.Fatal(err)
	}
	if v, err := xa.metric(ctx, 0, "nexus_raft_voters"); err != nil || v != 4 {
		t.Errorf("nexus_raft_voters on x1 = %v, %v; want 4", v, err)
	}
	promoted := 0.0
	for _, i := range all(c) {
		v, err := a.metric(ctx, i, "nexus_autopilot_promotions_total")
		if err != nil {
			t.Errorf("%v", err)
		}
		promoted += v
	}
	if promoted != 1 {
		t.Errorf("nexus_autopilot_promotions_total summed over the servers = %v, want 1", promoted)
	}
}

// Five servers with min_quorum 3: two are killed (-9); writes go on; after
// the grace period autopilot removes both; a third killed server is kept
// (3 voters = min_quorum) while writes go on with 2 of 3; remove-peer
// refuses an alive or unknown server and removes the failed one.
func TestAutopilotFiveServersLoseTwo(t *testing.T) {
	const grace = 4 * time.Second
	c := startCluster(t, apOptions(t, 5, "--autopilot-min-quorum", "3",
		"--autopilot-dead-server-grace", grace.String(), "--autopilot-stabilization-time", "1s"))
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	leader := mustLeader(t, ctx, c)
	mustAllReady(t, ctx, c)
	if s, err := a.raftSuffrage(ctx, leader); err != nil || len(s) != 5 {
		t.Fatalf("raft %v %v, want 5 voters", s, err)
	}

	var victims []int
	for _, i := range others(c, leader) {
		if len(victims) < 2 {
			victims = append(victims, i)
		}
	}
	killedAt := time.Now()
	for _, v := range victims {
		if err := c.Kill(v); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{c.Node(victims[0]).Name, c.Node(victims[1]).Name}
	t.Logf("killed %v (-9); leader %s", names, c.Node(leader).Name)
	live := c.Live()
	// Writes keep being accepted: 3 of 5 voters are a quorum.
	for k := 0; k < 20; k++ {
		i := live[k%len(live)]
		r, err := a.do(ctx, i, http.MethodPut, fmt.Sprintf("/config/two-down/%d", k), []byte(`1`), 10*time.Second)
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("write %d on %s with two servers down: %v %s", k, c.Node(i).Name, err, r)
		}
	}

	// firstFailed is when the first of the names was seen failed: each
	// server's grace period starts with its own failure.
	var firstFailed time.Time
	waitFailed := func(i int, names ...string) time.Time {
		t.Helper()
		firstFailed = time.Time{}
		err := waitFor(ctxFor(ctx, 30*time.Second), fmt.Sprintf("%v failed in gossip", names), func() error {
			ms, err := a.members(ctx, i)
			if err != nil {
				return err
			}
			var notYet error
			for _, n := range names {
				if ms[n].Status != "failed" {
					notYet = fmt.Errorf("%s is %+v", n, ms[n])
				} else if firstFailed.IsZero() {
					firstFailed = time.Now()
				}
			}
			return notYet
		})
		if err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}
	failedAt := waitFailed(leader, names...)
	t.Logf("kill -9 to gossip failed: %v", failedAt.Sub(killedAt).Round(time.Millisecond))
	if half := firstFailed.Add(grace / 2); time.Now().Before(half) {
		time.Sleep(time.Until(half))
		if s, err := a.raftSuffrage(ctx, leader); err != nil || len(s) != 5 {
			t.Fatalf("raft %v %v half-way through the grace period, want the 5 servers", s, err)
		}
	}
	err := waitFor(ctxFor(ctx, 60*time.Second), "failed servers removed", func() error {
		s, err := a.raftSuffrage(ctx, live[0])
		if err != nil {
			return err
		}
		if len(s) != 3 {
			return fmt.Errorf("raft %v", s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gossip failed to removed from raft: %v (grace %v)", time.Since(failedAt).Round(time.Millisecond), grace)
	leader, _, err = c.WaitLeader(ctxFor(ctx, 20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := a.members(ctx, leader)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if ms[n].Status != "failed" || ms[n].Raft != "none" {
			t.Errorf("members shows %s as %+v, want failed and out of raft", n, ms[n])
		}
	}
	r, err := a.do(ctx, leader, http.MethodGet, "/metrics", nil, 5*time.Second)
	if err != nil || !strings.Contains(string(r.body), `nexus_autopilot_removals_total{reason="failed"} 2`) {
		t.Errorf("leader metrics lack 2 failed removals: %v", err)
	}

	// A third failure: the three voters are the minimum, none is removed.
	third := others(c, leader)
	thirdIdx := -1
	for _, i := range third {
		if c.Running(i) {
			thirdIdx = i
			break
		}
	}
	thirdName := c.Node(thirdIdx).Name
	if err := c.Kill(thirdIdx); err != nil {
		t.Fatal(err)
	}
	waitFailed(leader, thirdName)
	time.Sleep(grace + 2*time.Second)
	s, err := a.raftSuffrage(ctx, leader)
	if err != nil || len(s) != 3 || s[thirdName] != "voter" {
		t.Fatalf("raft %v %v: the third failed voter must stay (min_quorum 3)", s, err)
	}
	follower := -1
	for _, i := range others(c, leader) {
		if c.Running(i) {
			follower = i
		}
	}
	e, r, err := a.putConfig(ctx, follower, "three-down", []byte(`"still writable"`))
	if err != nil {
		t.Fatalf("write with 2 of 3 voters: %v %s", err, r)
	}
	t.Logf("write with 2 of 3 voters alive at index %d", e.ModifyIndex)

	// remove-peer: alive -> 409, unknown -> 404, failed -> removed; through
	// a follower, over the API and the CLI.
	r, err = a.do(ctx, follower, http.MethodDelete, "/cluster/peers/"+c.Node(leader).Name, nil, 15*time.Second)
	if err != nil || r.status != http.StatusConflict || r.errorCode() != "member_alive" {
		t.Errorf("DELETE of the alive leader: %v %s", err, r)
	}
	out, err := nexusCLI(ctx, t, c, leader, "raft", "remove-peer", c.Node(follower).Name)
	if err == nil || !strings.Contains(out, "member_alive") || !strings.Contains(out, "409") {
		t.Errorf("nexus raft remove-peer of an alive follower: %v %q", err, out)
	}
	r, err = a.do(ctx, follower, http.MethodDelete, "/cluster/peers/nobody", nil, 15*time.Second)
	if err != nil || r.status != http.StatusNotFound || r.errorCode() != "not_found" {
		t.Errorf("DELETE of an unknown node: %v %s", err, r)
	}
	out, err = nexusCLI(ctx, t, c, follower, "raft", "remove-peer", thirdName)
	if err != nil {
		t.Fatalf("nexus raft remove-peer %s through a follower: %v %q", thirdName, err, out)
	}
	t.Logf("nexus raft remove-peer %s: %s", thirdName, out)
	if s, err := a.raftSuffrage(ctx, leader); err != nil || len(s) != 2 {
		t.Fatalf("raft %v %v after remove-peer, want 2 servers", s, err)
	}
	if _, r, err := a.putConfig(ctx, follower, "after-remove-peer", []byte(`1`)); err != nil {
		t.Fatalf("write after remove-peer: %v %s", err, r)
	}
}

// TestReadReplicaStaysNonVoter: a fourth server started with --non-voter
// joins as a non-voter and is never promoted (the stabilization time passes
// several times), serves local and consistent reads and forwards writes; a
// leader kill leaves two voters of three, which elect a leader without it.
func TestReadReplicaStaysNonVoter(t *testing.T) {
	const stabilization = time.Second
	flags := []string{"--autopilot-stabilization-time", stabilization.String()}
	c := startCluster(t, apOptions(t, 3, flags...))
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mustLeader(t, ctx, c)
	mustAllReady(t, ctx, c)

	o := apOptions(t, 1, append([]string{"--bootstrap-expect", "0", "--non-voter",
		"--join", net.JoinHostPort(c.Node(0).IP, strconv.Itoa(apGossipPort))}, flags...)...)
	o.BaseIP, o.NamePrefix = "127.0.1.", "r"
	x := startCluster(t, o)
	xa := newAPI(t, x)
	retry.Run(t, func(r *retry.R) {
		s, err := a.raftSuffrage(ctx, 0)
		if err != nil || s["r1"] != "nonvoter" {
			r.Fatalf("raft %v %v", s, err)
		}
	}, retry.Timeout(30*time.Second), retry.What("r1 in raft as a non-voter"))
	if err := x.WaitReady(ctxFor(ctx, 30*time.Second), 0); err != nil {
		t.Fatal(err)
	}

	// A write through the replica: forwarded, and applied there when it
	// answers; then local and consistent reads on it.
	if r, err := xa.do(ctx, 0, "PUT", "/config/replica/k", []byte(`"v1"`), 10*time.Second); err != nil || r.status != 200 {
		t.Fatalf("write through the replica: %v %v", err, r)
	}
	for _, q := range []string{"", "?consistent"} {
		r, err := xa.do(ctx, 0, "GET", "/config/replica/k"+q, nil, 10*time.Second)
		if err != nil || r.status != 200 || !strings.Contains(string(r.body), `"v1"`) {
			t.Fatalf("read%s on the replica: %v %v", q, err, r)
		}
	}
	// Several stabilization times later it is still a non-voter.
	deadline := time.Now().Add(5 * stabilization)
	for time.Now().Before(deadline) {
		s, err := a.raftSuffrage(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if s["r1"] != "nonvoter" {
			t.Fatalf("the read replica became %q: %v", s["r1"], s)
		}
		time.Sleep(250 * time.Millisecond) // sampling the suffrage over the window, not a wait
	}
	if ms, err := a.members(ctx, 0); err != nil || ms["r1"].Raft != "nonvoter" {
		t.Fatalf("members: %v %+v", err, ms["r1"])
	}

	// The leader dies: two voters of three elect a new one; the replica
	// follows it and keeps serving.
	li, _, err := c.WaitLeader(ctxFor(ctx, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(li); err != nil {
		t.Fatal(err)
	}
	retry.Run(t, func(r *retry.R) {
		res, err := xa.do(ctx, 0, "PUT", "/config/replica/k", []byte(`"v2"`), 5*time.Second)
		if err != nil || res.status != 200 {
			r.Fatalf("write through the replica after the kill: %v %v", err, res)
		}
	}, retry.Timeout(30*time.Second), retry.What("a write through the replica after the leader kill"))
	li2, _, err := c.WaitLeaderAmong(ctxFor(ctx, 30*time.Second), others(c, li))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := a.raftSuffrage(ctx, li2); err != nil || s["r1"] != "nonvoter" {
		t.Fatalf("after the kill: %v %v", s, err)
	}
}
