package agent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
	"github.com/nexus/nexus/storage"
)

// RecoverOptions are the inputs of `nexus recover`.
type RecoverOptions struct {
	// DataDir is the data dir of the stopped node.
	DataDir string
	// Voters of the new Raft configuration (empty: this node alone).
	Voters []cluster.ServerInfo
	// Logger receives the line that records the recovery.
	Logger *slog.Logger
	// LogOutput receives raft's own lines.
	LogOutput io.Writer
}

// Recover rewrites the Raft configuration of a stopped node's data dir
// after a permanent loss of quorum, keeping its data (cluster.Recover). It
// refuses a directory that is not a Nexus data dir and one that a running
// agent holds (the data dir's lock).
func Recover(opts RecoverOptions) (*cluster.Recovery, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LogOutput == nil {
		opts.LogOutput = io.Discard
	}
	dd, node, err := storage.OpenExisting(opts.DataDir, opts.LogOutput)
	if errors.Is(err, storage.ErrInUse) {
		return nil, fmt.Errorf("%w; stop the agent first (recovery is offline)", err)
	}
	if err != nil {
		return nil, err
	}
	defer dd.Close()
	codec := command.NewCodec()
	rec, err := cluster.Recover(cluster.RecoverConfig{
		DataDir: dd, Node: node, Voters: opts.Voters, LogOutput: opts.LogOutput,
		NewFSM: func() cluster.FSM { return fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: codec}) },
	})
	if err != nil {
		return nil, err
	}
	opts.Logger.Warn("recovered the Raft configuration: the agent will start with these voters only",
		"node", rec.Node, "data_dir", dd.Path(), "cluster_id", dd.ClusterID(),
		"previous", cluster.DescribeServers(rec.Previous), "voters", cluster.DescribeServers(rec.Voters),
		"index", rec.Index, "term", rec.Term, "snapshot", rec.SnapshotID)
	return rec, nil
}
