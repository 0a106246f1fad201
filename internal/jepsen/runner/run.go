package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nexus/nexus/internal/jepsen/checker"
	"github.com/nexus/nexus/internal/jepsen/client"
	"github.com/nexus/nexus/internal/jepsen/history"
	"github.com/nexus/nexus/internal/jepsen/nemesis"
	"github.com/nexus/nexus/internal/jepsen/netns"
	"github.com/nexus/nexus/internal/jepsen/pgserver"
	"github.com/nexus/nexus/internal/jepsen/workload"
	"github.com/nexus/nexus/internal/proccluster"
)

// Output file names inside Config.OutDir.
const (
	FileHistory  = "history.jsonl"
	FileTimeline = "nemesis.jsonl"
	FileSummary  = "summary.json"
	FileRegister = "register.html"
	DirNodes     = "nodes"
	FileWrapper  = "nexus-netns.sh"
	FilePostgres = "postgres.log" // the audit archive's server log
)

// startTimeout bounds starting the cluster and electing the first leader.
const startTimeout = 90 * time.Second

// Run performs one test inside topo (this process runs in topo's harness
// namespace). It returns the summary, also written to OutDir/summary.json;
// an error means the harness itself failed (no verdict).
func Run(ctx context.Context, topo *netns.Topology, cfg Config, log *slog.Logger) (*Summary, error) {
	ws, ns, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(cfg.Binary)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	sum := &Summary{Started: time.Now(), Config: cfg, Nemeses: NemesisNames(ns), Results: map[string]workload.Result{},
		Files: map[string]string{"history": FileHistory, "timeline": FileTimeline, "nodes": DirNodes}}
	for _, n := range topo.Nodes {
		sum.Nodes = append(sum.Nodes, n.Name+"="+n.IP)
	}
	sum.Version = binaryVersion(ctx, bin)
	log.Info("run starting", "config", cfg.String(), "nodes", len(topo.Nodes), "out", cfg.OutDir)

	wrapper := filepath.Join(cfg.OutDir, FileWrapper)
	if err := topo.WriteAgentWrapper(wrapper, bin); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	agentArgs := slices.Clone(cfg.AgentArgs)
	var pgURL string
	if needsArchive(ws) {
		pg, err := startArchive(sctx, topo, log)
		if err != nil {
			return nil, err
		}
		defer pg.Close(context.Background(), filepath.Join(cfg.OutDir, FilePostgres))
		sum.Files["postgres"] = FilePostgres
		sum.Archive = pg.URL(pgserver.Database)
		pgURL = pg.LocalURL(pgserver.Database)
		agentArgs = append(agentArgs, "--postgres-url="+pg.URL(pgserver.Database))
	}
	pc, err := proccluster.Start(sctx, proccluster.Options{
		Binary: wrapper, Nodes: len(topo.Nodes), BaseIP: topo.Prefix, Dir: filepath.Join(cfg.OutDir, DirNodes),
		ExtraArgs: agentArgs, StartTimeout: startTimeout,
		Logf: func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return nil, fmt.Errorf("starting the cluster: %w", err)
	}
	defer func() {
		pc.Close()
		if !cfg.KeepData {
			for _, n := range pc.Nodes() {
				_ = os.RemoveAll(n.DataDir)
			}
		}
	}()
	cl := newCluster(pc, topo)
	defer cl.close()
	if err := nemesis.Prepare(sctx, cl); err != nil {
		return nil, fmt.Errorf("preparing iptables chains: %w", err)
	}
	if _, leader, err := pc.WaitLeader(sctx); err != nil {
		return nil, fmt.Errorf("no first leader: %w", err)
	} else if err := pc.WaitAllReady(sctx); err != nil {
		return nil, fmt.Errorf("cluster not ready: %w", err)
	} else {
		log.Info("cluster ready", "leader", leader)
	}

	histFile, err := os.Create(filepath.Join(cfg.OutDir, FileHistory))
	if err != nil {
		return nil, err
	}
	defer histFile.Close()
	tlFile, err := os.Create(filepath.Join(cfg.OutDir, FileTimeline))
	if err != nil {
		return nil, err
	}
	defer tlFile.Close()

	start := time.Now()
	rec := history.NewRecorder(start, histFile)
	tl := nemesis.NewTimeline(start, tlFile)
	var nodes []workload.Node
	for _, n := range pc.Nodes() {
		nodes = append(nodes, workload.Node{Name: n.Name, HTTPAddr: n.HTTPAddr})
	}
	envs := make([]*workload.Env, len(ws))
	for k := range ws {
		envs[k] = &workload.Env{Nodes: nodes, Rec: rec,
			Client:  client.New(client.Options{Timeout: cfg.ClientTimeout, MaxConnsPerNode: cfg.Clients, StaleReads: cfg.StaleReads}),
			Clients: cfg.Clients, Seed: cfg.Seed + uint64(k), Logf: func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) },
			PostgresURL: pgURL}
		defer envs[k].Client.Close()
	}
	for k, w := range ws {
		if p, ok := w.(workload.Preparer); ok {
			if err := p.Prepare(sctx, envs[k]); err != nil {
				return nil, fmt.Errorf("%s: %w", w.Name(), err)
			}
		}
	}
	cancel()

	// The workloads and the nemesis run for Duration (or until interrupted).
	runCtx, stopRun := context.WithTimeout(ctx, cfg.Duration)
	defer stopRun()
	var wg sync.WaitGroup
	for k, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Run(runCtx, envs[k])
		}()
	}
	sched := &nemesis.Schedule{Nemeses: ns, Cluster: cl, Timeline: tl, Rng: rand.New(rand.NewPCG(cfg.Seed, 0x6e656d)),
		FaultFor: cfg.FaultFor, QuietFor: cfg.QuietFor, HealTimeout: cfg.HealTimeout,
		Logf: func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) }}
	wg.Add(1)
	go func() {
		defer wg.Done()
		sum.Schedule = sched.Run(runCtx)
	}()
	wg.Wait()
	interrupted := ctx.Err() != nil
	log.Info("workload done", "ops", len(rec.Ops()), "interrupted", interrupted)

	recoverCluster(ctx, cfg, cl, pc, ws, envs, sum, log)

	if err := rec.Flush(); err != nil {
		sum.Errors = append(sum.Errors, "writing the history: "+err.Error())
	}
	check(cfg, rec, tl, ws, sum, log)
	if interrupted {
		sum.Errors = append(sum.Errors, "interrupted before the end of the run")
		if sum.Verdict == VerdictValid {
			sum.Verdict, sum.Valid = VerdictUnknown, false
		}
	}
	sum.Elapsed = time.Since(sum.Started).Round(time.Millisecond).String()
	if err := sum.write(filepath.Join(cfg.OutDir, FileSummary)); err != nil {
		return sum, err
	}
	log.Info("run finished", "verdict", sum.Verdict, "reasons", strings.Join(sum.Reasons, "; "), "out", cfg.OutDir)
	return sum, nil
}

// recoverCluster heals whatever is left, waits for the cluster, and makes the
// final reads.
func recoverCluster(ctx context.Context, cfg Config, cl *cluster, pc *proccluster.Cluster, ws []workload.Workload,
	envs []*workload.Env, sum *Summary, log *slog.Logger) {
	timeout := cfg.RecoveryTimeout
	if ctx.Err() != nil {
		timeout = min(timeout, 20*time.Second) // interrupted: do not linger
	}
	hctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	t0 := time.Now()
	repaired, err := cl.healAll(hctx)
	sum.Recovery.Repaired = repaired
	if err != nil {
		sum.Errors = append(sum.Errors, "healing: "+err.Error())
	}
	if _, _, err := pc.WaitLeader(hctx); err != nil {
		sum.Errors = append(sum.Errors, "no leader after healing: "+err.Error())
	}
	for _, i := range pc.Live() {
		rctx, rcancel := context.WithTimeout(hctx, 30*time.Second)
		if err := pc.WaitReady(rctx, i); err != nil {
			sum.Recovery.NotReady = append(sum.Recovery.NotReady, pc.Node(i).Name)
		}
		rcancel()
	}
	sum.Recovery.HealedIn = time.Since(t0).Round(time.Millisecond).String()
	log.Info("healed", "in", sum.Recovery.HealedIn, "repaired", repaired, "not_ready", sum.Recovery.NotReady)

	t1 := time.Now()
	var errs []error
	for k, w := range ws {
		if err := w.Final(hctx, envs[k]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", w.Name(), err))
		}
	}
	sum.Recovery.FinalIn = time.Since(t1).Round(time.Millisecond).String()
	sum.Recovery.Recovered = len(errs) == 0
	if err := errors.Join(errs...); err != nil {
		sum.Recovery.FinalError = err.Error()
	}
}

// check runs every workload's checker and fills in the verdict.
func check(cfg Config, rec *history.Recorder, tl *nemesis.Timeline, ws []workload.Workload, sum *Summary, log *slog.Logger) {
	ops := rec.Ops()
	in := workload.CheckInput{Timeout: cfg.CheckTimeout}
	var faultTime time.Duration
	for _, w := range tl.Windows(rec.Now()) {
		in.Windows = append(in.Windows, checker.Window{Name: w.Nemesis, Detail: w.Detail, Start: w.Start, End: w.End})
		faultTime += time.Duration(w.End - w.Start)
	}
	for _, ev := range tl.Leaves() {
		for _, n := range ev.Nodes {
			in.Removals = append(in.Removals, checker.Removal{Node: n, Invoke: ev.Time, Complete: ev.End})
		}
	}
	sum.Windows, sum.FaultTime = in.Windows, faultTime.Round(time.Millisecond).String()
	sum.Stats = checker.ComputeStats(ops, in.Windows)
	sum.Counts = sum.Stats.Counts

	invalid, unknown := false, false
	for _, w := range ws {
		res := w.Check(ops, in)
		sum.Results[w.Name()] = res
		log.Info("checked", "workload", w.Name(), "valid", res.Valid, "summary", res.Summary)
		if err := w.WriteArtifacts(cfg.OutDir, in); err != nil {
			sum.Errors = append(sum.Errors, w.Name()+" artifacts: "+err.Error())
		}
		switch d := res.Details.(type) {
		case *checker.RegisterResult:
			if _, err := os.Stat(filepath.Join(cfg.OutDir, FileRegister)); err == nil {
				sum.Files["register"] = FileRegister
			}
			if d.Linearizable == checker.LinUnknown && len(d.Anomalies) == 0 {
				unknown = true
				sum.Reasons = append(sum.Reasons, "register: the linearizability check timed out")
				continue
			}
		case *checker.SetResult:
			sum.Lost, sum.Unexpect = len(d.Lost), len(d.Unexpected)
		case *checker.LockResult:
			sum.Lock = NewLockCounts(d)
		case *checker.AuditResult:
			sum.Audit = NewAuditCounts(d)
			if _, err := os.Stat(filepath.Join(cfg.OutDir, workload.FileAuditEvents)); err == nil {
				sum.Files["audit_archive"] = workload.FileAuditArchive
				sum.Files["audit_events"] = workload.FileAuditEvents
			}
		}
		if !res.Valid {
			invalid = true
			sum.Reasons = append(sum.Reasons, w.Name()+": "+res.Summary)
		}
	}
	if !sum.Recovery.Recovered {
		invalid = true
		sum.Reasons = append(sum.Reasons, "the cluster did not answer the final reads after healing: "+sum.Recovery.FinalError)
	}
	if sum.Schedule.HealErrors > 0 {
		invalid = true
		sum.Reasons = append(sum.Reasons, fmt.Sprintf("%d fault(s) could not be healed (see nemesis.jsonl)", sum.Schedule.HealErrors))
	}
	switch {
	case invalid:
		sum.Verdict = VerdictInvalid
	case unknown:
		sum.Verdict = VerdictUnknown
	default:
		sum.Verdict, sum.Valid = VerdictValid, true
	}
}

// needsArchive reports whether a workload needs the PostgreSQL archive.
func needsArchive(ws []workload.Workload) bool {
	for _, w := range ws {
		if a, ok := w.(workload.ArchiveUser); ok && a.NeedsArchive() {
			return true
		}
	}
	return false
}

// startArchive starts PostgreSQL in this (the harness) namespace, listening
// on the bridge address, which every node namespace reaches (partitions
// never cut the harness's address), with the node subnet trusted.
func startArchive(ctx context.Context, topo *netns.Topology, log *slog.Logger) (*pgserver.Server, error) {
	pg, err := pgserver.Start(ctx, pgserver.Options{Dir: topo.Scratch(), Listen: topo.HarnessIP,
		Trust: topo.Prefix + "0/24", Database: pgserver.Database, Logf: func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) }})
	if err != nil {
		return nil, fmt.Errorf("starting PostgreSQL for the audit archive: %w", err)
	}
	return pg, nil
}

// binaryVersion asks the binary under test for its version.
func binaryVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "unknown: " + err.Error()
	}
	return strings.TrimSpace(string(out))
}
