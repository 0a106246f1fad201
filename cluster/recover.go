package cluster

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/storage"
)

// RecoverConfig is what Recover needs: an opened (locked) data dir, the
// node it belongs to and the voters of the new configuration.
type RecoverConfig struct {
	DataDir *storage.DataDir
	// Node is the name (Raft server ID) of the node the data dir belongs to.
	Node string
	// Voters of the new configuration. Empty: Node alone, at the Raft
	// address it has in the configuration it holds.
	Voters []ServerInfo
	// NewFSM returns an empty state machine of the kind the agent runs;
	// Recover replays the snapshot and the log into it to write the new
	// snapshot (and calls it twice).
	NewFSM func() FSM
	// LogOutput receives raft's own lines (default: discarded).
	LogOutput io.Writer
}

// Recovery is what Recover did.
type Recovery struct {
	Node string
	// Previous is the configuration the data dir held.
	Previous []ServerInfo
	// Voters is the configuration it holds now.
	Voters []ServerInfo
	// Index and Term are those of the snapshot Recover wrote: every entry
	// of the log up to Index is in it.
	Index, Term uint64
	// SnapshotID names that snapshot in <data-dir>/raft/snapshots.
	SnapshotID string
}

// Errors of Recover.
var (
	// ErrNoRaftState: the data dir has never held Raft state; there is
	// nothing to recover (start the agent to bootstrap a new cluster).
	ErrNoRaftState = errors.New("the data dir holds no Raft state: there is nothing to recover")
	// ErrBadVoters: the new configuration is not usable.
	ErrBadVoters = errors.New("invalid voters")
)

// Recover rewrites the Raft configuration of a stopped node's data dir to
// cfg.Voters after a permanent loss of quorum, keeping all data: it
// replays the latest snapshot and every log entry into a fresh FSM, writes
// that state as a new snapshot carrying the new configuration, and
// compacts the log (hashicorp/raft's RecoverCluster; Consul's peers.json
// does the same). Entries that were in the log but never committed become
// committed: after a loss of quorum nobody knows which ones were.
//
// The agent started on the data dir afterwards runs with that
// configuration: alone, it elects itself; new nodes join it as usual.
func Recover(cfg RecoverConfig) (*Recovery, error) {
	if cfg.DataDir == nil || cfg.NewFSM == nil || cfg.Node == "" {
		return nil, errors.New("cluster: Recover needs a data dir, a node name and an FSM")
	}
	if cfg.LogOutput == nil {
		cfg.LogOutput = io.Discard
	}
	dd := cfg.DataDir
	has, err := raft.HasExistingState(dd.Store, dd.Store, dd.Snapshots)
	if err != nil {
		return nil, fmt.Errorf("reading the Raft state of %s: %w", dd.Path(), err)
	}
	if !has {
		return nil, fmt.Errorf("%w in %s", ErrNoRaftState, dd.Path())
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.Node))
	defer trans.Close()

	prev, err := raft.GetConfiguration(recoverRaftConfig(cfg), cfg.NewFSM(), dd.Store, dd.Store, dd.Snapshots, trans)
	if err != nil {
		return nil, fmt.Errorf("reading the Raft configuration of %s: %w", dd.Path(), err)
	}
	out := &Recovery{Node: cfg.Node, Previous: serverInfos(prev)}
	voters := cfg.Voters
	if len(voters) == 0 {
		for _, s := range prev.Servers {
			if string(s.ID) == cfg.Node {
				voters = []ServerInfo{{ID: cfg.Node, Address: string(s.Address)}}
			}
		}
		if len(voters) == 0 {
			return nil, fmt.Errorf("%w: node %s is not in the Raft configuration it holds (%s); name its Raft address: --voter %s=HOST:RAFTPORT",
				ErrBadVoters, cfg.Node, DescribeServers(out.Previous), cfg.Node)
		}
	}
	next, err := recoveryConfiguration(cfg.Node, voters)
	if err != nil {
		return nil, err
	}

	if err := raft.RecoverCluster(recoverRaftConfig(cfg), cfg.NewFSM(), dd.Store, dd.Store, dd.Snapshots, trans, next); err != nil {
		return nil, fmt.Errorf("recovering %s: %w", dd.Path(), err)
	}
	snaps, err := dd.Snapshots.List()
	if err != nil || len(snaps) == 0 {
		return nil, fmt.Errorf("recovering %s: the new snapshot is not listed: %v", dd.Path(), err)
	}
	s := snaps[0]
	out.Index, out.Term, out.SnapshotID = s.Index, s.Term, s.ID
	out.Voters = serverInfos(s.Configuration)
	return out, nil
}

// recoverRaftConfig is the raft configuration of the offline steps (each
// needs its own: GetConfiguration marks the one it is given).
func recoverRaftConfig(cfg RecoverConfig) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Node)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: cfg.LogOutput, JSONFormat: true, Level: hclog.Warn})
	return rc
}

// recoveryConfiguration checks the voters and builds the configuration:
// ids and addresses unique and well formed, and node among them (a node
// outside its own configuration could never be elected nor start as a
// member).
func recoveryConfiguration(node string, voters []ServerInfo) (raft.Configuration, error) {
	var c raft.Configuration
	ids, addrs := map[string]bool{}, map[string]bool{}
	self := false
	for _, v := range voters {
		if v.ID == "" {
			return c, fmt.Errorf("%w: a voter without a node name (%q)", ErrBadVoters, v.ID+"="+v.Address)
		}
		if err := CheckRaftAddr(v.Address); err != nil {
			return c, fmt.Errorf("%w: %s: %v", ErrBadVoters, v.ID, err)
		}
		if ids[v.ID] {
			return c, fmt.Errorf("%w: node %s named twice", ErrBadVoters, v.ID)
		}
		if addrs[v.Address] {
			return c, fmt.Errorf("%w: address %s given to two nodes", ErrBadVoters, v.Address)
		}
		ids[v.ID], addrs[v.Address] = true, true
		self = self || v.ID == node
		c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(v.ID), Address: raft.ServerAddress(v.Address)})
	}
	if !self {
		return c, fmt.Errorf("%w: the voters must include this data dir's node %s", ErrBadVoters, node)
	}
	sort.Slice(c.Servers, func(i, j int) bool { return c.Servers[i].ID < c.Servers[j].ID })
	return c, nil
}

// CheckRaftAddr accepts a Raft address: HOST:PORT with a port in 1..65535.
func CheckRaftAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q is not HOST:PORT", addr)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: port %q is not in 1..65535", addr, port)
	}
	return nil
}

func serverInfos(c raft.Configuration) []ServerInfo {
	out := make([]ServerInfo, 0, len(c.Servers))
	for _, s := range c.Servers {
		out = append(out, ServerInfo{ID: string(s.ID), Address: string(s.Address), Suffrage: suffrageName(s.Suffrage)})
	}
	return out
}

// DescribeServers formats servers as "id=addr (suffrage), ..." for logs
// and messages.
func DescribeServers(ss []ServerInfo) string {
	if len(ss) == 0 {
		return "empty"
	}
	s := ""
	for i, v := range ss {
		if i > 0 {
			s += ", "
		}
		s += v.ID + "=" + v.Address + " (" + v.Suffrage + ")"
	}
	return s
}
