package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/nexus/nexus/agent"
	"github.com/nexus/nexus/cmd/nexus/agentconfig"
	"github.com/nexus/nexus/internal/sdnotify"
)

// runAgent runs one node until SIGTERM/SIGINT (stop, exit 0) or a completed
// `nexus leave`. Configuration errors are one line on stderr, exit 1. The
// node itself is built, run and stopped by package agent; this is the
// process around it: settings, logs, GOMAXPROCS and signals.
func runAgent(args []string, stdout, stderr io.Writer) int {
	cfg, err := agentconfig.Load(args, os.Getenv, os.ReadFile, os.Hostname, func() (string, error) {
		return os.MkdirTemp("", "nexus-dev-")
	})
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, agentconfig.Usage())
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "nexus agent:", err)
		return 1
	}
	logger := newLogger(cfg, stderr)
	if n := agentProcs(os.Getenv, runtime.GOMAXPROCS(0)); n > 0 {
		runtime.GOMAXPROCS(n)
	}
	if err := runNode(cfg, logger, stdout, stderr); err != nil {
		logger.Error("agent stopped with an error", "err", err)
		fmt.Fprintln(stderr, "nexus agent:", err)
		return 1
	}
	return 0
}

func newLogger(cfg *agentconfig.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With("node", cfg.Node)
}

// runNode starts the node and stops it on SIGTERM/SIGINT, after a leave,
// or when its admin API fails; SIGHUP reloads the TLS certificates.
func runNode(cfg *agentconfig.Config, logger *slog.Logger, stdout, stderr io.Writer) error {
	a, err := agent.Start(cfg, agent.Options{
		Version: version, Logger: logger, LogOutput: stderr, AccessLog: stdout,
	})
	if err != nil {
		return err
	}
	// systemd Type=notify (internal/sdnotify): READY=1 once /ready would
	// answer 200, RELOADING=1/READY=1 around a reload, STOPPING=1.
	notify, err := sdnotify.New(os.Getenv)
	logNotify(logger, err)
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	defer stopNotify()
	logNotify(logger, notify.Status("waiting for a Raft leader and to apply up to its commit index"))
	go func() { logNotify(logger, notify.WhenReady(notifyCtx, a.Ready(), "ready")) }()

	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	var runErr error
wait:
	for {
		select {
		case <-hups:
			logNotify(logger, notify.Reload(a.Reload))
		case s := <-sigs:
			logger.Info("stopping (not leaving)", "signal", s.String())
			break wait
		case <-a.Done():
			runErr = a.Err()
			break wait
		}
	}
	stopNotify()
	logNotify(logger, notify.Stopping())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	go func() {
		// A second signal forces the exit.
		select {
		case <-sigs:
			logger.Warn("second signal: exiting now")
			os.Exit(1)
		case <-ctx.Done():
		}
	}()
	// A stop that hangs is a bug worth a goroutine dump in the log.
	watchdog := time.AfterFunc(10*time.Second, func() {
		var buf bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
		logger.Error("shutdown is taking more than 10s", "goroutines", buf.String())
	})
	defer watchdog.Stop()
	if err := a.Shutdown(ctx); err != nil {
		logger.Warn("stopped with errors", "err", err)
	}
	return runErr
}

// logNotify logs a failed systemd notification (the agent runs on).
func logNotify(logger *slog.Logger, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		logger.Warn("systemd notification failed", "err", err)
	}
}
