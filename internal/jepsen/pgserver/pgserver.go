// Package pgserver runs a throwaway PostgreSQL 15: initdb, then pg_ctl start
// with the socket and data in a fresh directory on a free port; as root every
// server command runs as the "postgres" user through runuser, on a directory
// it owns. It is the one implementation behind internal/pgtest (tests, on
// 127.0.0.1) and the audit workload of nexus-jepsen, which also needs the
// server to listen on the harness namespace's bridge address, so that the
// agents in the node namespaces reach it, with pg_hba.conf trusting the node
// subnet.
//
// The harness starts it from inside its own namespace, so the server lives
// there: when a harness dies, removing its namespaces (netns.Topology.Close,
// netns.CleanStale) kills it and removes its directory (netns.ScratchDir).
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultBinDir is where Debian's postgresql-15 package puts the binaries
// ($NEXUS_PG_BIN overrides it).
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// Database is the database the agents archive to.
const Database = "nexus"

// Options of a server.
type Options struct {
	// Dir is the server's directory (created; removed by Close). Its parent
	// must be traversable by the postgres user (e.g. under /tmp).
	Dir string
	// Listen is the address the server listens on besides 127.0.0.1 (the
	// harness's bridge address); empty: 127.0.0.1 only.
	Listen string
	// Trust is the CIDR allowed to connect without a password besides
	// loopback (the node subnet, e.g. 10.77.0.0/24).
	Trust string
	// Database is created once the server is up (empty: none).
	Database string
	// Durable keeps fsync on (for measurements). Off by default: what runs
	// on these servers does not test PostgreSQL's durability, and fsync off
	// keeps them cheap on a shared machine.
	Durable bool
	// BinDir holds initdb, pg_ctl and postgres (default $NEXUS_PG_BIN or
	// DefaultBinDir).
	BinDir string
	// Logf receives start/stop events (nil: silent).
	Logf func(format string, args ...any)
}

// Server is one PostgreSQL server, running from Start until Stop or Close.
type Server struct {
	opts   Options
	data   string
	log    string
	listen string // listen_addresses
	Port   int
	asPG   bool
	mu     sync.Mutex // serializes Start and Stop
}

// BinDir returns the directory of the PostgreSQL binaries to use.
func BinDir() string {
	if d := os.Getenv("NEXUS_PG_BIN"); d != "" {
		return d
	}
	return DefaultBinDir
}

// Available reports whether the binaries exist in binDir, or why not.
func Available(binDir string) error {
	for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("pgserver: PostgreSQL binary %s not found in %s (apt-get install -y postgresql-15, or set NEXUS_PG_BIN)", b, binDir)
		}
	}
	return nil
}

// Start initializes and starts a server and creates opts.Database. On error
// it removes what it made.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.BinDir == "" {
		opts.BinDir = BinDir()
	}
	if opts.Dir == "" {
		return nil, errors.New("pgserver: Options.Dir is required")
	}
	if err := Available(opts.BinDir); err != nil {
		return nil, err
	}
	s := &Server{opts: opts, data: filepath.Join(opts.Dir, "data"), log: filepath.Join(opts.Dir, "postgres.log")}
	if err := s.init(ctx); err != nil {
		s.Close(ctx, "")
		return nil, err
	}
	return s, nil
}

func (s *Server) init(ctx context.Context) error {
	t0 := time.Now()
	if err := os.MkdirAll(s.opts.Dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(s.opts.Dir, 0o755); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("pgserver: running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.opts.Dir, uid, gid); err != nil {
			return err
		}
		s.asPG = true
	}
	if err := s.run(ctx, 2*time.Minute, "initdb", "-D", s.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--no-sync", "--no-instructions"); err != nil {
		return err
	}
	if s.opts.Trust != "" {
		// initdb -A trust covers local sockets and loopback; the agents
		// connect from the node subnet.
		f, err := os.OpenFile(filepath.Join(s.data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(f, "\n# nexus-jepsen: the agents in the node namespaces\nhost all all %s trust\n", s.opts.Trust)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	port, err := freePort(s.opts.Listen)
	if err != nil {
		return err
	}
	s.Port = port
	s.listen = "127.0.0.1"
	if s.opts.Listen != "" && s.opts.Listen != s.listen {
		s.listen += "," + s.opts.Listen
	}
	if err := s.pgCtlStart(ctx); err != nil {
		return err
	}
	if s.opts.Database != "" {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := s.CreateDB(cctx, s.opts.Database); err != nil {
			return err
		}
	}
	s.logStarted(t0)
	return nil
}

// Start starts the server again after Stop, on the same port.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running() {
		return nil
	}
	t0 := time.Now()
	if err := s.pgCtlStart(ctx); err != nil {
		return err
	}
	s.logStarted(t0)
	return nil
}

func (s *Server) pgCtlStart(ctx context.Context) error {
	o := fmt.Sprintf("-p %d -k %s -c listen_addresses=%s -c max_connections=200", s.Port, s.opts.Dir, s.listen)
	if !s.opts.Durable {
		o += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	return s.run(ctx, time.Minute, "pg_ctl", "-D", s.data, "-l", s.log, "-w", "-t", "60", "-o", o, "start")
}

func (s *Server) logStarted(t0 time.Time) {
	s.logf("pgserver: PostgreSQL started on %s port %d in %v (%s)", s.listen, s.Port, time.Since(t0).Round(time.Millisecond), s.opts.Dir)
}

// Stop stops the server (fast shutdown: open sessions are cut).
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return nil
	}
	if err := s.run(ctx, time.Minute, "pg_ctl", "-D", s.data, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		return err
	}
	s.logf("pgserver: PostgreSQL on port %d stopped", s.Port)
	return nil
}

// running reports whether a postmaster may be up. The pid file, not a flag,
// so that Close also stops a server whose start failed half-way.
func (s *Server) running() bool {
	_, err := os.Stat(filepath.Join(s.data, "postmaster.pid"))
	return err == nil
}

// Close stops the server (fast, then immediate), copies its log to keepLog
// when not empty, and removes its directory.
func (s *Server) Close(ctx context.Context, keepLog string) {
	if err := s.Stop(ctx); err != nil {
		s.logf("%v", err)
		_ = s.run(ctx, time.Minute, "pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop")
	}
	if keepLog != "" {
		if err := copyFile(s.log, keepLog); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.logf("pgserver: keeping the log: %v", err)
		}
	}
	_ = os.RemoveAll(s.opts.Dir)
}

func (s *Server) run(ctx context.Context, timeout time.Duration, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bin := filepath.Join(s.opts.BinDir, name)
	var cmd *exec.Cmd
	if s.asPG {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	cmd.Dir = s.opts.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgserver: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// CreateDB creates database name.
func (s *Server) CreateDB(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.LocalURL("postgres"))
	if err != nil {
		return fmt.Errorf("pgserver: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("pgserver: create database: %w", err)
	}
	return nil
}

// URL is the connection URL of database db through the listen address (for
// the agents).
func (s *Server) URL(db string) string {
	host := s.opts.Listen
	if host == "" {
		host = "127.0.0.1"
	}
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", net.JoinHostPort(host, strconv.Itoa(s.Port)), db)
}

// LocalURL is the connection URL of database db through loopback.
func (s *Server) LocalURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// freePort returns a port free on host (and on loopback).
func freePort(host string) (int, error) {
	if host == "" {
		host = "127.0.0.1"
	}
	for attempt := 0; attempt < 20; attempt++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if host == "127.0.0.1" {
			return port, nil
		}
		if lo, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			lo.Close()
			return port, nil
		}
	}
	return 0, errors.New("pgserver: no free port")
}
