package runner

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRunShort runs the whole harness briefly: both workloads, kill and
// partition faults, three nodes. It must finish with a valid verdict and
// write every output file.
func TestRunShort(t *testing.T) {
	topo, bin := inside(t, 3)
	if topo == nil {
		return
	}
	out := t.TempDir()
	cfg := Config{Binary: bin, OutDir: out, Workloads: "register,set", Nemesis: "kill,partition",
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
	for _, f := range []string{FileHistory, FileTimeline, FileSummary, FileRegister, "nodes/node1/agent.log"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "nodes/node1/data")); !os.IsNotExist(err) {
		t.Errorf("data dir kept without KeepData: %v", err)
	}
}
