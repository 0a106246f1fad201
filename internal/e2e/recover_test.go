package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/proccluster"
	"github.com/nexus/nexus/internal/retry"
)

// recoverOptions: ports apart from the other e2e tests; frequent Raft
// snapshots, so that the recovered state is a snapshot plus a log; a short
// stabilization time, so that the fresh nodes become voters quickly.
func recoverOptions(t *testing.T) proccluster.Options {
	o := baseOptions(t)
	o.RaftPort, o.GossipPort, o.HTTPPort, o.GatewayPort = 29300, 29301, 29500, 29080
	o.ExtraArgs = []string{"--autopilot-stabilization-time", "2s", "--raft-snapshot-threshold", "64", "--raft-snapshot-interval", "1s"}
	return o
}

// runNexus runs the binary (not a client of a node) and returns its exit
// code and output.
func runNexus(ctx context.Context, args ...string) (int, string, string) {
	cmd := exec.CommandContext(ctx, nexusBinary, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	return -1, stdout.String(), err.Error()
}

// stateOf is what node i holds, read linearizably: every config entry and
// the two services with their instances, as the API answers them.
func (a *api) stateOf(ctx context.Context, t *testing.T, i int) string {
	t.Helper()
	var b strings.Builder
	entries, err := a.listConfig(ctx, i, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fmt.Fprintf(&b, "%s=%s@%d\n", e.Key, canon(e.Value), e.ModifyIndex)
	}
	for _, svc := range []string{"web", "db"} {
		r, err := a.do(ctx, i, http.MethodGet, "/services/"+svc+"?consistent", nil, 10*time.Second)
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("GET /services/%s on %s: %v %v", svc, a.c.Node(i).Name, err, r)
		}
		b.WriteString(canon(r.body) + "\n")
	}
	return b.String()
}

// Disaster recovery (docs/operations.md, "Quorum-loss recovery"): three
// nodes with data; two are killed and their data destroyed; the survivor
// (stopped) is recovered with `nexus recover`, starts as leader of itself
// with its data intact, and two fresh nodes join it and become voters;
// then every node takes writes. Along the way: `nexus snapshot inspect`
// on a real saved snapshot, and recover's refusals (a running agent's data
// dir, a directory that is not a data dir, a bad --voter).
func TestRecoverAfterQuorumLoss(t *testing.T) {
	c := startCluster(t, recoverOptions(t))
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	mustLeader(t, ctx, c)
	mustAllReady(t, ctx, c)
	const survivor = 0

	// Data: 200 config keys (three Raft snapshots' worth), two services
	// with three instances and a route, all through the survivor, which
	// owns the instances (the instances of dead nodes would turn critical).
	for k := 0; k < 200; k++ {
		if _, _, err := a.putConfig(ctx, k%c.N(), fmt.Sprintf("app/key-%03d", k), jsonValue(map[string]any{"n": k})); err != nil {
			t.Fatal(err)
		}
	}
	for _, inst := range []map[string]any{
		{"name": "web", "id": "web-1", "type": "http", "address": "10.0.0.1", "port": 80},
		{"name": "web", "id": "web-2", "type": "http", "address": "10.0.0.2", "port": 80},
		{"name": "db", "id": "db-1", "type": "postgres", "address": "10.0.0.3", "port": 5432},
	} {
		if r, err := a.do(ctx, survivor, http.MethodPost, "/services/register", jsonValue(inst), 10*time.Second); err != nil || r.status >= 300 {
			t.Fatalf("register %v: %v %v", inst["id"], err, r)
		}
	}
	route := jsonValue(map[string]any{"id": "r-web", "paths": []string{"/web/"}, "service": "web"})
	if r, err := a.do(ctx, survivor, http.MethodPost, "/gateway/routes", route, 10*time.Second); err != nil || r.status != http.StatusCreated {
		t.Fatalf("POST /gateway/routes: %v %v", err, r)
	}
	before := a.stateOf(ctx, t, survivor)

	// A backup, inspected offline: its counts are what was written.
	snap := t.TempDir() + "/backup.snap"
	if out, err := nexusCLI(ctx, t, c, survivor, "snapshot", "save", "--consistent", snap); err != nil {
		t.Fatalf("snapshot save: %v %s", err, out)
	}
	code, out, errOut := runNexus(ctx, "snapshot", "inspect", snap, "--format", "json")
	if code != 0 {
		t.Fatalf("snapshot inspect: %d %s %s", code, out, errOut)
	}
	var info struct {
		Index, Term uint64
		Size        int64
		ClusterID   string `json:"cluster_id"`
		Counts      []struct {
			Kind  string
			Count int
		}
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("inspect output: %v: %s", err, out)
	}
	counts := map[string]int{}
	for _, k := range info.Counts {
		counts[k.Kind] = k.Count
	}
	st, _ := os.Stat(snap)
	if info.Index == 0 || info.Term == 0 || info.ClusterID == "" || st == nil || info.Size != st.Size() ||
		counts["config"] != 200 || counts["services"] != 2 || counts["instances"] != 3 || counts["routes"] != 1 {
		t.Fatalf("inspect: %s", out)
	}
	code, out, errOut = runNexus(ctx, "snapshot", "inspect", c.Node(survivor).DataDir+"/node-id")
	if code != 1 || !strings.Contains(errOut, "not a valid nexus snapshot") {
		t.Fatalf("inspect of a file that is not a snapshot: %d %s %s", code, out, errOut)
	}

	// Recovery is refused while the agent runs (the data-dir lock).
	dir := c.Node(survivor).DataDir
	code, out, errOut = runNexus(ctx, "recover", "--data-dir", dir)
	if code != 1 || !strings.Contains(errOut, "in use by another nexus agent") || !strings.Contains(errOut, "stop the agent first") {
		t.Fatalf("recover of a running agent's data dir: %d %q %q", code, out, errOut)
	}

	// Permanent loss of two of three nodes.
	for _, i := range []int{1, 2} {
		if err := c.Kill(i); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(c.Node(i).DataDir); err != nil {
			t.Fatal(err)
		}
	}
	if err := retry.Until(ctxFor(ctx, 30*time.Second), "the survivor sees no leader", func() error {
		if li, err := c.Leader(ctx, survivor); err == nil && li.Node != "" {
			return fmt.Errorf("leader %q", li.Node)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stop(survivor); err != nil {
		t.Fatal(err)
	}

	// Refusals that change nothing, then the recovery.
	code, _, errOut = runNexus(ctx, "recover", "--data-dir", c.Node(1).DataDir)
	if code != 1 || !strings.Contains(errOut, "not a nexus data dir") {
		t.Fatalf("recover of a destroyed data dir: %d %q", code, errOut)
	}
	code, _, errOut = runNexus(ctx, "recover", "--data-dir", dir, "--voter", "n2=127.0.0.12")
	if code != 2 || !strings.Contains(errOut, "--voter") {
		t.Fatalf("recover with a bad --voter: %d %q", code, errOut)
	}
	code, out, errOut = runNexus(ctx, "recover", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("recover: %d %s %s", code, out, errOut)
	}
	t.Logf("nexus recover:\n%s%s", out, errOut)
	self := c.Node(survivor)
	if !strings.Contains(out, "new configuration:      "+self.Name+"="+self.RaftAddr+" (voter)\n") ||
		!strings.Contains(out, "previous configuration: n1=") || !strings.Contains(errOut, "recovered the Raft configuration") {
		t.Fatalf("recover output lacks the configurations:\n%s%s", out, errOut)
	}

	// The survivor leads alone, with its data.
	if err := c.Restart(survivor); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.WaitLeaderAmong(ctxFor(ctx, 60*time.Second), []int{survivor}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctxFor(ctx, 60*time.Second), survivor); err != nil {
		t.Fatal(err)
	}
	if after := a.stateOf(ctx, t, survivor); after != before {
		t.Fatalf("state changed by the recovery:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Two fresh nodes (empty data dirs) join and become voters.
	for _, i := range []int{1, 2} {
		if err := c.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := retry.Until(ctxFor(ctx, 90*time.Second), "three voters", func() error {
		s, err := a.raftSuffrage(ctx, survivor)
		if err != nil {
			return err
		}
		for _, n := range c.Nodes() {
			if s[n.Name] != "voter" {
				return fmt.Errorf("suffrage %v", s)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustAllReady(t, ctx, c)

	// Writes are accepted through every node, and every node has them all.
	var written []entry
	for i := 0; i < c.N(); i++ {
		e, _, err := a.putConfig(ctx, i, fmt.Sprintf("after/%s", c.Node(i).Name), jsonValue(i))
		if err != nil {
			t.Fatal(err)
		}
		written = append(written, e)
	}
	for _, e := range written {
		if err := a.waitConfigEverywhere(ctxFor(ctx, 30*time.Second), all(c), e); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{1, 2} {
		var kept []string
		for _, line := range strings.SplitAfter(a.stateOf(ctx, t, i), "\n") {
			if !strings.HasPrefix(line, "after/") {
				kept = append(kept, line)
			}
		}
		if got := strings.Join(kept, ""); got != before {
			t.Fatalf("fresh node %s does not hold the recovered data:\n%s\nwant:\n%s", c.Node(i).Name, got, before)
		}
	}
}
