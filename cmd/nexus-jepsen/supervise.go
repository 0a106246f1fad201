package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/nexus/nexus/internal/jepsen/netns"
)

// supervise runs one test: it removes stale namespaces, builds the network,
// runs this binary's inner command inside the harness namespace, and always
// removes the namespaces afterwards. The first SIGINT/SIGTERM is passed to
// the inner process (it heals, checks what it has and stops); a second one
// kills it. interrupted reports whether a signal arrived.
func supervise(f *runFlags, out string, stderr io.Writer) (code int, interrupted bool) {
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, "nexus-jepsen: "+format+"\n", args...) }
	if err := netns.Available(); err != nil {
		logf("%v", err)
		return exitUnknown, false
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	ctx := context.Background()
	if removed, err := netns.CleanStale(ctx, logf); err != nil {
		logf("cleaning stale namespaces: %v", err)
	} else if len(removed) > 0 {
		logf("removed %d stale namespaces", len(removed))
	}
	topo, err := netns.Setup(ctx, netns.Spec{Nodes: f.nodes}, logf)
	if err != nil {
		logf("%v", err)
		return exitUnknown, false
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := topo.Close(cctx); err != nil {
			logf("removing namespaces: %v", err)
		}
	}()
	exe, err := os.Executable()
	if err != nil {
		logf("%v", err)
		return exitUnknown, false
	}
	// The inner process dies with this thread (Pdeathsig), and the agents
	// die with the inner process: keep the forking thread alive.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command("ip", append([]string{"netns", "exec", topo.Harness, exe, innerCommand}, f.innerArgs(out)...)...)
	cmd.Env = append(os.Environ(), netns.EnvTopology+"="+topo.Encode())
	cmd.Stdout, cmd.Stderr = stderr, stderr
	// Own process group: a terminal's Ctrl-C reaches only this process,
	// which passes it on exactly once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf("starting the harness in %s: %v", topo.Harness, err)
		return exitUnknown, false
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			return exitCode(err), interrupted
		case s := <-sigs:
			if !interrupted {
				interrupted = true
				logf("%v: healing, checking what was recorded, and stopping (again to abort)", s)
				_ = cmd.Process.Signal(syscall.SIGINT)
			} else {
				logf("%v again: aborting", s)
				_ = cmd.Process.Kill()
			}
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return exitValid
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return ee.ExitCode()
	}
	return exitUnknown
}
