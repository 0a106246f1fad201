package pgserver_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/internal/jepsen/pgserver"
	"github.com/nexus/nexus/internal/pgtest"
)

// Start makes a server with the database the agents use, trusts the given
// subnet, and Close stops it, keeps its log and removes its directory.
func TestStartClose(t *testing.T) {
	if err := pgserver.Available(pgserver.BinDir()); err != nil {
		if pgtest.Required() {
			t.Fatal(err)
		}
		t.Skipf("skipping: %v", err)
	}
	// Under /tmp itself: the postgres user must traverse the parent of its
	// directory (t.TempDir's parents are private).
	dir, err := os.MkdirTemp("", "pgserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Trust: "10.77.0.0/24", Database: pgserver.Database, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	url, local := s.URL(pgserver.Database), s.LocalURL(pgserver.Database)
	if !strings.Contains(url, "127.0.0.1") || !strings.HasSuffix(local, "/"+pgserver.Database+"?sslmode=disable") {
		t.Errorf("URLs %s %s", url, local)
	}
	conn, err := pgx.Connect(ctx, local)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_hba_file_rules WHERE address = '10.77.0.0' AND netmask = '255.255.255.0'").Scan(&n); err != nil || n != 1 {
		t.Errorf("pg_hba rule for the node subnet: %d (%v)", n, err)
	}
	conn.Close(ctx)
	log := filepath.Join(t.TempDir(), "postgres.log")
	s.Close(ctx, log)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory left: %v", err)
	}
	if st, err := os.Stat(log); err != nil || st.Size() == 0 {
		t.Errorf("log not kept: %v", err)
	}
}
