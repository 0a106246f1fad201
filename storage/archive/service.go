// Package archive writes the replicated audit backlog to PostgreSQL exactly
// once, and reads it back for GET /audit.
//
// Every node runs a Service. With a --postgres-url it applies the schema
// migrations in the background (retrying with backoff while PostgreSQL is
// down, so the agent starts and serves anyway). The Service is also a
// leader duty: the cluster's leadership loop runs it (Run) while the node
// leads, and it then archives (archiver.go). Without a --postgres-url it
// only exports the backlog metrics and, while leading, warns when the
// cluster expects an archive. See docs/audit.md.
package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/migrations"
	"github.com/nexus/nexus/registry"
)

// Defaults of Config.
const (
	DefaultBatchSize  = 1000
	DefaultPoll       = 250 * time.Millisecond
	DefaultBackoffMin = 200 * time.Millisecond
	DefaultBackoffMax = 5 * time.Second
)

// ErrNotReady is returned by List until the schema is current on this node.
var ErrNotReady = errors.New("the audit archive is not ready (PostgreSQL unreachable or migrations pending)")

// Config of the archive service.
type Config struct {
	// URL is --postgres-url; empty turns the archive off on this node.
	URL string
	// BatchSize bounds the records of one transaction (default 1000).
	BatchSize int
	// Poll is the longest an idle archiver waits before looking at the
	// backlog again (default 250ms).
	Poll time.Duration
	// BackoffMin and BackoffMax bound the retry delay after a failure
	// (defaults 200ms and 5s: a catch-up after an outage starts within 5 s).
	BackoffMin, BackoffMax time.Duration
}

// Deps are what the service needs from the node; package agent wires them.
type Deps struct {
	// Store returns the local replica (the FSM's store).
	Store func() *registry.Store
	// Apply commits a command through Raft (cluster.Node.Apply).
	Apply func(ctx context.Context, cmd []byte) (*command.Result, error)
	Codec *command.Codec
	// Node is this node's name (the watermark's audit metadata).
	Node     string
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Now is the clock of the lag metric and of proposed commands.
	Now func() time.Time
}

// Service is the archive of one node.
type Service struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	metrics *Metrics
	pool    *Pool
	pg      *PGStore
	ready   atomic.Bool
	// migrated is closed once the schema is current.
	migrated chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// afterCommit is the archiver's test hook (export_test.go).
	afterCommit func(registry.AuditKey) bool
}

// New validates the configuration and registers the metrics; Start runs it.
// A malformed URL is an error that names the setting, without the password.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Store == nil || deps.Apply == nil {
		return nil, errors.New("archive: Store and Apply are required")
	}
	if deps.Codec == nil {
		deps.Codec = command.NewCodec()
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	s := &Service{cfg: cfg, deps: deps, log: deps.Logger, migrated: make(chan struct{})}
	if cfg.URL != "" {
		pc, err := ParseURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("invalid setting postgres_url: %w", err)
		}
		s.pool = NewPool(pc)
		s.pg = NewPGStore(s.pool)
		s.log = s.log.With("postgres", pc.Redacted)
	}
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if err := deps.Registry.Register(newBacklogCollector(deps.Store, deps.Now)); err != nil {
		return nil, err
	}
	return s, nil
}

// Enabled reports whether this node has an archive (a --postgres-url).
func (s *Service) Enabled() bool { return s.pg != nil }

// Start runs the migrations (if any archive) in the background until they
// succeed or Stop.
func (s *Service) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if s.pg == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if s.migrate(ctx) {
			close(s.migrated)
		}
	}()
}

// Name is the leader duty's name.
func (s *Service) Name() string { return "audit-archiver" }

// Run is the leader duty: it archives the backlog (once the schema is
// current) until ctx ends. The leadership loop runs it while this node
// leads.
func (s *Service) Run(ctx context.Context) {
	a := &archiver{deps: s.deps, metrics: s.metrics, log: s.log.With("component", "archiver"), batch: s.cfg.BatchSize,
		poll: s.cfg.Poll, backoff: newBackoff(s.cfg.BackoffMin, s.cfg.BackoffMax), afterCommit: s.afterCommit}
	if s.pg != nil {
		select {
		case <-s.migrated:
		case <-ctx.Done():
			return
		}
		a.writer = s.pg
	}
	a.run(ctx)
}

// migrate applies the schema, retrying with backoff until it succeeds or
// ctx ends (false).
func (s *Service) migrate(ctx context.Context) bool {
	b := newBackoff(s.cfg.BackoffMin, s.cfg.BackoffMax)
	for {
		err := s.pool.With(ctx, func(conn *pgx.Conn) error {
			applied, err := migrations.Up(ctx, conn, migrations.Options{Logger: s.log})
			if err == nil && len(applied) == 0 {
				s.log.Info("audit archive schema is current")
			}
			return err
		})
		if err == nil {
			s.ready.Store(true)
			s.metrics.schema.Set(1)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		stage := stageMigrate
		var pgErr interface{ SQLState() string }
		if !errors.As(err, &pgErr) {
			stage = stageConnect
		}
		s.metrics.errors.WithLabelValues(stage).Inc()
		s.log.Warn("audit archive migrations failed; retrying", "stage", stage, "err", err)
		if !b.wait(ctx) {
			return false
		}
	}
}

// Ready reports whether the schema is current (List can answer).
func (s *Service) Ready() bool { return s.ready.Load() }

// List answers GET /audit from PostgreSQL.
func (s *Service) List(ctx context.Context, clusterID string, f registry.AuditFilter) ([]registry.AuditRecord, error) {
	if s.pg == nil || !s.ready.Load() {
		return nil, ErrNotReady
	}
	return s.pg.List(ctx, clusterID, f)
}

// Stop stops the migrations and closes the connections; the leadership
// loop has stopped Run before.
func (s *Service) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.pool != nil {
		s.pool.Close()
	}
}
