// Package cluster owns Raft and gossip: it bootstraps the cluster once,
// joins members, turns gossip membership into Raft voters on the leader,
// applies writes on the leader or forwards them to it, and reports the state
// of both. Nothing outside this package imports hashicorp/raft's runtime or
// memberlist.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/cluster/peerproto"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/storage"
)

// FSM is the state machine the cluster drives. Beyond raft.FSM it reports
// how far it has applied, so that a node answers a write only once it has
// applied it too.
type FSM interface {
	raft.BatchingFSM
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, idx uint64) error
	// Result returns the result this replica computed for the command
	// entry at idx, while it is among the latest applied (lost.go).
	Result(idx uint64) (*command.Result, bool)
}

// Hooks are the few domain facts the cluster needs without importing the
// domain: how to encode its two system commands and where the cluster
// identity lives once applied.
type Hooks struct {
	// Noop encodes a no-op command (a barrier of the leader's own term).
	Noop func() []byte
	// ClusterInit encodes the command that records the cluster identity.
	ClusterInit func(clusterID, secret string) []byte
	// Identity returns the applied cluster id and forwarding secret, or "".
	Identity func() (clusterID, secret string)
	// StateObjects counts the objects a snapshot encodes (services,
	// instances, keys, routes, audit records...): the snapshot threshold
	// follows it (snapshotpolicy.go). Nil keeps the configured threshold.
	StateObjects func() uint64
}

// Config of a node.
type Config struct {
	Node            string
	BindAddr        string
	AdvertiseAddr   string
	RaftPort        int
	GossipPort      int
	HTTPAddr        string // advertised to peers for forwarding
	GatewayAddr     string
	BootstrapExpect int
	// NonVoter makes this server a read replica: it gossips it, so the
	// leader adds it as a non-voter and autopilot never promotes it (and
	// demotes it if it was a voter); it never bootstraps.
	NonVoter bool
	Join     []string
	Version  string

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	// ApplyTimeout bounds every wait on a Raft future of a write.
	ApplyTimeout time.Duration
	// ReconcileInterval is how often the leader repairs Raft membership
	// from gossip even without events.
	ReconcileInterval time.Duration

	DataDir  *storage.DataDir
	FSM      FSM
	Hooks    Hooks
	Logger   *slog.Logger
	LogLevel slog.Level
	// LogOutput receives raft's own hclog lines (JSON).
	LogOutput  io.Writer
	Registerer prometheus.Registerer

	// Peers makes this node's calls to the other nodes' admin listeners
	// (forwarded writes, read indexes, raft stats, keyring, relays); its
	// owner closes it. Nil: a plain-HTTP client of the node's own, closed
	// by Shutdown.
	Peers *peerproto.Client
	// GossipKeys, when not empty, encrypt and authenticate gossip
	// (memberlist keyring, AES-GCM; 16, 24 or 32 bytes each). The first is
	// the primary key that encrypts; all of them decrypt. A node without
	// one of the keys cannot join.
	GossipKeys [][]byte
	// RaftTLS, when set, puts Raft on mutual TLS with the cluster CA
	// (streamlayer.go); nil keeps plain TCP.
	RaftTLS *RaftTLS
	// Gates are the gated command types and their features (features.go;
	// nil: command.Gates()).
	Gates map[command.Type]string
	// Commands are the command types this node gossips that it decodes
	// (nil: command.KnownTypes(); tests set an older build's).
	Commands *command.TypeSet
	// SnapshotFormat is the highest snapshot format this node's FSM
	// reads, gossiped so that no node writes a format another server
	// cannot restore (Node.SnapshotFormat). 0 gossips none (format 1).
	SnapshotFormat int
}

// Node is one member of the cluster.
type Node struct {
	cfg    Config
	logger *slog.Logger
	raft   *raft.Raft
	trans  *raft.NetworkTransport
	logs   raft.LogStore // Raft's log store: the bbolt store behind an in-memory cache
	ml     *memberlist.Memberlist
	gossip *gossip
	peers  *peerproto.Client
	// ownPeers: peers was made here and is closed by Shutdown.
	ownPeers bool
	m        *metrics
	exch     exchange
	reads    *readRounds
	feat     *featureGate

	events  chan memberEvent
	changes chan struct{} // coalesced membership/leadership changes for one consumer
	stopCh  chan struct{}
	wg      sync.WaitGroup
	leadWG  sync.WaitGroup // the leadership loop and, through it, every duty

	mu          sync.Mutex
	started     bool
	leaving     bool
	stopped     bool
	termStarted uint64 // set once the leader's barrier of its term applied

	// snapBase is the configured snapshot threshold (Raft's default when
	// unset): the floor of snapshotpolicy.go.
	snapBase uint64
}

// New opens Raft and gossip: it returns once both listen. Start runs the
// node.
func New(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = 5 * time.Second
	}
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = cfg.BindAddr
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	n := &Node{
		cfg:     cfg,
		logger:  cfg.Logger,
		events:  make(chan memberEvent, 256),
		changes: make(chan struct{}, 1),
		stopCh:  make(chan struct{}),
	}
	n.peers = cfg.Peers
	if n.peers == nil {
		n.peers, n.ownPeers = peerproto.NewClient(peerproto.Config{}), true
	}
	n.m = newMetrics(cfg.Registerer, n)
	n.feat = newFeatureGate(n)
	n.reads = &readRounds{fetch: n.readIndexRound, timeout: cfg.ApplyTimeout, staleAfter: readRoundStaleAfter,
		onRound: n.m.readIndexRounds.Inc}
	if err := n.startRaft(); err != nil {
		return nil, err
	}
	if err := n.startGossip(); err != nil {
		n.shutdownRaft()
		return nil, err
	}
	return n, nil
}

// Start runs the node: join and bootstrap go on in the background, and the
// leadership loop (leadership.go) runs duties, every one of them, while
// this node leads. Adding a leader-only duty is adding it to that list.
// Start is called once; a second call does nothing.
func (n *Node) Start(duties ...Duty) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.stopped {
		return
	}
	n.started = true
	for _, d := range duties {
		n.m.duties.WithLabelValues(d.Name()).Set(0)
	}
	n.wg.Add(5)
	go n.snapshotPolicyLoop()
	go n.reconnectLoop(5 * time.Second)
	go n.joinLoop()
	go n.bootstrapLoop()
	go n.identityLoop()
	n.leadWG.Add(1)
	go n.leaderLoop(duties)
}

func (n *Node) raftAddr() string {
	return net.JoinHostPort(n.cfg.AdvertiseAddr, strconv.Itoa(n.cfg.RaftPort))
}

func (n *Node) startRaft() error {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.Node)
	if n.cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	}
	if n.cfg.ElectionTimeout > 0 {
		rc.ElectionTimeout = n.cfg.ElectionTimeout
	}
	if n.cfg.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	}
	if n.cfg.CommitTimeout > 0 {
		rc.CommitTimeout = n.cfg.CommitTimeout
	}
	if n.cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	}
	if n.cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = n.cfg.SnapshotInterval
	}
	n.snapBase = rc.SnapshotThreshold
	// Concurrency is what fills batches: let the leader take many applies
	// into one append and one fsync.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.TrailingLogs = 10240
	rc.Logger = hclog.New(&hclog.LoggerOptions{
		Name: "raft", Output: n.cfg.LogOutput, JSONFormat: true, Level: hclogLevel(n.cfg.LogLevel),
	})

	bind := net.JoinHostPort(n.cfg.BindAddr, strconv.Itoa(n.cfg.RaftPort))
	adv, err := net.ResolveTCPAddr("tcp", n.raftAddr())
	if err != nil {
		return fmt.Errorf("raft advertise address: %w", err)
	}
	trans, err := n.newTransport(bind, adv, rc.Logger.Named("transport"))
	if err != nil {
		return err
	}
	n.trans = trans
	// The leader reads every entry back from the log store to replicate
	// it (setupAppendEntries): from bbolt, a read transaction and a
	// msgpack decode per entry per follower, 8% of a busy leader's CPU
	// (docs/benchmarks.md). The latest entries are kept in memory, as
	// Consul does.
	logs, err := raft.NewLogCache(logCacheEntries, newMeasuredLogStore(n.cfg.DataDir.Store, n.cfg.Registerer))
	if err != nil {
		trans.Close()
		return fmt.Errorf("raft log cache: %w", err)
	}
	n.logs = logs
	r, err := raft.NewRaft(rc, n.cfg.FSM, logs, n.cfg.DataDir.Store, n.cfg.DataDir.Snapshots, trans)
	if err != nil {
		trans.Close()
		return fmt.Errorf("raft: %w", err)
	}
	n.raft = r
	return nil
}

// logCacheEntries is how many of the latest log entries the leader keeps
// in memory for replication: four full AppendEntries (MaxAppendEntries).
const logCacheEntries = 1024

// newTransport is Raft's network transport: plain TCP, or mutual TLS when
// cfg.RaftTLS is set. Both pool up to 8 connections per peer and use a 10 s
// I/O timeout.
func (n *Node) newTransport(bind string, adv *net.TCPAddr, logger hclog.Logger) (*raft.NetworkTransport, error) {
	const maxPool, timeout = 8, 10 * time.Second
	if n.cfg.RaftTLS == nil {
		trans, err := raft.NewTCPTransportWithLogger(bind, adv, maxPool, timeout, logger)
		if err != nil {
			return nil, fmt.Errorf("raft transport on %s: %w", bind, err)
		}
		return trans, nil
	}
	if adv.IP == nil || adv.IP.IsUnspecified() {
		return nil, fmt.Errorf("raft transport: advertise address %s is not advertisable", adv)
	}
	failures, err := raftTLSFailureCounter(n.cfg.Registerer)
	if err != nil {
		return nil, err
	}
	stream, err := newTLSStreamLayer(bind, adv, *n.cfg.RaftTLS, n.logger.With("transport", "raft"), failures)
	if err != nil {
		return nil, fmt.Errorf("raft transport on %s: %w", bind, err)
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: maxPool, Timeout: timeout, Logger: logger,
	}), nil
}

// hasState reports whether this node holds Raft state: then it never
// bootstraps again.
func (n *Node) hasState() bool {
	ok, err := raft.HasExistingState(n.cfg.DataDir.Store, n.cfg.DataDir.Store, n.cfg.DataDir.Snapshots)
	return err == nil && ok
}

func hclogLevel(l slog.Level) hclog.Level {
	switch {
	case l <= slog.LevelDebug:
		return hclog.Debug
	case l <= slog.LevelInfo:
		return hclog.Info
	case l <= slog.LevelWarn:
		return hclog.Warn
	}
	return hclog.Error
}

// Shutdown stops the node without leaving: it stops the leader duties (and
// waits for them), hands leadership over when it is the leader, stops
// gossip without a leave message (peers see it failed) and closes Raft.
// Safe to call twice.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	n.mu.Unlock()

	close(n.stopCh)
	n.leadWG.Wait()
	if n.raft.State() == raft.Leader && n.numVoters() > 1 {
		f := n.raft.LeadershipTransfer()
		if err := waitFuture(ctx, f, 5*time.Second); err != nil {
			n.logger.Warn("leadership transfer failed", "err", err)
		} else {
			n.logger.Info("leadership transferred before stopping")
		}
	}
	var errs []error
	if err := n.ml.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("gossip: %w", err))
	}
	errs = append(errs, n.shutdownRaft())
	n.wg.Wait()
	if n.ownPeers {
		n.peers.Close()
	}
	return errors.Join(errs...)
}

func (n *Node) shutdownRaft() error {
	f := n.raft.Shutdown()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("raft shutdown: %w", err)
		}
	case <-time.After(10 * time.Second):
		// Free the Raft port anyway (raft closes it too once done; Close is
		// idempotent), so that the node can be started again.
		_ = n.trans.Close()
		return errors.New("raft shutdown timed out")
	}
	return n.trans.Close()
}

func (n *Node) numVoters() int {
	cfg, err := n.configuration()
	if err != nil {
		return 0
	}
	v := 0
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter {
			v++
		}
	}
	return v
}

func (n *Node) configuration() (raft.Configuration, error) {
	f := n.raft.GetConfiguration()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := waitFuture(ctx, f, 5*time.Second); err != nil {
		return raft.Configuration{}, err
	}
	return f.Configuration(), nil
}

// waitFuture waits on a Raft future, bounded by ctx and timeout: a future
// can wait forever when the leader shuts down mid-apply (hashicorp/raft#498).
func waitFuture(ctx context.Context, f raft.Future, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return context.DeadlineExceeded
	}
}
