// Package workload holds the nexus-jepsen workloads: register (config keys
// as linearizable registers, checked with porcupine), set (service
// instances added and removed, checked against the final read), audit
// (config writes, checked against PostgreSQL's audit_events) and lock (a
// counter incremented under a lock through fenced transactions).
package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nexus/nexus/internal/jepsen/checker"
	"github.com/nexus/nexus/internal/jepsen/client"
	"github.com/nexus/nexus/internal/jepsen/history"
)

// Node is a node clients can talk to.
type Node struct {
	Name     string
	HTTPAddr string
}

// Env is what a workload runs with.
type Env struct {
	Client  *client.Client
	Nodes   []Node
	Rec     *history.Recorder
	Clients int    // concurrent clients of this workload
	Seed    uint64 // each client derives its own random source from it
	Logf    func(string, ...any)
	// PostgresURL is the audit archive as the harness reaches it (set for
	// an ArchiveUser).
	PostgresURL string
}

// CheckInput is what a checker needs besides the history.
type CheckInput struct {
	Windows  []checker.Window  // fault periods
	Removals []checker.Removal // leaves (they deregister the node's instances)
	Timeout  time.Duration     // bound on the linearizability search
}

// Result is a workload's verdict.
type Result struct {
	Workload string            `json:"workload"`
	Valid    bool              `json:"valid"`
	Summary  string            `json:"summary"`
	Details  any               `json:"details"`
	Anomaly  []checker.Anomaly `json:"-"`
}

// Workload generates operations, reads the final state, and checks.
type Workload interface {
	Name() string
	// Run issues operations from Env.Clients clients until ctx is done and
	// returns when every client has returned.
	Run(ctx context.Context, env *Env)
	// Final reads the final state (every fault healed), retrying across
	// nodes until ctx is done; an error means the cluster never answered.
	Final(ctx context.Context, env *Env) error
	// Check checks the history (all workloads' ops; it filters its own).
	Check(ops []history.Op, in CheckInput) Result
	// WriteArtifacts writes extra output (e.g. porcupine's HTML) into dir,
	// after Check.
	WriteArtifacts(dir string, in CheckInput) error
}

// Names of the workloads.
const (
	NameRegister = "register"
	NameSet      = "set"
	NameAudit    = "audit"
	NameLock     = "lock"
)

// New returns the workload of that name.
func New(name string) (Workload, error) {
	switch name {
	case NameRegister:
		return &Register{}, nil
	case NameSet:
		return &Set{}, nil
	case NameAudit:
		return &Audit{}, nil
	case NameLock:
		return &Lock{}, nil
	}
	return nil, fmt.Errorf("unknown workload %q (known: register, set, audit, lock)", name)
}

// Parse turns "register,set" into workloads.
func Parse(spec string) ([]Workload, error) {
	var out []Workload
	seen := map[string]bool{}
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		w, err := New(name)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no workload in %q", spec)
	}
	return out, nil
}

// clientRand is client k's random source.
// runClients runs client k for k in [0, env.Clients) concurrently and
// returns when all have.
func runClients(ctx context.Context, env *Env, client func(ctx context.Context, env *Env, k int)) {
	var wg sync.WaitGroup
	for k := 0; k < env.Clients; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client(ctx, env, k)
		}()
	}
	wg.Wait()
}

func clientRand(seed uint64, workload string, k int) *rand.Rand {
	var h uint64 = 1469598103934665603
	for _, c := range workload {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return rand.New(rand.NewPCG(seed, h+uint64(k)))
}

// pause waits d or until ctx is done.
func pause(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// backoff is the pause after an operation: a short random think time, and
// a longer one after a failure so that a dead node is not hammered.
func backoff(rng *rand.Rand, t history.Type, think time.Duration) time.Duration {
	d := time.Duration(0)
	if think > 0 {
		d = time.Duration(rng.Int64N(int64(think)))
	}
	if t != history.OK {
		d += 50*time.Millisecond + time.Duration(rng.Int64N(int64(100*time.Millisecond)))
	}
	return d
}

// record fills the common fields of op from a client result and adds it.
func record(rec *history.Recorder, op history.Op, r client.Result) history.Op {
	op.Complete = rec.Now()
	op.Type, op.Status, op.Code, op.ReqID = r.Type, r.Status, r.Code, r.RequestID
	if r.Err != "" {
		op.Error = r.Err
	}
	return rec.Add(op)
}

// finalLoop calls read on each node in turn until one answers ok or ctx is
// done.
func finalLoop(ctx context.Context, env *Env, what string, read func(n Node) history.Op) error {
	var last history.Op
	for attempt := 0; ; attempt++ {
		n := env.Nodes[attempt%len(env.Nodes)]
		last = read(n)
		if last.Type == history.OK {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("final read of %s: no node answered (last: %s %d %s %s)", what, last.Node, last.Status, last.Code, last.Error)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
