package proccluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildFake builds testdata/fakeagent, a stand-in for `nexus agent` that
// lets the harness be tested on its own.
func buildFake(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fakeagent")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/fakeagent").CombinedOutput()
	if err != nil {
		t.Fatalf("build fakeagent: %v\n%s", err, out)
	}
	return bin
}

func fakeOpts(bin string) Options {
	return Options{Binary: bin, RaftPort: 38300, GossipPort: 38301, HTTPPort: 38500, GatewayPort: 38080}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	k := strings.LastIndexByte(s, ')')
	return k < 0 || k+2 >= len(s) || s[k+2] != 'Z'
}

func TestSetArg(t *testing.T) {
	a := []string{"agent", "--node", "n1", "--x", "1"}
	b := SetArg(a, "--node", "n9")
	if a[2] != "n1" || b[2] != "n9" {
		t.Fatalf("SetArg: %v %v", a, b)
	}
	c := SetArg(a, "--y", "2")
	if got := strings.Join(c, " "); got != "agent --node n1 --x 1 --y 2" {
		t.Fatalf("SetArg append: %q", got)
	}
}

func TestArgs(t *testing.T) {
	c := &Cluster{opts: Options{Nodes: 3, Dir: t.TempDir(), ExtraArgs: []string{"--log-level", "debug"}}}
	setDefaults(&c.opts)
	n, err := c.newNode(1)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(n.args, " ")
	for _, want := range []string{
		"agent --node n2 --data-dir ", "--bind 127.0.0.12 --raft-port 8300 --gossip-port 8301",
		"--http-addr 127.0.0.12:8500 --gateway-addr 127.0.0.12:8080 --bootstrap-expect 3 --dns-addr off",
		"--join 127.0.0.11:8301 --join 127.0.0.12:8301 --join 127.0.0.13:8301 --log-format json --log-level debug",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q lack %q", got, want)
		}
	}
	if strings.Contains(n.info.DataDir, "n2") {
		t.Errorf("data dir %q contains the node name", n.info.DataDir)
	}
	c.opts.DNSPort = 18600
	if n, err = c.newNode(1); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(n.args, " "); !strings.Contains(got, "--dns-addr 127.0.0.12:18600") || n.info.DNSAddr != "127.0.0.12:18600" {
		t.Errorf("with DNSPort: args %q, DNSAddr %q", got, n.info.DNSAddr)
	}
}

func TestLifecycleWithFakeAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := buildFake(t)
	c := StartT(t, fakeOpts(bin))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	expectLeader := func(want string) {
		t.Helper()
		_, name, err := c.WaitLeader(ctx)
		if err != nil || name != want {
			t.Fatalf("WaitLeader = %q, %v; want %q", name, err, want)
		}
	}
	expectLeader("n1")
	for i := 0; i < c.N(); i++ {
		if err := c.WaitReady(ctx, i); err != nil {
			t.Fatal(err)
		}
	}

	pid0 := c.Node(0).PID
	if err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	if c.Running(0) || alive(pid0) {
		t.Fatalf("n1 still running after Kill")
	}
	if st := c.ExitState(0); st == nil || st.ExitCode() != -1 {
		t.Fatalf("exit state after kill: %v", st)
	}
	expectLeader("n2")
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(0); !errors.Is(err, ErrRunning) {
		t.Fatalf("Restart of a running node: %v", err)
	}
	if err := c.WaitHealthy(ctx, 0); err != nil {
		t.Fatal(err)
	}
	expectLeader("n1")
	if n := c.Node(0); n.Starts != 2 || n.PID == pid0 {
		t.Fatalf("after restart: %+v", n)
	}

	if err := c.Pause(0); err != nil {
		t.Fatal(err)
	}
	if !c.Node(0).Paused || len(c.Live()) != 2 {
		t.Fatalf("pause: %+v live=%v", c.Node(0), c.Live())
	}
	expectLeader("n2")
	if err := c.Resume(0); err != nil {
		t.Fatal(err)
	}
	expectLeader("n1")

	code, err := c.Stop(1)
	if err != nil || code != 0 {
		t.Fatalf("Stop = %d, %v", code, err)
	}
	if !strings.Contains(c.Logs(1), `"msg":"stopping"`) {
		t.Fatalf("log lacks the stopping line:\n%s", c.Logs(1))
	}

	// A stopped node restarted under another name is refused by the fake.
	if err := c.StartWith(1, func(a []string) []string { return SetArg(a, "--node", "intruder") }); err != nil {
		t.Fatal(err)
	}
	code, err = c.WaitExit(ctx, 1)
	if err != nil || code != 1 {
		t.Fatalf("WaitExit = %d, %v", code, err)
	}
	last := c.LastRunLogs(1)
	if !strings.Contains(last, `"data_dir_node":"n2"`) || strings.Contains(last, `"msg":"serving"`) {
		t.Fatalf("LastRunLogs:\n%s", last)
	}
	if err := c.Restart(1); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx, 1); err != nil {
		t.Fatal(err)
	}

	// Close kills everything, including a paused node, and is idempotent.
	if err := c.Pause(2); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, n := range c.Nodes() {
		pids = append(pids, n.PID)
	}
	c.Close()
	c.Close()
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d alive after Close", pid)
		}
	}
	if err := c.Restart(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Restart after Close: %v", err)
	}
}

func TestStartFailsFastWhenProcessDies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := buildFake(t)
	o := fakeOpts(bin)
	o.Dir = t.TempDir()
	// Pre-claim node 1's data dir for another name: the fake exits 1.
	dd := filepath.Join(o.Dir, "node1", "data")
	if err := os.MkdirAll(dd, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dd, "node-id"), []byte("other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := Start(context.Background(), o)
	if err == nil {
		c.Close()
		t.Fatal("Start succeeded")
	}
	if !strings.Contains(err.Error(), "n1 exited") || !strings.Contains(err.Error(), "other") {
		t.Fatalf("error: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
}

func TestPortClashDetected(t *testing.T) {
	o := fakeOpts("/bin/true")
	o.Dir = t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.12:38500")
	if err != nil {
		t.Skip(err)
	}
	defer l.Close()
	_, err = Start(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.12:38500") {
		t.Fatalf("Start: %v", err)
	}
}

// TestChildrenDieWithHarness runs a helper process (this test binary) that
// starts a cluster and is then killed with SIGKILL, so it cannot call Close:
// Pdeathsig must take the agents down with it.
func TestChildrenDieWithHarness(t *testing.T) {
	if os.Getenv("PROCCLUSTER_HELPER_BIN") != "" {
		helperMain()
		return
	}
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := buildFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChildrenDieWithHarness$", "-test.v")
	cmd.Env = append(os.Environ(), "PROCCLUSTER_HELPER_BIN="+bin, "PROCCLUSTER_HELPER_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f, ok := strings.CutPrefix(sc.Text(), "PIDS "); ok {
			for _, p := range strings.Fields(f) {
				n, _ := strconv.Atoi(p)
				pids = append(pids, n)
			}
			break
		}
	}
	if len(pids) != 3 {
		t.Fatalf("helper reported pids %v", pids)
	}
	for _, p := range pids {
		if !alive(p) {
			t.Fatalf("agent %d not running before the harness dies", p)
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	for _, p := range pids {
		for alive(p) {
			if ctx.Err() != nil {
				syscall.Kill(p, syscall.SIGKILL)
				t.Fatalf("agent %d outlived the harness", p)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func helperMain() {
	o := fakeOpts(os.Getenv("PROCCLUSTER_HELPER_BIN"))
	o.Dir = os.Getenv("PROCCLUSTER_HELPER_DIR")
	o.RaftPort, o.GossipPort, o.HTTPPort, o.GatewayPort = 38310, 38311, 38510, 38090
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, o)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	var ps []string
	for _, n := range c.Nodes() {
		ps = append(ps, strconv.Itoa(n.PID))
	}
	fmt.Println("PIDS " + strings.Join(ps, " "))
	<-ctx.Done() // killed long before
	c.Close()
	os.Exit(1)
}

// Options.Args rewrites the arguments the nodes start with (an older
// release's flags) and SetBinary switches a stopped node to another binary
// and, by default, back to the standard arguments.
func TestArgsHookAndSetBinary(t *testing.T) {
	c := &Cluster{opts: Options{Nodes: 3, Dir: t.TempDir(), Args: func(i int, args []string) []string {
		return append(args, "--old", strconv.Itoa(i))
	}}}
	setDefaults(&c.opts)
	n, err := c.newNode(1)
	if err != nil {
		t.Fatal(err)
	}
	c.nodes = []*node{n}
	if got := strings.Join(c.Args(0), " "); !strings.HasSuffix(got, "--old 1") {
		t.Fatalf("Args = %q", got)
	}
	if got := strings.Join(c.StandardArgs(0), " "); strings.Contains(got, "--old") {
		t.Fatalf("StandardArgs = %q", got)
	}
	bin := filepath.Join(t.TempDir(), "nexus-new")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.SetBinary(0, filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Fatal("SetBinary accepted a missing binary")
	}
	if err := c.SetBinary(0, bin, nil); err != nil {
		t.Fatal(err)
	}
	if c.nodes[0].binary != bin || strings.Join(c.Args(0), " ") != strings.Join(c.StandardArgs(0), " ") {
		t.Fatalf("after SetBinary: %q %q", c.nodes[0].binary, c.Args(0))
	}
}
