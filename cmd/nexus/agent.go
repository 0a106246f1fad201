package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nexus/nexus/api"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/cmd/nexus/agentconfig"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/health"
	"github.com/nexus/nexus/registry"
	"github.com/nexus/nexus/storage"
	"github.com/nexus/nexus/storage/archive"
)

// runAgent runs one node until SIGTERM/SIGINT (stop, exit 0) or a completed
// `nexus leave`. Configuration errors are one line on stderr, exit 1.
func runAgent(args []string, stderr io.Writer) int {
	cfg, err := agentconfig.Load(args, os.Getenv, os.ReadFile, os.Hostname, func() (string, error) {
		return os.MkdirTemp("", "nexus-dev-")
	})
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, agentconfig.Usage())
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "nexus agent:", err)
		return 1
	}
	logger := newLogger(cfg, stderr)
	if n := agentProcs(os.Getenv, runtime.GOMAXPROCS(0)); n > 0 {
		runtime.GOMAXPROCS(n)
	}
	if err := agent(cfg, logger, stderr); err != nil {
		logger.Error("agent stopped with an error", "err", err)
		fmt.Fprintln(stderr, "nexus agent:", err)
		return 1
	}
	return 0
}

func newLogger(cfg *agentconfig.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With("node", cfg.Node)
}

func agent(cfg *agentconfig.Config, logger *slog.Logger, stderr io.Writer) error {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	if cfg.Dev {
		defer os.RemoveAll(cfg.DataDir)
	}
	dd, err := storage.Open(cfg.DataDir, cfg.Node, stderr)
	if err != nil {
		return err
	}
	defer dd.Close()

	reg := newMetricsRegistry()

	store := registry.NewStore()
	codec := command.NewCodec()
	machine := fsm.New(fsm.Deps{Store: store, Codec: codec, Logger: logger.With("component", "fsm")})
	ident := &identity{store: store}
	sec, err := newAgentSecurity(cfg)
	if err != nil {
		return err
	}
	aclOpts, err := aclOptions(cfg, os.ReadFile)
	if err != nil {
		return err
	}
	logACL(logger, cfg, aclOpts)

	node, err := cluster.New(cluster.Config{
		Node: cfg.Node, BindAddr: cfg.Bind, AdvertiseAddr: cfg.Advertise,
		RaftPort: cfg.RaftPort, GossipPort: cfg.GossipPort,
		HTTPAddr: advertisedHTTP(cfg), GatewayAddr: cfg.GatewayAddr,
		BootstrapExpect: cfg.BootstrapExpect, Join: cfg.Join, Version: version,
		HeartbeatTimeout: cfg.RaftHeartbeatTimeout, ElectionTimeout: cfg.RaftElectionTimeout,
		LeaderLeaseTimeout: cfg.RaftLeaderLeaseTimeout, CommitTimeout: cfg.RaftCommitTimeout,
		SnapshotThreshold: cfg.RaftSnapshotThreshold, SnapshotInterval: cfg.RaftSnapshotInterval,
		ApplyTimeout: cfg.ApplyTimeout,
		DataDir:      dd, FSM: machine,
		Hooks: cluster.Hooks{
			Noop: func() []byte {
				b, _ := codec.Encode(command.TypeNoop, &command.Noop{Meta: command.Meta{Node: cfg.Node, Time: time.Now().UnixNano()}})
				return b
			},
			ClusterInit: func(id, secret string) []byte {
				b, _ := codec.Encode(command.TypeClusterInit, &command.ClusterInit{
					Meta: command.Meta{Actor: "system", Node: cfg.Node, Time: time.Now().UnixNano()}, ClusterID: id, Secret: secret,
				})
				return b
			},
			Identity: ident.get,
		},
		Logger: logger.With("component", "cluster"), LogLevel: level, LogOutput: stderr,
		Registerer: reg,
		Peer:       sec.peer, GossipKeys: sec.gossipKeys, RaftTLS: sec.raftTLS,
	})
	if err != nil {
		return err
	}
	// Autopilot: promotes new servers and removes dead ones while this node leads.
	pilot, err := cluster.NewAutopilot(node, cluster.AutopilotConfig{StabilizationTime: cfg.AutopilotStabilizationTime,
		DeadServerGrace: cfg.AutopilotDeadServerGrace, MinQuorum: cfg.AutopilotMinQuorum})
	if err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	pilot.Start()
	defer pilot.Stop()

	healthDeps := health.Deps{
		Store: store, Codec: codec, Writer: node, Membership: node,
		Logger: logger.With("component", "health"), Registerer: reg, CatchUp: node.ConsistentRead,
		PeerScheme: sec.peer.Scheme, PeerTLS: sec.peer.TLS,
	}
	runner := health.NewRunner(healthDeps)
	healthLeader := health.NewLeader(healthDeps, runner)
	heartbeats := health.NewHeartbeats(healthDeps, runner)
	healthCtx, stopHealth := context.WithCancel(context.Background())
	defer stopHealth()
	go runner.Run(healthCtx)
	go healthLeader.Run(healthCtx)

	// Audit archive: migrations in the background, the archiver while this
	// node leads (storage/archive).
	arch, err := archive.New(archive.Config{URL: cfg.PostgresURL}, archive.Deps{
		Store: machine.Store, Apply: node.Apply, IsLeader: func() bool { l, ok := node.Leader(); return ok && l.Node == cfg.Node },
		Codec: codec, Node: cfg.Node, Logger: logger.With("component", "audit"), Registry: reg,
	})
	if err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	arch.Start()
	defer arch.Stop()
	var auditArchive api.AuditArchive
	if arch.Enabled() {
		auditArchive = arch
	}

	left := make(chan struct{})
	adapter := &clusterAdapter{node: node, machine: machine, codec: codec, left: left, logger: logger}
	srv, err := api.New(api.Deps{
		Writer: node, Reader: machine, Cluster: adapter, Codec: codec,
		Logger: logger.With("component", "api"), Registry: reg, Gatherer: reg,
		Version: version, MaxBodyBytes: cfg.MaxBodyBytes, ApplyTimeout: cfg.ApplyTimeout,
		Consistency: node, Heartbeats: heartbeats, AuditArchive: auditArchive,
		Guard: adminGuard(cfg, sec), Keyring: keyringAdapter{node: node}, ACL: aclOpts,
	})
	if err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	if err := mountConsul(srv, node, cfg.Datacenter, reg, logger); err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		_ = node.Shutdown(context.Background())
		return fmt.Errorf("admin API on %s: %w", cfg.HTTPAddr, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	gw, err := startGateway(cfg, machine.Store(), node, reg, logger, sec.gatewayTLS)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		_ = node.Shutdown(context.Background())
		return err
	}
	logger.Info("nexus agent started", "version", version, "http_addr", cfg.HTTPAddr, "raft_addr", cfg.RaftAddr(),
		"gossip_addr", cfg.GossipAddr(), "data_dir", cfg.DataDir, "bootstrap_expect", cfg.BootstrapExpect, "dev", cfg.Dev,
		"tls", cfg.TLS(), "gateway_tls", cfg.GatewayTLS(), "gossip_encrypted", cfg.Encrypt != "", "raft_tls", sec.raftTLS != nil, "gomaxprocs", runtime.GOMAXPROCS(0))
	if cfg.TLS() && sec.raftTLS == nil {
		logger.Warn("Raft traffic is not encrypted: set tls_ca_file or tls_client_ca_file (the cluster CA) for mutual TLS on raft_port")
	}

	// SIGHUP reloads the TLS certificates and keys.
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	hupDone := make(chan struct{})
	defer close(hupDone)
	go func() {
		for {
			select {
			case <-hups:
				sec.reload(logger)
			case <-hupDone:
				return
			}
		}
	}()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	var runErr error
	select {
	case s := <-sigs:
		logger.Info("stopping (not leaving)", "signal", s.String())
	case <-left:
		logger.Info("left the cluster; stopping")
	case err := <-serveErr:
		runErr = fmt.Errorf("admin API: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	go func() {
		// A second signal forces the exit.
		select {
		case <-sigs:
			logger.Warn("second signal: exiting now")
			os.Exit(1)
		case <-ctx.Done():
		}
	}()
	// A stop that hangs is a bug worth a goroutine dump in the log.
	watchdog := time.AfterFunc(10*time.Second, func() {
		var buf bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
		logger.Error("shutdown is taking more than 10s", "goroutines", buf.String())
	})
	defer watchdog.Stop()
	// Stop taking API requests first (in-flight ones finish while Raft still
	// runs), then hand leadership over and close Raft.
	apiCtx, apiCancel := context.WithTimeout(ctx, 5*time.Second)
	stopGateway(apiCtx, gw, logger)
	if err := srv.Shutdown(apiCtx); err != nil {
		logger.Warn("admin API shutdown", "err", err)
	}
	apiCancel()
	stopHealth()
	arch.Stop()
	pilot.Stop()
	if err := node.Shutdown(ctx); err != nil {
		logger.Warn("cluster shutdown", "err", err)
	}
	logger.Info("stopped")
	return runErr
}

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

// identity caches the cluster id and forwarding secret once applied.
type identity struct {
	store *registry.Store
	v     atomic.Pointer[registry.ClusterMeta]
}

func (i *identity) get() (string, string) {
	if m := i.v.Load(); m != nil {
		return m.ClusterID, m.Secret
	}
	tx := i.store.ReadTxn()
	defer tx.Abort()
	m := tx.ClusterMeta()
	if m == nil {
		return "", ""
	}
	i.v.Store(m)
	return m.ClusterID, m.Secret
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
