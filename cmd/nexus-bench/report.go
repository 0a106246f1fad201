package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nexus/nexus/internal/proccluster"
)

// finish prints a subcommand's markdown, writes its report as JSON to out
// (when set) and returns the exit code: 1 when the run or the write
// failed.
func finish(cmd string, rep any, markdown func() string, out string, err error) int {
	if rep != nil {
		fmt.Print(markdown())
		if out != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if werr := os.WriteFile(out, append(b, '\n'), 0o644); werr != nil {
				fmt.Fprintf(os.Stderr, "nexus-bench: write %s: %v\n", out, werr)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nexus-bench %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// run is a subcommand: parse its flags (2 on an error), run the benchmark,
// then finish.
func run[C, R any](ctx context.Context, name string, args []string, parse func([]string) (C, error), out func(C) string,
	bench func(context.Context, C) (*R, error), markdown func(*R) string) int {
	cfg, err := parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nexus-bench %s: %v\n%s", name, err, usage)
		return 2
	}
	rep, err := bench(ctx, cfg)
	var v any
	if rep != nil {
		v = rep
	}
	return finish(name, v, func() string { return markdown(rep) }, out(cfg), err)
}

// startCluster starts a benchmark cluster, logging its events to stderr
// when verbose.
func startCluster(ctx context.Context, opts proccluster.Options, verbose bool) (*proccluster.Cluster, error) {
	if verbose {
		opts.Logf = func(f string, a ...any) { progress(f, a...) }
	}
	progress("starting %d nodes (%s) ports raft %d http %d", max(opts.Nodes, 3), opts.Binary, opts.RaftPort, opts.HTTPPort)
	return proccluster.Start(ctx, opts)
}

// dumpLogsOnError prints the end of every node's log when *err is set (for
// a deferred call).
func dumpLogsOnError(c *proccluster.Cluster, err *error) {
	if *err == nil {
		return
	}
	for i := 0; i < c.N(); i++ {
		fmt.Fprintf(os.Stderr, "===== last log lines of %s =====\n%s\n", c.Node(i).Name, proccluster.Tail(c.Logs(i), 8<<10))
	}
}

// clusterFlags are the flags of the benchmarks that start their own
// cluster: where it lives and which addresses it takes.
type clusterFlags struct {
	dir         string
	baseIP      string
	raftPort    int
	gossipPort  int
	httpPort    int
	gatewayPort int
	verbose     bool
	agentArgs   []string
	// voters and nonVoters size the cluster: voters nodes bootstrap it,
	// the nonVoters after them run with --non-voter (read replicas).
	voters, nonVoters int
}

// register adds the flags to fs with ports from base (raft base, gossip
// base+1, gateway base-220, admin API base+200).
func (c *clusterFlags) register(fs *flag.FlagSet, base int) {
	fs.StringVar(&c.dir, "dir", "", "directory for data dirs and logs (default: a temporary one, removed at the end)")
	fs.StringVar(&c.baseIP, "base-ip", "127.0.0.", "node IP prefix; nodes are .11, .12, .13")
	fs.IntVar(&c.raftPort, "raft-port", base, "Raft port of every node")
	fs.IntVar(&c.gossipPort, "gossip-port", base+1, "gossip port of every node")
	fs.IntVar(&c.httpPort, "http-port", base+200, "admin API port of every node")
	fs.IntVar(&c.gatewayPort, "gateway-port", base-220, "gateway port of every node")
	fs.BoolVar(&c.verbose, "verbose", false, "log cluster events to stderr")
	fs.IntVar(&c.voters, "voters", 3, "voting nodes (3, 5, 7, ...)")
	fs.IntVar(&c.nonVoters, "non-voters", 0, "read replicas started with --non-voter after the voters")
	fs.Var((*stringList)(&c.agentArgs), "agent-arg", "extra argument for every nexus agent (repeatable), e.g. --agent-arg=--raft-heartbeat-timeout=300ms")
}

// options are the proccluster options of the cluster of binary: --voters
// voting nodes (3 by default) that bootstrap it, then --non-voters read
// replicas.
func (c *clusterFlags) options(binary string) proccluster.Options {
	voters := c.voters
	if voters <= 0 {
		voters = 3
	}
	o := proccluster.Options{
		ExtraArgs: c.agentArgs, Binary: binary, Nodes: voters + c.nonVoters, BaseIP: c.baseIP, Dir: c.dir,
		RaftPort: c.raftPort, GossipPort: c.gossipPort, HTTPPort: c.httpPort, GatewayPort: c.gatewayPort,
		StartTimeout: 60 * time.Second,
	}
	if c.nonVoters > 0 {
		// A read replica never bootstraps: it takes no --bootstrap-expect.
		o.Args = func(i int, args []string) []string {
			out := make([]string, 0, len(args)+1)
			for j := 0; j < len(args); j++ {
				if args[j] == "--bootstrap-expect" && j+1 < len(args) {
					if i < voters {
						out = append(out, args[j], strconv.Itoa(voters))
					}
					j++
					continue
				}
				out = append(out, args[j])
			}
			if i >= voters {
				out = append(out, "--non-voter")
			}
			return out
		}
	}
	return o
}

// validate checks the cluster's size.
func (c *clusterFlags) validate() error {
	if c.voters < 1 || c.nonVoters < 0 {
		return errors.New("--voters must be >= 1 and --non-voters >= 0")
	}
	if c.voters+c.nonVoters > 40 {
		return errors.New("--voters + --non-voters must be <= 40 (one loopback address each, from .11)")
	}
	// A benchmark starts from empty data dirs: an agent started on the
	// data of an earlier run would measure re-registrations of an existing
	// catalog (answered 200, not 201) and a log to replay.
	if c.dir != "" {
		if entries, err := os.ReadDir(c.dir); err == nil && len(entries) > 0 {
			return fmt.Errorf("--dir %s is not empty (data of an earlier run?): remove it or name another", c.dir)
		}
	}
	return nil
}

// chain runs a, then b, on a node's arguments (either may be nil).
func chain(a, b func(int, []string) []string) func(int, []string) []string {
	if a == nil || b == nil {
		if a == nil {
			return b
		}
		return a
	}
	return func(i int, args []string) []string { return b(i, a(i, args)) }
}

// parseFlags parses args into fs and checks what every cluster benchmark
// needs: no stray arguments, and --nexus.
func parseFlags(fs *flag.FlagSet, args []string, nexus *string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *nexus == "" {
		return errors.New("--nexus PATH is required")
	}
	return nil
}
