package runner

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/jepsen/pgserver"
	"github.com/nexus/nexus/internal/jepsen/workload"
	"github.com/nexus/nexus/internal/pgtest"
)

// TestRunShort runs the whole harness briefly: every workload (audit when
// PostgreSQL is installed; required under CI=true or
// NEXUS_PGTEST_REQUIRED=1), kill and partition faults, three nodes. It must
// finish with a valid verdict and write every output file.
func TestRunShort(t *testing.T) {
	topo, bin := inside(t, 3)
	if topo == nil {
		return
	}
	out := t.TempDir()
	workloads, files := "register,set,audit,lock", []string{FilePostgres, workload.FileAuditArchive, workload.FileAuditEvents}
	if err := pgserver.Available(pgserver.BinDir()); err != nil {
		if pgtest.Required() {
			t.Fatal(err)
		}
		t.Logf("without the audit workload: %v", err)
		workloads, files = "register,set,lock", nil
	}
	cfg := Config{Binary: bin, OutDir: out, Workloads: workloads, Nemesis: "kill,partition",
		Duration: 25 * time.Second, Clients: 4, FaultFor: 4 * time.Second, QuietFor: 3 * time.Second, Seed: 7}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sum, err := Run(ctx, topo, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Valid {
		t.Fatalf("verdict %s: %v (errors %v); output in %s", sum.Verdict, sum.Reasons, sum.Errors, out)
	}
	if sum.Counts.OK == 0 || sum.Schedule.Faults["kill"] == 0 || sum.Schedule.Faults["partition"] == 0 {
		t.Fatalf("too little happened: counts %+v faults %v", sum.Counts, sum.Schedule.Faults)
	}
	if sum.Lock == nil || sum.Lock.Acked == 0 || sum.Lock.Handovers < 2 || sum.Lock.Final < int64(sum.Lock.Acked) {
		t.Fatalf("lock: %+v", sum.Lock)
	}
	if files != nil && (sum.Audit == nil || sum.Audit.ArchivedOK == 0 || sum.Audit.Rows < sum.Audit.ArchivedOK) {
		t.Fatalf("audit: %+v", sum.Audit)
	}
	for _, f := range append([]string{FileHistory, FileTimeline, FileSummary, FileRegister, "nodes/node1/agent.log"}, files...) {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "nodes/node1/data")); !os.IsNotExist(err) {
		t.Errorf("data dir kept without KeepData: %v", err)
	}
}
