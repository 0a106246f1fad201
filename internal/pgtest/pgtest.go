// Package pgtest runs throwaway PostgreSQL servers for tests: a thin
// testing.TB wrapper over internal/jepsen/pgserver (initdb into a fresh
// directory, pg_ctl start on a free port of 127.0.0.1, as the postgres user
// when the test runs as root), stopped and removed at the end of the test.
//
// The binaries are looked up in $NEXUS_PG_BIN, else /usr/lib/postgresql/15/bin.
// When they are missing, StartT skips the test with a clear message — except
// under CI=true or NEXUS_PGTEST_REQUIRED=1, where it fails it.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/jepsen/pgserver"
)

// Options of a server.
type Options struct {
	// BinDir holds initdb, pg_ctl and postgres (default $NEXUS_PG_BIN or
	// pgserver.DefaultBinDir).
	BinDir string
	// Durable keeps fsync on (for measurements); tests run without it.
	Durable bool
	// Logf receives start/stop events (default: the test's Logf).
	Logf func(format string, args ...any)
}

// Server is one running (or stopped) PostgreSQL server.
type Server struct {
	srv   *pgserver.Server
	Port  int
	dbSeq atomic.Int64
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
	if opts.BinDir == "" {
		opts.BinDir = pgserver.BinDir()
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	if err := pgserver.Available(opts.BinDir); err != nil {
		if Required() {
			t.Fatalf("PostgreSQL is not installed: %v (required: CI=true or NEXUS_PGTEST_REQUIRED=1)", err)
		}
		t.Skipf("PostgreSQL is not installed: %v", err)
	}
	// Not t.TempDir: the postgres user must traverse its parents.
	root, err := os.MkdirTemp("", "nexus-pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	srv, err := pgserver.Start(context.Background(), pgserver.Options{Dir: root, BinDir: opts.BinDir, Durable: opts.Durable, Logf: opts.Logf})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s := &Server{srv: srv, Port: srv.Port}
	t.Cleanup(s.Close)
	return s
}

// Start starts a stopped server on its port (a restart after Stop).
func (s *Server) Start() error { return s.srv.Start(context.Background()) }

// Stop stops the server (fast shutdown: open sessions are cut).
func (s *Server) Stop() error { return s.srv.Stop(context.Background()) }

// Close stops the server and removes its files.
func (s *Server) Close() { s.srv.Close(context.Background(), "") }

// URL returns the connection URL of database db.
func (s *Server) URL(db string) string { return s.srv.LocalURL(db) }

// NewDB creates a fresh database for a test and returns its URL.
func (s *Server) NewDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.srv.CreateDB(ctx, name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s.URL(name)
}
