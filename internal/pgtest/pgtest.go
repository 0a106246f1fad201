// Package pgtest runs throwaway PostgreSQL servers for tests: initdb into a
// fresh directory, pg_ctl start on a free port of 127.0.0.1 with the socket
// in the same directory, and stop plus removal at the end.
//
// PostgreSQL refuses to run as root: when the test runs as root, every
// server command runs as the "postgres" user (runuser -u postgres) on a
// directory owned by it.
//
// The binaries are looked up in $NEXUS_PG_BIN, else /usr/lib/postgresql/15/bin.
// When they are missing, StartT skips the test with a clear message — except
// under CI=true or NEXUS_PGTEST_REQUIRED=1, where it fails it.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultBinDir is where Debian's postgresql-15 package puts the binaries.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// Options of a server.
type Options struct {
	// BinDir holds initdb, pg_ctl and postgres (default $NEXUS_PG_BIN or
	// DefaultBinDir).
	BinDir string
	// Durable keeps fsync on (for measurements); tests run without it.
	Durable bool
	// Logf receives start/stop events (nil: silent).
	Logf func(format string, args ...any)
}

// Server is one running (or stopped) PostgreSQL server.
type Server struct {
	opts  Options
	root  string // removed by Close
	data  string
	sock  string
	log   string
	Port  int
	asPG  bool // run commands as the postgres user
	uid   int
	gid   int
	mu    sync.Mutex
	up    bool
	dbSeq atomic.Int64
}

// BinDir returns the directory of the PostgreSQL binaries in use.
func BinDir() string {
	if d := os.Getenv("NEXUS_PG_BIN"); d != "" {
		return d
	}
	return DefaultBinDir
}

// Available reports whether the binaries exist, or why not.
func Available(binDir string) error {
	for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("pgtest: PostgreSQL binary %s not found in %s (set NEXUS_PG_BIN or install postgresql-15)", b, binDir)
		}
	}
	return nil
}

// Required reports whether a missing PostgreSQL fails tests instead of
// skipping them (CI=true or NEXUS_PGTEST_REQUIRED=1).
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("NEXUS_PGTEST_REQUIRED") == "1"
}

// StartT starts a server for a test, or skips it when PostgreSQL is not
// installed (fails under Required). The server stops at the end of the test.
func StartT(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	s, err := New(opts)
	if errors.Is(err, errUnavailable) {
		if Required() {
			t.Fatalf("%v (required: CI=true or NEXUS_PGTEST_REQUIRED=1)", err)
		}
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

var errUnavailable = errors.New("PostgreSQL is not installed")

// New initializes and starts a server. Close stops it and removes its files.
func New(opts Options) (*Server, error) {
	if opts.BinDir == "" {
		opts.BinDir = BinDir()
	}
	if err := Available(opts.BinDir); err != nil {
		return nil, fmt.Errorf("%w: %v", errUnavailable, err)
	}
	root, err := os.MkdirTemp("", "nexus-pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, root: root, data: filepath.Join(root, "data"), sock: root, log: filepath.Join(root, "postgres.log")}
	if err := s.prepare(); err != nil {
		_ = os.RemoveAll(root)
		return nil, err
	}
	if err := s.initdb(); err != nil {
		_ = os.RemoveAll(root)
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		_ = os.RemoveAll(root)
		return nil, err
	}
	s.Port = port
	if err := s.Start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// prepare makes the directory usable by the server's user.
func (s *Server) prepare() error {
	if err := os.Chmod(s.root, 0o755); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("pgtest: running as root needs a postgres user: %w", err)
	}
	s.uid, _ = strconv.Atoi(u.Uid)
	s.gid, _ = strconv.Atoi(u.Gid)
	s.asPG = true
	return os.Chown(s.root, s.uid, s.gid)
}

func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	bin := filepath.Join(s.opts.BinDir, name)
	if s.asPG {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	}
	return exec.CommandContext(ctx, bin, args...)
}

func (s *Server) run(timeout time.Duration, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := s.command(ctx, name, args...)
	cmd.Dir = s.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func (s *Server) initdb() error {
	return s.run(2*time.Minute, "initdb", "-D", s.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions")
}

// Start starts a stopped server on its port (a restart after Stop).
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up {
		return nil
	}
	o := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", s.Port, s.sock)
	if !s.opts.Durable {
		o += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	if err := s.run(time.Minute, "pg_ctl", "-D", s.data, "-l", s.log, "-w", "-t", "60", "-o", o, "start"); err != nil {
		return err
	}
	s.up = true
	s.logf("pgtest: PostgreSQL started on 127.0.0.1:%d (%s)", s.Port, s.root)
	return nil
}

// Stop stops the server (fast shutdown: open sessions are cut).
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.up {
		return nil
	}
	err := s.run(time.Minute, "pg_ctl", "-D", s.data, "-m", "fast", "-w", "-t", "60", "stop")
	if err == nil {
		s.up = false
		s.logf("pgtest: PostgreSQL on port %d stopped", s.Port)
	}
	return err
}

// Close stops the server and removes its files.
func (s *Server) Close() {
	if err := s.Stop(); err != nil {
		s.logf("%v", err)
		_ = s.run(time.Minute, "pg_ctl", "-D", s.data, "-m", "immediate", "stop")
	}
	_ = os.RemoveAll(s.root)
}

// URL returns the connection URL of database db.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// CreateDB creates a database.
func (s *Server) CreateDB(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// NewDB creates a fresh database for a test and returns its URL.
func (s *Server) NewDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.CreateDB(ctx, name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.URL(name)
}

// Logs returns the server log.
func (s *Server) Logs() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
