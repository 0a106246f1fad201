package netns

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Inside runs the calling top-level test inside the harness namespace of a
// fresh topology and returns that topology there; in the calling process it
// returns nil after the inner run finished (the caller then just returns):
//
//	func TestX(t *testing.T) {
//		topo := netns.Inside(t, netns.Spec{Nodes: 3})
//		if topo == nil {
//			return
//		}
//		... runs in the harness namespace ...
//	}
//
// The outer process builds the namespaces, re-executes the test binary with
// -test.run=^TestX$ under `ip netns exec <harness>`, relays its output to
// t.Log, fails if it failed, skips if it skipped, and removes the namespaces.
// It skips with the reason when not root or when `ip netns` is unavailable.
// extraEnv is added to the inner process's environment.
func Inside(t *testing.T, spec Spec, extraEnv ...string) *Topology {
	t.Helper()
	topo, inner, err := FromEnv()
	if inner {
		if err != nil {
			t.Fatal(err)
		}
		return topo
	}
	if err := Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx := context.Background()
	if _, err := CleanStale(ctx, t.Logf); err != nil {
		t.Logf("cleaning stale namespaces: %v", err)
	}
	topo, err = Setup(ctx, spec, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := topo.Close(cctx); err != nil {
			t.Errorf("removing namespaces: %v", err)
		}
	}()
	args := []string{"netns", "exec", topo.Harness, os.Args[0],
		"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v"}
	if dl, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(dl).Round(time.Second).String())
	}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(append(os.Environ(), EnvTopology+"="+topo.Encode()), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	skipped := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "--- SKIP: "+t.Name()) {
				skipped = true
			}
			t.Log("inside " + topo.Harness + ": " + line)
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	runErr := cmd.Run()
	pw.Close()
	<-done
	if runErr != nil {
		t.Fatalf("test inside namespace %s failed: %v", topo.Harness, runErr)
	}
	if skipped {
		t.Skip("skipped inside the namespace (see above)")
	}
	return nil
}
