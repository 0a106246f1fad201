package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/nexus/nexus/agent"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/cmd/nexus/agentconfig"
)

// voterFlags is the repeatable --voter NODE=HOST:RAFTPORT.
type voterFlags []cluster.ServerInfo

func (v *voterFlags) String() string {
	parts := make([]string, len(*v))
	for i, s := range *v {
		parts[i] = s.ID + "=" + s.Address
	}
	return strings.Join(parts, ",")
}

func (v *voterFlags) Set(s string) error {
	node, addr, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%q is not NODE=HOST:RAFTPORT", s)
	}
	if !agentconfig.ValidNodeName(node) {
		return fmt.Errorf("%q: node name %q is not valid (letters, digits, '.', '_', '-'; at most 64)", s, node)
	}
	if err := cluster.CheckRaftAddr(addr); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	*v = append(*v, cluster.ServerInfo{ID: node, Address: addr, Suffrage: "voter"})
	return nil
}

func recoverUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: nexus recover --data-dir DIR [--voter NODE=HOST:RAFTPORT ...]")
	fmt.Fprintln(w, "")
	fmt.Fprintln(w, "Offline disaster recovery after a permanent loss of quorum (docs/operations.md).")
	fmt.Fprintln(w, "With the agent stopped, rewrite the Raft configuration of its data dir to the")
	fmt.Fprintln(w, "given voters (default: this node alone), keeping all of its data. Then start")
	fmt.Fprintln(w, "the agent: it leads that configuration, and new nodes join it as usual.")
	fmt.Fprintln(w, "")
	fmt.Fprintln(w, "  --data-dir DIR    the stopped node's data dir")
	fmt.Fprintln(w, "  --voter N=H:P     a voter of the new configuration (repeatable; must include")
	fmt.Fprintln(w, "                    this node; every survivor is recovered with the same list)")
}

// runRecover is `nexus recover`. Exit 0 done, 1 refused or failed (nothing
// changed), 2 usage.
func runRecover(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dataDir := fs.String("data-dir", "", "")
	var voters voterFlags
	fs.Var(&voters, "voter", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			recoverUsage(stdout)
			return 0
		}
		fmt.Fprintln(stderr, "nexus recover:", strings.NewReplacer("invalid value", "invalid", "flag -", "--").Replace(err.Error()))
		recoverUsage(stderr)
		return 2
	}
	switch {
	case fs.NArg() != 0:
		fmt.Fprintf(stderr, "nexus recover: unexpected argument %q\n", fs.Arg(0))
		recoverUsage(stderr)
		return 2
	case *dataDir == "":
		fmt.Fprintln(stderr, "nexus recover: --data-dir is required")
		recoverUsage(stderr)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil)).With("command", "recover")
	rec, err := agent.Recover(agent.RecoverOptions{DataDir: *dataDir, Voters: voters, Logger: logger, LogOutput: stderr})
	if errors.Is(err, cluster.ErrBadVoters) {
		fmt.Fprintln(stderr, "nexus recover: --voter:", err)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "nexus recover:", err)
		return 1
	}
	fmt.Fprintf(stdout, "recovered the data dir %s of node %s\n", *dataDir, rec.Node)
	fmt.Fprintf(stdout, "previous configuration: %s\n", cluster.DescribeServers(rec.Previous))
	fmt.Fprintf(stdout, "new configuration:      %s\n", cluster.DescribeServers(rec.Voters))
	fmt.Fprintf(stdout, "state kept up to index %d (term %d), snapshot %s\n", rec.Index, rec.Term, rec.SnapshotID)
	fmt.Fprintln(stdout, "start the agent on this data dir (every voter listed, if several); new nodes join it as usual")
	return 0
}
