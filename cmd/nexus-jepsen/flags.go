package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nexus/nexus/internal/jepsen/pgserver"
	"github.com/nexus/nexus/internal/jepsen/runner"
	"github.com/nexus/nexus/internal/jepsen/workload"
)

// runFlags are the flags of one run, shared by run, campaign and the inner
// process.
type runFlags struct {
	cfg   runner.Config
	nodes int
	args  stringList
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cfg.Binary, "nexus", "bin/nexus", "nexus binary (build it with `go build -o bin/nexus ./cmd/nexus`)")
	fs.IntVar(&f.nodes, "nodes", 5, "number of nodes (each in its own network namespace)")
	fs.StringVar(&f.cfg.Workloads, "workload", "register,set", "workloads, comma-separated: register, set, audit (audit starts a PostgreSQL 15 for the archive)")
	fs.StringVar(&f.cfg.Nemesis, "nemesis", "all", "nemeses, comma-separated: kill, pause, partition, net-slow, membership; or all, none")
	fs.DurationVar(&f.cfg.Duration, "time", runner.DefaultDuration, "how long the clients run")
	fs.IntVar(&f.cfg.Clients, "clients", runner.DefaultClients, "concurrent clients per workload (client k talks to node k mod N)")
	fs.Uint64Var(&f.cfg.Seed, "seed", 0, "random seed (0: from the clock)")
	fs.DurationVar(&f.cfg.FaultFor, "fault-for", runner.DefaultFaultFor, "mean duration of a fault")
	fs.DurationVar(&f.cfg.QuietFor, "quiet-for", runner.DefaultQuietFor, "mean time between faults")
	fs.DurationVar(&f.cfg.ClientTimeout, "client-timeout", runner.DefaultClientTimeout, "bound on one request (then: info for writes)")
	fs.DurationVar(&f.cfg.CheckTimeout, "check-timeout", runner.DefaultCheckTimeout, "bound on the linearizability check")
	fs.DurationVar(&f.cfg.RecoveryTimeout, "recovery-timeout", runner.DefaultRecoveryTimeout, "bound on healing and the final reads")
	fs.DurationVar(&f.cfg.HealTimeout, "heal-timeout", runner.DefaultHealTimeout, "bound on healing one fault (a restarted node answering, a re-joined node a voter)")
	fs.BoolVar(&f.cfg.KeepData, "keep-data", false, "keep the agents' data dirs in the output folder")
	fs.BoolVar(&f.cfg.StaleReads, "unsafe-stale-reads", false, "read without ?consistent (to check that the checkers catch stale reads; such a run should fail)")
	fs.BoolVar(&f.cfg.UnsafeAuditDrop, "unsafe-audit-drop", false, "audit: set the backlog to max_records=1, on_full=drop_oldest (records dropped before they are archived; such a run must fail)")
	fs.BoolVar(&f.cfg.UnsafeLock, "lock-unsafe", false, "lock: increment without fencing (a plain set, the lock trusted until the critical section ends; such a run must fail under pause, partition or kill)")
	fs.Var(&f.args, "agent-arg", "extra `nexus agent` argument (repeatable), e.g. --agent-arg=--log-level=debug")
}

func (f *runFlags) finish() error {
	f.cfg.AgentArgs = f.args
	if f.nodes < 1 || f.nodes > 9 {
		return fmt.Errorf("--nodes %d: must be 1..9", f.nodes)
	}
	_, _, err := f.cfg.Validate()
	return err
}

// checkArchive reports why the audit workload cannot run here (nil if it
// can, or if it is not asked for): PostgreSQL's binaries are missing.
func (f *runFlags) checkArchive() error {
	ws, _, err := f.cfg.Validate()
	if err != nil {
		return err
	}
	for _, w := range ws {
		if a, ok := w.(workload.ArchiveUser); ok && a.NeedsArchive() {
			if err := pgserver.Available(pgserver.BinDir()); err != nil {
				return fmt.Errorf("--workload %s: %w", w.Name(), err)
			}
		}
	}
	return nil
}

// innerArgs renders the flags for the inner process.
func (f *runFlags) innerArgs(out string) []string {
	c := f.cfg
	a := []string{
		"--nexus", c.Binary, "--nodes", fmt.Sprint(f.nodes), "--workload", c.Workloads, "--nemesis", c.Nemesis,
		"--time", c.Duration.String(), "--clients", fmt.Sprint(c.Clients), "--seed", fmt.Sprint(c.Seed),
		"--fault-for", c.FaultFor.String(), "--quiet-for", c.QuietFor.String(),
		"--client-timeout", c.ClientTimeout.String(), "--check-timeout", c.CheckTimeout.String(),
		"--recovery-timeout", c.RecoveryTimeout.String(), "--heal-timeout", c.HealTimeout.String(), fmt.Sprintf("--keep-data=%v", c.KeepData), fmt.Sprintf("--unsafe-stale-reads=%v", c.StaleReads),
		fmt.Sprintf("--unsafe-audit-drop=%v", c.UnsafeAuditDrop), fmt.Sprintf("--lock-unsafe=%v", c.UnsafeLock), "--out", out,
	}
	for _, x := range c.AgentArgs {
		a = append(a, "--agent-arg="+x)
	}
	return a
}

func newFlagSet(name string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("nexus-jepsen "+name, flag.ContinueOnError)
	fs.SetOutput(w)
	return fs
}

// defaultOut is the output folder of a run started now.
func defaultOut(nemesis string) string {
	return "jepsen-out/" + time.Now().Format("20060102-150405") + "-" + strings.ReplaceAll(nemesis, ",", "+")
}
