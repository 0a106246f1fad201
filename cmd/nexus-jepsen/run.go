package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/nexus/nexus/internal/jepsen/netns"
	"github.com/nexus/nexus/internal/jepsen/runner"
)

// cmdRun is `nexus-jepsen run`.
func cmdRun(args []string, stderr io.Writer) int {
	fs := newFlagSet("run", stderr)
	var f runFlags
	f.register(fs)
	out := fs.String("out", "", "output folder (default jepsen-out/<time>-<nemesis>)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitValid
		}
		return exitUsage
	}
	if *out == "" {
		*out = defaultOut(f.cfg.Nemesis)
	}
	f.cfg.OutDir = *out
	if err := f.finish(); err != nil {
		fmt.Fprintf(stderr, "nexus-jepsen run: %v\n", err)
		return exitUsage
	}
	if err := f.checkArchive(); err != nil {
		fmt.Fprintf(stderr, "nexus-jepsen run: %v\n", err)
		return exitUnknown
	}
	code, _ := supervise(&f, *out, stderr)
	return code
}

// cmdInner runs inside the harness namespace: the actual test.
func cmdInner(args []string, stderr io.Writer) int {
	topo, ok, err := netns.FromEnv()
	if !ok || err != nil {
		fmt.Fprintf(stderr, "nexus-jepsen: %s is internal (use `nexus-jepsen run`): %v\n", innerCommand, err)
		return exitUsage
	}
	fs := newFlagSet(innerCommand, stderr)
	var f runFlags
	f.register(fs)
	fs.StringVar(&f.cfg.OutDir, "out", "", "output folder")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if err := f.finish(); err != nil {
		fmt.Fprintf(stderr, "nexus-jepsen: %v\n", err)
		return exitUsage
	}
	if err := os.MkdirAll(f.cfg.OutDir, 0o755); err != nil {
		fmt.Fprintf(stderr, "nexus-jepsen: %v\n", err)
		return exitUnknown
	}
	logFile, err := os.Create(filepath.Join(f.cfg.OutDir, "harness.log"))
	if err != nil {
		fmt.Fprintf(stderr, "nexus-jepsen: %v\n", err)
		return exitUnknown
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(io.MultiWriter(stderr, logFile), nil))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		log.Warn("interrupted: stopping the clients and the nemesis, healing, checking")
		cancel()
		<-sigs
		log.Error("interrupted again: aborting (the agents die with this process)")
		os.Exit(exitUnknown)
	}()

	sum, err := runner.Run(ctx, topo, f.cfg, log)
	if err != nil {
		log.Error("run failed", "err", err)
		return exitUnknown
	}
	fmt.Fprintf(stderr, "nexus-jepsen: %s: ops %d (ok %d, fail %d, info %d), availability %.3f (during faults %.3f), lost %d, unexpected %d; %s\n",
		sum.Verdict, sum.Counts.Total, sum.Counts.OK, sum.Counts.Fail, sum.Counts.Info, sum.Stats.Availability.Ratio,
		sum.Stats.AvailabilityFaults.Ratio, sum.Lost, sum.Unexpect, filepath.Join(f.cfg.OutDir, runner.FileSummary))
	if a := sum.Audit; a != nil {
		fmt.Fprintf(stderr, "nexus-jepsen: audit: %d rows; %d writes checked (ok %d, info %d): %d ok archived once, %d info applied; lost %d, duplicated %d, unexpected %d\n",
			a.Rows, a.Writes, a.OK, a.Info, a.ArchivedOK, a.ArchivedInfo, a.Lost, a.Duplicated, a.Unexpected)
	}
	for _, r := range sum.Reasons {
		fmt.Fprintf(stderr, "nexus-jepsen:   %s\n", r)
	}
	switch sum.Verdict {
	case runner.VerdictValid:
		return exitValid
	case runner.VerdictInvalid:
		return exitInvalid
	}
	return exitUnknown
}

// cmdClean is `nexus-jepsen clean`.
func cmdClean(stderr io.Writer) int {
	if err := netns.Available(); err != nil {
		fmt.Fprintln(stderr, err)
		return exitUnknown
	}
	removed, err := netns.CleanStale(context.Background(), func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) })
	fmt.Fprintf(stderr, "nexus-jepsen: removed %d stale namespaces\n", len(removed))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUnknown
	}
	return exitValid
}
