// Package runner runs one nexus-jepsen test: it starts the agents in their
// namespaces, runs the workloads' clients and the nemesis schedule, heals
// every fault, makes the final reads, checks the history and writes the
// output folder (history.jsonl, nemesis.jsonl, node logs, register.html,
// summary.json).
package runner

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nexus/nexus/internal/jepsen/nemesis"
	"github.com/nexus/nexus/internal/jepsen/workload"
)

// Config is one run's settings.
type Config struct {
	Binary    string // nexus executable (required)
	OutDir    string // output folder (required; created)
	Workloads string // "register,set"
	Nemesis   string // "kill,partition", "all", "none"
	Duration  time.Duration
	Clients   int      // clients per workload
	Seed      uint64   // 0: from the clock
	AgentArgs []string // extra `nexus agent` arguments

	FaultFor, QuietFor time.Duration // mean fault and quiet periods
	ClientTimeout      time.Duration // bound on one client request
	CheckTimeout       time.Duration // bound on porcupine
	RecoveryTimeout    time.Duration // bound on healing and the final reads
	HealTimeout        time.Duration // bound on healing one fault
	KeepData           bool          // keep the agents' data dirs in the output
	// StaleReads makes the workloads read without ?consistent: a run that
	// must fail under partitions, to show that the checkers catch stale
	// reads end to end. Never valid evidence about Nexus.
	StaleReads bool
	// UnsafeAuditDrop makes the audit workload set the backlog to drop
	// records before they are archived (max_records=1, drop_oldest): a run
	// that must fail, to show that the audit checker catches a lossy
	// archive end to end. Never valid evidence about Nexus.
	UnsafeAuditDrop bool
	// UnsafeLock makes the lock workload increment without fencing (a
	// plain set, no check-session, the lock trusted until the critical
	// section ends): a run that must fail under pause, partition or kill,
	// to show that the lock checker catches unfenced critical sections.
	// Never valid evidence about Nexus.
	UnsafeLock bool
}

// Defaults of Config.
const (
	DefaultDuration        = 60 * time.Second
	DefaultClients         = 10
	DefaultFaultFor        = 10 * time.Second
	DefaultQuietFor        = 8 * time.Second
	DefaultClientTimeout   = 5 * time.Second
	DefaultCheckTimeout    = 5 * time.Minute
	DefaultRecoveryTimeout = 90 * time.Second
	DefaultHealTimeout     = 2 * time.Minute
)

func (c *Config) setDefaults() {
	if c.Workloads == "" {
		c.Workloads = "register,set"
	}
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.Clients <= 0 {
		c.Clients = DefaultClients
	}
	if c.FaultFor <= 0 {
		c.FaultFor = DefaultFaultFor
	}
	if c.QuietFor <= 0 {
		c.QuietFor = DefaultQuietFor
	}
	if c.ClientTimeout <= 0 {
		c.ClientTimeout = DefaultClientTimeout
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = DefaultCheckTimeout
	}
	if c.RecoveryTimeout <= 0 {
		c.RecoveryTimeout = DefaultRecoveryTimeout
	}
	if c.HealTimeout <= 0 {
		c.HealTimeout = DefaultHealTimeout
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
}

// Validate checks the config and returns the workloads and nemeses it names.
func (c *Config) Validate() ([]workload.Workload, []nemesis.Nemesis, error) {
	c.setDefaults()
	var errs []error
	if c.Binary == "" {
		errs = append(errs, errors.New("the nexus binary is required (--nexus)"))
	}
	if c.OutDir == "" {
		errs = append(errs, errors.New("the output folder is required (--out)"))
	}
	ws, err := workload.Parse(c.Workloads)
	if err != nil {
		errs = append(errs, err)
	}
	if c.UnsafeAuditDrop && !setOn(ws, func(a *workload.Audit) { a.UnsafeDrop = true }) && err == nil {
		errs = append(errs, errors.New("--unsafe-audit-drop needs the audit workload"))
	}
	if c.UnsafeLock && !setOn(ws, func(l *workload.Lock) { l.Unsafe = true }) && err == nil {
		errs = append(errs, errors.New("--lock-unsafe needs the lock workload"))
	}
	ns, err := nemesis.Parse(c.Nemesis)
	if err != nil {
		errs = append(errs, err)
	}
	return ws, ns, errors.Join(errs...)
}

// setOn calls set on every workload of type T in ws; false when there is
// none.
func setOn[T workload.Workload](ws []workload.Workload, set func(T)) bool {
	found := false
	for _, w := range ws {
		if t, ok := w.(T); ok {
			set(t)
			found = true
		}
	}
	return found
}

// NemesisNames returns the nemesis names in c.Nemesis.
func NemesisNames(ns []nemesis.Nemesis) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name()
	}
	return out
}

// String is a one-line description.
func (c *Config) String() string {
	return fmt.Sprintf("workloads=%s nemesis=%s duration=%v clients=%d seed=%d agent-args=[%s]",
		c.Workloads, c.Nemesis, c.Duration, c.Clients, c.Seed, strings.Join(c.AgentArgs, " "))
}
