package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nexus/nexus/internal/jepsen/checker"
	"github.com/nexus/nexus/internal/jepsen/history"
	"github.com/nexus/nexus/internal/jepsen/nemesis"
	"github.com/nexus/nexus/internal/jepsen/runner"
	"github.com/nexus/nexus/internal/jepsen/workload"
)

// cmdCheck is `nexus-jepsen check DIR`: the checkers again, on a recorded
// run (after changing a checker, or to look at a run from elsewhere).
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", stderr)
	timeout := fs.Duration("check-timeout", runner.DefaultCheckTimeout, "bound on the linearizability check")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: nexus-jepsen check [--check-timeout D] DIR")
		return exitUsage
	}
	dir := fs.Arg(0)
	ops, err := history.ReadFile(filepath.Join(dir, runner.FileHistory))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUnknown
	}
	evs, err := nemesis.ReadTimeline(filepath.Join(dir, runner.FileTimeline))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUnknown
	}
	var end int64
	for _, op := range ops {
		end = max(end, op.Complete)
	}
	var windows []checker.Window
	for _, w := range nemesis.WindowsOf(evs, end) {
		windows = append(windows, checker.Window{Name: w.Nemesis, Detail: w.Detail, Start: w.Start, End: w.End})
	}
	var removals []checker.Removal
	for _, ev := range nemesis.LeavesOf(evs) {
		for _, n := range ev.Nodes {
			removals = append(removals, checker.Removal{Node: n, Invoke: ev.Time, Complete: ev.End})
		}
	}
	out := struct {
		Register *checker.RegisterResult `json:"register,omitempty"`
		Set      *checker.SetResult      `json:"set,omitempty"`
		Audit    *checker.AuditResult    `json:"audit,omitempty"`
		Lock     *checker.LockResult     `json:"lock,omitempty"`
		Stats    checker.Stats           `json:"stats"`
	}{Stats: checker.ComputeStats(ops, windows)}
	valid, unknown := true, false
	if len(history.Filter(ops, "register")) > 0 {
		out.Register = checker.CheckRegister(ops, *timeout)
		valid = valid && (out.Register.Valid() || out.Register.Linearizable == checker.LinUnknown)
		unknown = out.Register.Linearizable == checker.LinUnknown
	}
	if len(history.Filter(ops, "set")) > 0 {
		out.Set = checker.CheckSet(ops, removals)
		valid = valid && out.Set.Valid
	}
	if len(history.Filter(ops, "audit")) > 0 {
		ar, err := workload.ReadArchive(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(stderr, err)
			return exitUnknown
		}
		out.Audit = checker.CheckAudit(ops, ar) // nil archive: no-final-read
		valid = valid && out.Audit.Valid
	}
	if len(history.Filter(ops, "lock")) > 0 {
		out.Lock = checker.CheckLock(ops)
		valid = valid && out.Lock.Valid
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	switch {
	case !valid:
		return exitInvalid
	case unknown:
		return exitUnknown
	}
	return exitValid
}
