package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/jepsen/checker"
	"github.com/nexus/nexus/internal/jepsen/history"
	"github.com/nexus/nexus/internal/jepsen/runner"
	"github.com/nexus/nexus/internal/jepsen/workload"
)

func TestInnerArgsRoundTrip(t *testing.T) {
	t.Parallel()
	var f runFlags
	fs := newFlagSet("run", &bytes.Buffer{})
	f.register(fs)
	if err := fs.Parse([]string{"--nexus", "/x/nexus", "--nodes", "3", "--nemesis", "kill,pause", "--time", "2m",
		"--seed", "9", "--agent-arg=--log-level=debug", "--agent-arg", "--apply-timeout=5s", "--keep-data"}); err != nil {
		t.Fatal(err)
	}
	f.cfg.OutDir = "o"
	if err := f.finish(); err != nil {
		t.Fatal(err)
	}
	var g runFlags
	gs := newFlagSet(innerCommand, &bytes.Buffer{})
	g.register(gs)
	gs.StringVar(&g.cfg.OutDir, "out", "", "")
	if err := gs.Parse(f.innerArgs("o")); err != nil {
		t.Fatal(err)
	}
	if err := g.finish(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.cfg, g.cfg) || f.nodes != g.nodes {
		t.Fatalf("round trip:\n%+v\n%+v", f.cfg, g.cfg)
	}
	if g.cfg.Duration != 2*time.Minute || !g.cfg.KeepData || len(g.cfg.AgentArgs) != 2 {
		t.Fatalf("parsed %+v", g.cfg)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--nemesis", "bogus"}, "unknown nemesis"},
		{[]string{"run", "--workload", "register,audit,bogus"}, "unknown workload"},
		{[]string{"run", "--workload", "register", "--unsafe-audit-drop"}, "needs the audit workload"},
		{[]string{"run", "--workload", "register,set", "--lock-unsafe"}, "needs the lock workload"},
		{[]string{"run", "--nodes", "12"}, "--nodes 12"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"campaign", "--nemeses", "kill,nope"}, "unknown nemesis"},
	}
	for _, tc := range tests {
		var out, errw bytes.Buffer
		if code := run(tc.args, &out, &errw); code != exitUsage || !strings.Contains(errw.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errw.String(), exitUsage, tc.want)
		}
	}
}

func TestCampaignTable(t *testing.T) {
	t.Parallel()
	rs := []campaignRun{
		{Nemesis: "kill", Dir: "c/kill-01", Verdict: runner.VerdictValid, Ops: 100, OK: 90, Fail: 8, Info: 2, Avail: 0.9, AvailF: 0.8, Faults: 3, Lin: "ok"},
		{Nemesis: "kill", Dir: "c/kill-02", Verdict: runner.VerdictInvalid, Ops: 100, OK: 80, Fail: 20, Avail: 0.7, AvailF: 0.6, Faults: 3, Lost: 2, Reasons: []string{"set: lost"}},
		{Nemesis: "all", Dir: "c/all-01", Verdict: runner.VerdictValid, Ops: 10, OK: 10, Avail: 1, AvailF: 1},
	}
	s := campaignTable(rs, time.Minute)
	for _, want := range []string{"| kill | 2 | 1 | 200 | 170 | 28 | 2 | 6 | 0.800 | 0.700 | 2 | 0 |", "| all | 1 | 1 |", "| kill-02 | invalid |", "set: lost"} {
		if !strings.Contains(s, want) {
			t.Fatalf("table lacks %q:\n%s", want, s)
		}
	}
}

// --workload audit is a workload like the others: accepted, carried to the
// inner process.
func TestAuditWorkloadFlags(t *testing.T) {
	t.Parallel()
	f := parseRunFlags(t, "--workload", "register,set,audit", "--nemesis", "kill", "--unsafe-audit-drop")
	ws, _, err := f.cfg.Validate()
	if err != nil || len(ws) != 3 || ws[2].Name() != "audit" {
		t.Fatalf("workloads %v, %v", ws, err)
	}
	if a, ok := ws[2].(workload.ArchiveUser); !ok || !a.NeedsArchive() {
		t.Fatal("the audit workload does not ask for the archive")
	}
	g, err := innerRoundTrip(f)
	if err != nil || g.cfg.Workloads != "register,set,audit" || !g.cfg.UnsafeAuditDrop {
		t.Fatalf("inner workloads %q, unsafe drop %v (%v)", g.cfg.Workloads, g.cfg.UnsafeAuditDrop, err)
	}
	if ws, _, _ := g.cfg.Validate(); !ws[2].(*workload.Audit).UnsafeDrop {
		t.Fatal("--unsafe-audit-drop did not reach the workload")
	}
}

// `check DIR` re-checks a recorded audit run from history.jsonl and the
// archive files: exit 0 when every acknowledged write has its row, 1 when
// one is lost, 1 when the archive was never read.
func TestCheckAuditRun(t *testing.T) {
	t.Parallel()
	ops := []history.Op{
		{Index: 0, Workload: "audit", F: history.FWrite, Type: history.OK, Key: "jepsen/audit/k1", Value: 1, ReqID: "jp-x-1", Complete: 10},
		{Index: 1, Workload: "audit", F: history.FBatch, Type: history.OK, Keys: []string{"jepsen/audit/k2", "jepsen/audit/k1"},
			Values: []int64{2, 3}, ReqID: "jp-x-2", Complete: 20},
		{Index: 2, Workload: "audit", F: history.FWrite, Type: history.Fail, Code: "no_leader", Key: "jepsen/audit/k1", Value: 4, ReqID: "jp-x-3", Complete: 30},
		{Index: 3, Workload: "audit", F: history.FArchiveRead, Type: history.OK, Final: true, Value: 3, Complete: 40},
	}
	row := func(idx int64, pos int32, key string, v string, req string) checker.AuditRow {
		return checker.AuditRow{ClusterID: "c", RaftIndex: idx, Position: pos, Actor: "anonymous", Action: "config set",
			ResourceType: "config", Resource: key, Node: "n1", RequestID: req, Value: v}
	}
	good := []checker.AuditRow{row(5, 0, "jepsen/audit/k1", "1", "jp-x-1"), row(6, 0, "jepsen/audit/k2", "2", "jp-x-2"),
		row(6, 1, "jepsen/audit/k1", "3", "jp-x-2")}
	write := func(rows []checker.AuditRow, withArchive bool) string {
		dir := writeRun(t, ops)
		if withArchive {
			ar := &checker.AuditArchive{Archiving: true, Watermark: checker.AuditKey{RaftIndex: 6, Position: 1}, Rows: rows}
			if err := workload.WriteArchive(dir, ar); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, tc := range []struct {
		name        string
		rows        []checker.AuditRow
		withArchive bool
		code        int
		want        string
	}{
		{"valid", good, true, exitValid, `"archived_ok": 2`},
		{"lost write", good[1:], true, exitInvalid, `"lost": 1`},
		{"row for a failed write", append(good[:3:3], row(7, 0, "jepsen/audit/k1", "4", "jp-x-3")), true, exitInvalid, "failed-archived"},
		{"archive never read", nil, false, exitInvalid, "no-final-read"},
	} {
		var out, errw bytes.Buffer
		if code := run([]string{"check", write(tc.rows, tc.withArchive)}, &out, &errw); code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: exit %d (want %d), output lacks %q:\n%s%s", tc.name, code, tc.code, tc.want, out.String(), errw.String())
		}
	}
}

func TestCampaignTableAudit(t *testing.T) {
	t.Parallel()
	rs := []campaignRun{
		{Nemesis: "kill", Dir: "c/kill-01", Verdict: runner.VerdictValid, Ops: 100, OK: 90, Fail: 8, Info: 2, Avail: 0.9, AvailF: 0.8,
			Audit: &runner.AuditCounts{Rows: 120, ArchivedOK: 60}},
		{Nemesis: "kill", Dir: "c/kill-02", Verdict: runner.VerdictInvalid, Ops: 100, OK: 80, Fail: 20, Avail: 0.7, AvailF: 0.6,
			Audit: &runner.AuditCounts{Rows: 100, ArchivedOK: 50, Lost: 1}, Reasons: []string{"audit: lost"}},
		{Nemesis: "pause", Dir: "c/pause-01", Verdict: runner.VerdictValid, Ops: 10, OK: 10, Avail: 1, AvailF: 1},
	}
	s := campaignTable(rs, time.Minute)
	for _, want := range []string{"audit lost |", "| kill | 2 | 1 | 200 | 170 | 28 | 2 | 0 | 0.800 | 0.700 | 0 | 0 | 220 | 110 | 1 | 0 | 0 |",
		"| pause | 1 | 1 | 10 | 10 | 0 | 0 | 0 | 1.000 | 1.000 | 0 | 0 | - | - | - | - | - |", "| kill-02 | invalid | 100 | 80/20/0 | 0 | 0.700 (0.600) |  | 0 | 100 / 50 / 1 / 0 / 0 | audit: lost |"} {
		if !strings.Contains(s, want) {
			t.Fatalf("table lacks %q:\n%s", want, s)
		}
	}
}

// TestReportMergesCampaigns: `report` sums the runs of several campaign
// folders per nemesis, labels runs with their campaign, and exits 1 when
// any run is invalid.
func TestReportMergesCampaigns(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write := func(name string, rs []campaignRun) string {
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(rs)
		if err := os.WriteFile(filepath.Join(d, "campaign.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := write("a", []campaignRun{
		{Nemesis: "kill", Dir: "x/a/kill-01", Verdict: runner.VerdictValid, Ops: 100, OK: 90, Fail: 10, Avail: 0.9, AvailF: 0.8, Version: "nexus v1"},
	})
	b := write("b", []campaignRun{
		{Nemesis: "kill", Dir: "y/b/kill-01", Verdict: runner.VerdictValid, Ops: 50, OK: 50, Avail: 0.7, AvailF: 0.6, Version: "nexus v2"},
		{Nemesis: "pause", Dir: "y/b/pause-01", Verdict: runner.VerdictValid, Ops: 10, OK: 10, Avail: 1, AvailF: 1, Version: "nexus v2"},
	})
	var out, errw bytes.Buffer
	if code := run([]string{"report", a, b}, &out, &errw); code != exitValid {
		t.Fatalf("exit %d: %s", code, errw.String())
	}
	for _, want := range []string{"Report: 3 runs", "nexus v1, nexus v2", "| kill | 2 | 2 | 150 | 140 | 10 | 0 | 0 | 0.800 | 0.700 | 0 | 0 |",
		"| pause | 1 | 1 |", "| a/kill-01 | valid |", "| b/kill-01 | valid |"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q:\n%s", want, out.String())
		}
	}
	c := write("c", []campaignRun{{Nemesis: "all", Dir: "c/all-01", Verdict: runner.VerdictInvalid, Lost: 1}})
	if code := run([]string{"report", a, c}, &out, &errw); code != exitInvalid {
		t.Fatalf("report over an invalid run: exit %d", code)
	}
	if code := run([]string{"report", filepath.Join(root, "missing")}, &out, &errw); code == exitValid {
		t.Fatal("report over a missing campaign exited 0")
	}
	if code := run([]string{"report"}, &out, &errw); code != exitUsage {
		t.Fatalf("report without folders: exit %d", code)
	}
}

// --lock-unsafe reaches the lock workload of the inner process.
func TestLockWorkloadFlags(t *testing.T) {
	t.Parallel()
	f := parseRunFlags(t, "--workload", "lock", "--nemesis", "pause", "--lock-unsafe")
	if g, err := innerRoundTrip(f); err != nil || !g.cfg.UnsafeLock {
		t.Fatalf("inner flags %+v (%v)", g, err)
	} else if ws, _, _ := g.cfg.Validate(); len(ws) != 1 || !ws[0].(*workload.Lock).Unsafe {
		t.Fatal("--lock-unsafe did not reach the workload")
	}
}

// `check DIR` re-checks a recorded lock run: exit 0 for a correct history,
// 1 when two acknowledged increments wrote the same value.
func TestCheckLockRun(t *testing.T) {
	t.Parallel()
	incr := func(i int, value int64, raft uint64) history.Op {
		return history.Op{Index: i, Workload: "lock", F: history.FIncr, Type: history.OK, Key: workload.CounterKey, Session: "S1",
			Holder: "S1", LockIndex: 1, Value: value, ModIndex: raft, Complete: int64(10 * i)}
	}
	for _, tc := range []struct {
		name  string
		ops   []history.Op
		final int64
		code  int
		want  string
	}{
		{"valid", []history.Op{incr(1, 1, 11), incr(2, 2, 12)}, 2, exitValid, `"acked": 2`},
		{"doubled", []history.Op{incr(1, 1, 11), incr(2, 1, 12)}, 1, exitInvalid, `"doubled": 1`},
	} {
		ops := append([]history.Op{{Index: 0, Workload: "lock", F: history.FAcquire, Type: history.OK, Key: workload.LockKey,
			Session: "S1", Holder: "S1", Acquired: true, LockIndex: 1, ModIndex: 10}}, tc.ops...)
		ops = append(ops, history.Op{Index: len(ops), Workload: "lock", F: history.FRead, Type: history.OK, Key: workload.CounterKey,
			Final: true, Present: true, Read: tc.final, Complete: 100})
		dir := writeRun(t, ops)
		var out, errw bytes.Buffer
		if code := run([]string{"check", dir}, &out, &errw); code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: exit %d (want %d), output lacks %q:\n%s%s", tc.name, code, tc.code, tc.want, out.String(), errw.String())
		}
	}
}

func TestCampaignTableLock(t *testing.T) {
	t.Parallel()
	rs := []campaignRun{
		{Nemesis: "pause", Dir: "c/pause-01", Verdict: runner.VerdictValid, Ops: 100, OK: 90, Fail: 8, Info: 2, Avail: 0.9, AvailF: 0.8,
			Lock: &runner.LockCounts{Acked: 50, Indeterminate: 2, FencedOut: 1, Final: 51, Handovers: 20}},
		{Nemesis: "pause", Dir: "c/pause-02", Verdict: runner.VerdictInvalid, Ops: 100, OK: 80, Fail: 20, Avail: 0.7, AvailF: 0.6,
			Lock: &runner.LockCounts{Acked: 40, Final: 38, Handovers: 10, Anomalies: 3}, Reasons: []string{"lock: doubled"}},
		{Nemesis: "kill", Dir: "c/kill-01", Verdict: runner.VerdictValid, Ops: 10, OK: 10, Avail: 1, AvailF: 1},
	}
	s := campaignTable(rs, time.Minute)
	for _, want := range []string{"lock fenced out |", "| pause | 2 | 1 | 200 | 170 | 28 | 2 | 0 | 0.800 | 0.700 | 0 | 0 | 90 | 2 | 1 | 30 | 3 |",
		"| kill | 1 | 1 | 10 | 10 | 0 | 0 | 0 | 1.000 | 1.000 | 0 | 0 | - | - | - | - | - |",
		"| pause-02 | invalid | 100 | 80/20/0 | 0 | 0.700 (0.600) |  | 0 | 40 / 0 / 38 / 3 | lock: doubled |"} {
		if !strings.Contains(s, want) {
			t.Fatalf("table lacks %q:\n%s", want, s)
		}
	}
}

// innerRoundTrip parses f's inner-process arguments as the inner process
// does.
func innerRoundTrip(f *runFlags) (*runFlags, error) {
	var g runFlags
	gs := newFlagSet(innerCommand, &bytes.Buffer{})
	g.register(gs)
	gs.StringVar(&g.cfg.OutDir, "out", "", "")
	if err := gs.Parse(f.innerArgs("o")); err != nil {
		return nil, err
	}
	return &g, g.finish()
}

// parseRunFlags parses the flags of `run` (with --out o), failing t on
// an error.
func parseRunFlags(t *testing.T, args ...string) *runFlags {
	t.Helper()
	var f runFlags
	fs := newFlagSet("run", &bytes.Buffer{})
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	f.cfg.OutDir = "o"
	if err := f.finish(); err != nil {
		t.Fatal(err)
	}
	return &f
}

// writeRun writes a run folder with ops as its history and an empty
// timeline.
func writeRun(t *testing.T, ops []history.Op) string {
	t.Helper()
	dir := t.TempDir()
	var hb bytes.Buffer
	for _, op := range ops {
		b, _ := json.Marshal(op)
		hb.Write(append(b, '\n'))
	}
	if err := os.WriteFile(filepath.Join(dir, runner.FileHistory), hb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, runner.FileTimeline), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
