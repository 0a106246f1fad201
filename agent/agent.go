// Package agent builds, starts and stops one Nexus node: the data dir, the
// FSM and its store, the cluster node and its leader duties, the health
// runner, the audit archive, the admin API and the gateway. It is the
// composition root: cmd/nexus parses the settings and signals and calls it,
// and tests that need whole nodes in one process build them here.
//
// Besides the wiring it owns what is neither cluster nor domain: leave-time
// deregistration and the api view of the cluster (adapter.go), the identity
// a restored snapshot takes (snapshot.go), the cluster identity cache and
// the encoding of the cluster's system commands (identity.go), TLS, ACL and
// keyring plumbing.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nexus/nexus/api"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/cluster/peerproto"
	"github.com/nexus/nexus/cmd/nexus/agentconfig"
	"github.com/nexus/nexus/dns"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/gateway"
	"github.com/nexus/nexus/health"
	"github.com/nexus/nexus/registry"
	"github.com/nexus/nexus/session"
	"github.com/nexus/nexus/storage"
	"github.com/nexus/nexus/storage/archive"
)

// readyPoll is how often the agent checks whether the node became ready
// (Ready) until it is.
const readyPoll = 100 * time.Millisecond

// Options are what the caller gives a node besides its settings. Every
// field is optional.
type Options struct {
	// Version is gossiped and reported by the admin API.
	Version string
	// Logger is the node's log (default: discarded).
	Logger *slog.Logger
	// LogOutput receives raft's and memberlist's own lines and the data
	// dir's messages (default: discarded; the binary passes stderr).
	LogOutput io.Writer
	// AccessLog receives the gateway access log when gateway_access_log is
	// set (default: os.Stdout).
	AccessLog io.Writer
	// Registry holds the node's metrics (default: a new registry with the
	// Go runtime and process collectors).
	Registry *prometheus.Registry
	// ReadFile reads the key files the settings name (default os.ReadFile).
	ReadFile func(string) ([]byte, error)

	// Tune adjusts the cluster configuration the settings give, before the
	// node is built: timings and TLS material that are not settings (tests).
	Tune func(*cluster.Config)
	// TuneAutopilot adjusts the autopilot policy the settings give (tests:
	// update intervals).
	TuneAutopilot func(*cluster.AutopilotConfig)
	// Duties are more leader duties for the node, after the agent's own
	// (tests).
	Duties func(*cluster.Node) []cluster.Duty
}

// Agent is one running node.
type Agent struct {
	cfg     *agentconfig.Config
	logger  *slog.Logger
	reg     *prometheus.Registry
	version string

	// startup times the parts of build, for the start line: a slow
	// start (a large snapshot to restore, a large catalog) says where its
	// time went.
	startup startupSteps

	dd        *storage.DataDir
	store     *registry.Store
	codec     *command.Codec
	machine   *fsm.FSM
	sec       *agentSecurity
	peers     *peerproto.Client
	node      *cluster.Node
	pilot     *cluster.Autopilot
	arch      *archive.Service
	srv       *api.Server
	peerSvc   *peerproto.Service // the /internal/ handlers, forwarding streams
	gw        *gateway.Gateway
	dns       *dns.Server
	adminAddr net.Addr
	gwAddr    net.Addr

	stopHealth context.CancelFunc
	healthDone chan struct{}

	ready   chan struct{} // closed once the node first is ready
	done    chan struct{} // closed when the agent must stop on its own
	doneErr error
	doneMu  sync.Mutex
	left    chan struct{} // closed by a completed `nexus leave`
	stopped chan struct{} // closed by Shutdown

	stopOnce sync.Once
	stopErr  error
}

// Start builds the node cfg describes and runs it: Raft, gossip, the admin
// API and the gateway listen when it returns. On an error, everything it
// had started is stopped again.
func Start(cfg *agentconfig.Config, opts Options) (a *Agent, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LogOutput == nil {
		opts.LogOutput = io.Discard
	}
	if opts.AccessLog == nil {
		opts.AccessLog = os.Stdout
	}
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.Registry == nil {
		opts.Registry = newMetricsRegistry()
	}
	a = &Agent{
		cfg: cfg, logger: opts.Logger, reg: opts.Registry, version: opts.Version,
		ready: make(chan struct{}), done: make(chan struct{}), left: make(chan struct{}), stopped: make(chan struct{}),
	}
	defer func() {
		if err != nil {
			_ = a.Shutdown(context.Background())
			a = nil
		}
	}()
	if err := a.build(opts); err != nil {
		return a, err
	}
	a.serve()
	return a, nil
}

// build creates every part; parts created so far are stopped by Shutdown
// when a later one fails.
func (a *Agent) build(opts Options) error {
	cfg, logger := a.cfg, a.logger
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	a.startup.begin()
	dd, err := storage.Open(cfg.DataDir, cfg.Node, storage.Options{LogStore: cfg.RaftLogStore, LogOutput: opts.LogOutput})
	if err != nil {
		return err
	}
	a.dd = dd
	a.startup.done("data_dir")
	a.store = registry.NewStore()
	a.codec = command.NewCodec()
	sessMetrics, err := session.NewMetrics(a.reg, a.store)
	if err != nil {
		return err
	}
	// The snapshot format follows what every Raft server reads (known
	// once the node runs; format 1 until then).
	var formats atomic.Pointer[cluster.Node]
	a.machine = fsm.New(fsm.Deps{Store: a.store, Codec: a.codec, Logger: logger.With("component", "fsm"), OnApply: sessMetrics.ObserveApply,
		SnapshotFormat: func() int {
			if n := formats.Load(); n != nil {
				return n.SnapshotFormat()
			}
			return fsm.SnapshotFormat1
		}})
	if a.sec, err = newAgentSecurity(cfg); err != nil {
		return err
	}
	aclOpts, err := aclOptions(cfg, opts.ReadFile)
	if err != nil {
		return err
	}
	logACL(logger, cfg, aclOpts)
	// One client makes every call of this node to the others.
	peerCfg := a.sec.peer
	peerCfg.Logger = logger.With("component", "peers")
	a.peers = peerproto.NewClient(peerCfg)

	ccfg := cluster.Config{
		Node: cfg.Node, BindAddr: cfg.Bind, AdvertiseAddr: cfg.Advertise,
		RaftPort: cfg.RaftPort, GossipPort: cfg.GossipPort,
		HTTPAddr: advertisedHTTP(cfg), GatewayAddr: cfg.GatewayAddr,
		BootstrapExpect: cfg.BootstrapExpect, NonVoter: cfg.NonVoter, Join: cfg.Join, Version: opts.Version,
		HeartbeatTimeout: cfg.RaftHeartbeatTimeout, ElectionTimeout: cfg.RaftElectionTimeout,
		LeaderLeaseTimeout: cfg.RaftLeaderLeaseTimeout, CommitTimeout: cfg.RaftCommitTimeout,
		SnapshotThreshold: cfg.RaftSnapshotThreshold, SnapshotInterval: cfg.RaftSnapshotInterval,
		ApplyTimeout: cfg.ApplyTimeout, SnapshotFormat: fsm.LatestSnapshotFormat,
		DataDir: dd, FSM: a.machine,
		Hooks:  Hooks(a.codec, a.store, cfg.Node),
		Logger: logger.With("component", "cluster"), LogLevel: level, LogOutput: opts.LogOutput,
		Registerer: a.reg,
		Peers:      a.peers, GossipKeys: a.sec.gossipKeys, RaftTLS: a.sec.raftTLS,
	}
	if opts.Tune != nil {
		opts.Tune(&ccfg)
	}
	node, err := cluster.New(ccfg)
	if err != nil {
		return err
	}
	a.node = node
	formats.Store(node)
	a.startup.done("raft_and_gossip") // includes restoring the latest snapshot

	// Leader duties: the autopilot promotes new servers and removes dead
	// ones, the health leader acts on failed and departed nodes, the
	// archiver moves the audit backlog to PostgreSQL.
	policy := cluster.AutopilotConfig{StabilizationTime: cfg.AutopilotStabilizationTime,
		DeadServerGrace: cfg.AutopilotDeadServerGrace, MinQuorum: cfg.AutopilotMinQuorum}
	if opts.TuneAutopilot != nil {
		opts.TuneAutopilot(&policy)
	}
	pilot, err := cluster.NewAutopilot(node, policy)
	if err != nil {
		return err
	}
	a.pilot = pilot
	healthDeps := health.Deps{
		Store: a.store, Codec: a.codec, Writer: node, Membership: node,
		Logger: logger.With("component", "health"), Registerer: a.reg, CatchUp: node.ConsistentRead,
		Peers: a.peers,
	}
	runner := health.NewRunner(healthDeps)
	healthLeader := health.NewLeader(healthDeps, runner)
	heartbeats := health.NewHeartbeats(healthDeps, runner)
	a.arch, err = archive.New(archive.Config{URL: cfg.PostgresURL}, archive.Deps{
		Store: a.machine.Store, Apply: node.Apply,
		Codec: a.codec, Node: cfg.Node, Logger: logger.With("component", "audit"), Registry: a.reg,
	})
	if err != nil {
		return err
	}
	var auditArchive api.AuditArchive
	if a.arch.Enabled() {
		auditArchive = a.arch
	}

	adapter := &clusterAdapter{node: node, machine: a.machine, codec: a.codec, left: a.left, logger: logger}
	a.peerSvc = peerproto.NewService(node, cfg.ApplyTimeout, cfg.MaxBodyBytes)
	a.srv, err = api.New(api.Deps{
		Writer: node, Reader: a.machine, Cluster: adapter, Codec: a.codec,
		Logger: logger.With("component", "api"), Registry: a.reg, Gatherer: a.reg,
		Version: opts.Version, MaxBodyBytes: cfg.MaxBodyBytes, ApplyTimeout: cfg.ApplyTimeout,
		Consistency: node, Heartbeats: heartbeats, AuditArchive: auditArchive,
		Guard: adminGuard(cfg, a.sec), Keyring: keyringAdapter{node: node}, ACL: aclOpts,
		EnableDebug: cfg.EnableDebug,
		Peers:       a.peerSvc,
	})
	if err != nil {
		a.srv = nil
		return err
	}
	// The Consul-compatible API under /v1/ (consul/, docs/consul-compat.md).
	if err := mountConsul(a.srv, node, cfg.Datacenter, opts.Version, a.reg, logger); err != nil {
		a.srv = nil
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		a.srv = nil
		return fmt.Errorf("admin API on %s: %w", cfg.HTTPAddr, err)
	}
	a.adminAddr = ln.Addr()
	a.startup.done("api")
	go func() {
		if err := a.srv.Serve(ln); err != nil {
			a.finish(fmt.Errorf("admin API: %w", err))
		}
	}()
	gw, gwAddr, err := startGateway(cfg, a.store, node, a.reg, logger, opts.AccessLog, a.sec.gatewayTLS)
	if err != nil {
		return err
	}
	a.gw, a.gwAddr = gw, gwAddr
	a.startup.done("gateway")
	// DNS interface (dns/): answers from the local replica.
	if a.dns, err = startDNS(cfg, a.store, node, a.reg, logger); err != nil {
		return err
	}

	// Run: migrations in the background, the node with its leader duties
	// (the leadership loop starts them all when this node leads and
	// cancels them all when it does not), the health checks this node owns.
	a.arch.Start()
	// Sessions: the leader times TTLs and lock delays (package session).
	sessions := session.NewDuty(session.Deps{
		State: session.StoreState{Store: a.store}, Apply: node.Apply, Members: node.MemberStatuses, Codec: a.codec,
		Node: cfg.Node, Logger: logger.With("component", "session"), Metrics: sessMetrics, ApplyTimeout: cfg.ApplyTimeout,
	})
	duties := []cluster.Duty{pilot, healthLeader, a.arch, sessions}
	if opts.Duties != nil {
		duties = append(duties, opts.Duties(node)...)
	}
	node.Start(duties...)
	a.startup.done("start")
	healthCtx, stopHealth := context.WithCancel(context.Background())
	a.stopHealth, a.healthDone = stopHealth, make(chan struct{})
	go func() {
		defer close(a.healthDone)
		runner.Run(healthCtx)
	}()
	return nil
}

// serve logs the start and watches for readiness and a completed leave.
func (a *Agent) serve() {
	cfg := a.cfg
	a.logger.Info("nexus agent started", "version", a.version, "http_addr", cfg.HTTPAddr, "raft_addr", cfg.RaftAddr(),
		"gossip_addr", cfg.GossipAddr(), "data_dir", cfg.DataDir, "bootstrap_expect", cfg.BootstrapExpect, "dev", cfg.Dev,
		"tls", cfg.TLS(), "gateway_tls", cfg.GatewayTLS(), "gossip_encrypted", cfg.Encrypt != "", "raft_tls", a.sec.raftTLS != nil,
		"raft_log_store", a.dd.LogStore, "gomaxprocs", runtime.GOMAXPROCS(0), slog.Group("startup", a.startup.attrs...))
	if cfg.TLS() && a.sec.raftTLS == nil {
		a.logger.Warn("Raft traffic is not encrypted: set tls_ca_file or tls_client_ca_file (the cluster CA) for mutual TLS on raft_port")
	}
	go func() {
		select {
		case <-a.left:
			a.logger.Info("left the cluster; stopping")
			a.finish(nil)
		case <-a.stopped:
		}
	}()
	go a.watchReady()
}

// watchReady closes ready once the node is ready: the check of GET /ready.
func (a *Agent) watchReady() {
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		if a.node.Ready() {
			a.logger.Info("node is ready: it knows a leader and has caught up")
			close(a.ready)
			return
		}
		select {
		case <-a.stopped:
			return
		case <-tick.C:
		}
	}
}

// finish ends the agent on its own (a completed leave, err nil, or a
// failed admin API).
func (a *Agent) finish(err error) {
	a.doneMu.Lock()
	defer a.doneMu.Unlock()
	select {
	case <-a.done:
		return
	default:
	}
	a.doneErr = err
	close(a.done)
}

// Ready is closed once the node knows a leader, holds the cluster identity
// and has applied everything committed before (what GET /ready answers 200
// for): the moment a service manager may call it started
// (systemd READY=1).
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Done is closed when the agent must stop on its own: it left the cluster
// (`nexus leave`) or its admin API failed. Err tells which.
func (a *Agent) Done() <-chan struct{} { return a.done }

// Err is why Done was closed: nil after a leave.
func (a *Agent) Err() error {
	a.doneMu.Lock()
	defer a.doneMu.Unlock()
	return a.doneErr
}

// Reload reads the TLS certificates and keys again (SIGHUP). A pair that
// fails to load is logged and the previous one stays in use.
func (a *Agent) Reload() { a.sec.reload(a.logger) }

// Shutdown stops the node without leaving, each part once, in this order:
// the gateway and the admin API stop taking requests (in-flight ones finish
// while Raft still runs, bounded by 5 s or ctx); the health checks stop;
// the node stops its leader duties, hands leadership over and closes gossip
// and Raft; the audit archive closes its connections; the data dir is
// unlocked (and removed in dev mode). Later calls return the first result.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.stopOnce.Do(func() {
		close(a.stopped)
		var errs []error
		apiCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		stopDNS(apiCtx, a.dns, a.logger)
		if a.gw != nil {
			if err := a.gw.Shutdown(apiCtx); err != nil {
				a.logger.Warn("gateway shutdown", "err", err)
			}
		}
		if a.srv != nil {
			if err := a.srv.Shutdown(apiCtx); err != nil {
				a.logger.Warn("admin API shutdown", "err", err)
			}
		}
		if a.peerSvc != nil {
			a.peerSvc.Close(apiCtx)
		}
		cancel()
		if a.stopHealth != nil {
			a.stopHealth()
			<-a.healthDone
		}
		if a.node != nil {
			if err := a.node.Shutdown(ctx); err != nil {
				a.logger.Warn("cluster shutdown", "err", err)
				errs = append(errs, err)
			}
		}
		if a.peers != nil {
			a.peers.Close()
		}
		if a.arch != nil {
			a.arch.Stop()
		}
		if a.dd != nil {
			if err := a.dd.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if a.cfg.Dev {
			_ = os.RemoveAll(a.cfg.DataDir)
		}
		a.stopErr = errors.Join(errs...)
		a.logger.Info("stopped")
	})
	return a.stopErr
}

// Node is the cluster node (tests and embedders).
func (a *Agent) Node() *cluster.Node { return a.node }

// Autopilot is the node's autopilot (a leader duty).
func (a *Agent) Autopilot() *cluster.Autopilot { return a.pilot }

// FSM is the node's state machine; FSM().Store() its replica.
func (a *Agent) FSM() *fsm.FSM { return a.machine }

// DataDir is the node's data directory.
func (a *Agent) DataDir() *storage.DataDir { return a.dd }

// Metrics is the node's metrics registry.
func (a *Agent) Metrics() *prometheus.Registry { return a.reg }

// AdminAddr is the address the admin API listens on.
func (a *Agent) AdminAddr() net.Addr { return a.adminAddr }

// GatewayAddr is the address the gateway listens on.
func (a *Agent) GatewayAddr() net.Addr { return a.gwAddr }

// advertisedHTTP is the admin API address peers forward writes to: the
// advertise IP when the API listens on all interfaces.
func advertisedHTTP(cfg *agentconfig.Config) string {
	host, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil {
		return cfg.HTTPAddr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort(cfg.Advertise, port)
	}
	return cfg.HTTPAddr
}

// newMetricsRegistry is the agent's registry with the Go runtime and
// process collectors. Besides the default Go metrics it exports the
// scheduler's: go_sched_latencies_seconds (how long goroutines wait to run)
// tells an operator whether the node is short of CPU, which shows first as
// the gateway's tail latency.
func newMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// startupSteps records how long each part of an agent's start took.
type startupSteps struct {
	last  time.Time
	attrs []any
}

func (s *startupSteps) begin() { s.last = time.Now() }

// done closes the step called name.
func (s *startupSteps) done(name string) {
	now := time.Now()
	s.attrs = append(s.attrs, slog.Duration(name, now.Sub(s.last)))
	s.last = now
}
