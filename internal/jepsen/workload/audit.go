package workload

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexus/nexus/internal/jepsen/checker"
	"github.com/nexus/nexus/internal/jepsen/client"
	"github.com/nexus/nexus/internal/jepsen/history"
)

// Output files of the audit workload (in the run's folder).
const (
	// FileAuditArchive is the archive's state when it was read (watermark,
	// backlog, counters): checker.AuditArchive as JSON.
	FileAuditArchive = "audit-archive.json"
	// FileAuditEvents holds the rows of audit_events, one JSON object per
	// line, in (cluster_id, raft_index, position) order.
	FileAuditEvents = "audit-events.jsonl"
)

// Audit checks the PostgreSQL audit archive (docs/audit.md): clients make
// config writes — single keys (PUT /config/{key}) and atomic batches of 2-4
// keys (POST /config with entries, one Raft entry, one record per key) —
// each with a unique value and a unique X-Request-ID; after healing, once
// the archive caught up, every acknowledged write must have exactly one
// audit_events row per key, a write whose outcome is unknown all or none, a
// failed write none, and nothing else may carry the workloads' keys or
// request ids (checker.CheckAudit, which also checks the register and set
// workloads' writes when they run alongside).
//
// The runner starts PostgreSQL in the harness namespace and passes
// --postgres-url to every agent (NeedsArchive); Prepare waits until the
// cluster archives before the clients start.
type Audit struct {
	Keys       int           // keys written (default 8)
	Think      time.Duration // mean think time (default 20ms)
	BatchRatio float64       // share of atomic batches (default 0.25)
	MaxBatch   int           // keys per batch, at most (default 4)
	// UnsafeDrop sets the cluster's backlog to max_records=1 with
	// on_full=drop_oldest before the clients start: records are dropped
	// before they are archived, so the run must fail (lost rows,
	// records-dropped). It shows that the checker catches a lossy archive
	// end to end; never evidence about Nexus.
	UnsafeDrop bool

	values atomic.Int64

	mu      sync.Mutex
	archive *checker.AuditArchive
	result  *checker.AuditResult
}

// ArchiveUser is a workload that needs the PostgreSQL audit archive: the
// runner starts PostgreSQL, passes --postgres-url to every agent and
// Env.PostgresURL to the workload.
type ArchiveUser interface {
	NeedsArchive() bool
}

// Preparer is a workload that waits for something after the cluster is
// ready and before the clients start.
type Preparer interface {
	Prepare(ctx context.Context, env *Env) error
}

var (
	_ ArchiveUser = (*Audit)(nil)
	_ Preparer    = (*Audit)(nil)
)

// Name implements Workload.
func (*Audit) Name() string { return NameAudit }

// NeedsArchive implements ArchiveUser.
func (*Audit) NeedsArchive() bool { return true }

func (w *Audit) defaults() {
	if w.Keys <= 0 {
		w.Keys = 8
	}
	if w.Think <= 0 {
		w.Think = 20 * time.Millisecond
	}
	if w.BatchRatio <= 0 {
		w.BatchRatio = 0.25
	}
	if w.MaxBatch < 2 {
		w.MaxBatch = 4
	}
}

// AuditKey is the config key k of the audit workload.
func AuditKey(k int) string { return fmt.Sprintf("jepsen/audit/k%d", k) }

// Prepare implements Preparer: it waits until the cluster archives (an
// archiver attached), so that no record of the run lives only in the ring
// the backlog is before that.
func (w *Audit) Prepare(ctx context.Context, env *Env) error {
	var last string
	for attempt := 0; ; attempt++ {
		n := env.Nodes[attempt%len(env.Nodes)]
		st, err := env.Client.AuditSettings(ctx, n.HTTPAddr)
		switch {
		case err != nil:
			last = err.Error()
		case st.Archiving && st.Attached && w.UnsafeDrop && st.OnFull != "drop_oldest":
			if err := env.Client.SetAuditSettings(ctx, n.HTTPAddr, []byte(`{"max_records":1,"on_full":"drop_oldest"}`)); err != nil {
				last = err.Error()
			} else {
				env.Logf("audit: UNSAFE: backlog set to max_records=1, on_full=drop_oldest (this run must fail)")
			}
		case st.Archiving && st.Attached:
			env.Logf("audit: the cluster archives (watermark %d/%d, on_full %s)", st.Watermark.RaftIndex, st.Watermark.Position, st.OnFull)
			return nil
		default:
			last = fmt.Sprintf("%s: archiving=%v attached=%v archive=%s", n.Name, st.Archiving, st.Attached, st.Archive)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the audit archive never attached (can the nodes reach PostgreSQL? see the agent logs): %s", last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Run implements Workload.
func (w *Audit) Run(ctx context.Context, env *Env) {
	w.defaults()
	runClients(ctx, env, w.client)
}

func (w *Audit) client(ctx context.Context, env *Env, k int) {
	rng := clientRand(env.Seed, NameAudit, k)
	node := env.Nodes[k%len(env.Nodes)]
	proc := env.Rec.NewProcess()
	opctx := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		op := history.Op{Process: proc, Workload: NameAudit, Node: node.Name}
		if rng.Float64() < w.BatchRatio {
			n := 2 + rng.IntN(w.MaxBatch-1)
			for _, i := range rng.Perm(w.Keys)[:min(n, w.Keys)] {
				op.Keys = append(op.Keys, AuditKey(i))
				op.Values = append(op.Values, w.values.Add(1))
			}
			op.F = history.FBatch
			op.Invoke = env.Rec.Now()
			op = recordBatch(env.Rec, op, env.Client.WriteConfigBatch(opctx, node.HTTPAddr, op.Keys, op.Values))
		} else {
			op.F, op.Key, op.Value = history.FWrite, AuditKey(rng.IntN(w.Keys)), w.values.Add(1)
			op.Invoke = env.Rec.Now()
			op = recordConfig(env.Rec, op, env.Client.WriteConfig(opctx, node.HTTPAddr, op.Key, op.Value))
		}
		if op.Type == history.Info {
			proc = env.Rec.NewProcess()
		}
		pause(ctx, backoff(rng, op.Type, 2*w.Think))
	}
}

// recordBatch records a batch with its result; an acknowledged batch whose
// answer shows other keys or values keeps a note in Error.
func recordBatch(rec *history.Recorder, op history.Op, r client.BatchResult) history.Op {
	if r.Type == history.OK && len(r.Entries) > 0 {
		op.ModIndex = r.Entries[0].ModifyIndex
		if len(r.Entries) != len(op.Keys) {
			op.Error = fmt.Sprintf("acknowledged with %d entries for %d keys", len(r.Entries), len(op.Keys))
		}
		for i := range r.Entries {
			if i >= len(op.Keys) {
				break
			}
			if v, err := r.Entries[i].IntValue(); err != nil || r.Entries[i].Key != op.Keys[i] || v != op.Values[i] {
				op.Error = fmt.Sprintf("acknowledged entry %d holds %s=%s, not the value written", i, r.Entries[i].Key, r.Entries[i].Value)
				break
			}
		}
	}
	return record(rec, op, r.Result)
}

// Final implements Workload: it waits until the archive holds every record
// that existed when the wait began (the watermark passes the newest record
// of a linearizable GET /audit/settings, which covers every acknowledged
// write), then reads audit_events. It records the read as an archive-read
// op.
func (w *Audit) Final(ctx context.Context, env *Env) error {
	proc := env.Rec.NewProcess()
	op := history.Op{Process: proc, Workload: NameAudit, F: history.FArchiveRead, Final: true, Invoke: env.Rec.Now()}
	ar, drainErr := w.drain(ctx, env)
	rows, err := readRows(ctx, env.PostgresURL)
	op.Complete = env.Rec.Now()
	if err != nil {
		op.Type, op.Error = history.Fail, err.Error()
		env.Rec.Add(op)
		return fmt.Errorf("reading audit_events: %w", errors.Join(drainErr, err))
	}
	ar.Rows = rows
	op.Type, op.Value = history.OK, int64(len(rows))
	if drainErr != nil {
		op.Error = drainErr.Error()
	}
	env.Rec.Add(op)
	w.mu.Lock()
	w.archive = ar
	w.mu.Unlock()
	env.Logf("audit: read %d rows of audit_events (watermark %d/%d, backlog %d)", len(rows), ar.Watermark.RaftIndex, ar.Watermark.Position, ar.Backlog)
	return drainErr
}

// drain waits until the watermark reaches the newest record as of its first
// answer (or the backlog is empty), retrying across nodes until ctx is
// done. It returns the last state seen.
func (w *Audit) drain(ctx context.Context, env *Env) (*checker.AuditArchive, error) {
	ar := &checker.AuditArchive{}
	var target *client.AuditKey
	var last string
	for attempt := 0; ; attempt++ {
		n := env.Nodes[attempt%len(env.Nodes)]
		st, err := env.Client.AuditSettings(ctx, n.HTTPAddr)
		if err != nil {
			last = err.Error()
		} else {
			if target == nil && st.Archiving {
				t := st.Backlog.Newest
				target = &t
				ar.Target = checker.AuditKey{RaftIndex: int64(t.RaftIndex), Position: int32(t.Position)}
			}
			*ar = checker.AuditArchive{Archiving: st.Archiving, Backlog: st.Backlog.Records, Target: ar.Target,
				Watermark: checker.AuditKey{RaftIndex: int64(st.Watermark.RaftIndex), Position: int32(st.Watermark.Position)},
				Newest:    checker.AuditKey{RaftIndex: int64(st.Backlog.Newest.RaftIndex), Position: int32(st.Backlog.Newest.Position)},
				Dropped:   st.Backlog.Dropped, Evicted: st.Backlog.Evicted}
			last = fmt.Sprintf("%s: archiving=%v backlog=%d watermark=%d/%d newest=%d/%d", n.Name, st.Archiving, st.Backlog.Records,
				st.Watermark.RaftIndex, st.Watermark.Position, st.Backlog.Newest.RaftIndex, st.Backlog.Newest.Position)
			if st.Archiving && (st.Backlog.Records == 0 || !st.Watermark.Less(*target)) {
				return ar, nil
			}
		}
		select {
		case <-ctx.Done():
			return ar, fmt.Errorf("the archive did not catch up: %s", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// readRows reads every row of audit_events, retrying until ctx is done.
func readRows(ctx context.Context, url string) ([]checker.AuditRow, error) {
	if url == "" {
		return nil, errors.New("no PostgreSQL URL (the runner did not start the archive)")
	}
	for {
		rows, err := queryRows(ctx, url)
		if err == nil {
			return rows, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Second):
		}
	}
}

func queryRows(ctx context.Context, url string) ([]checker.AuditRow, error) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(qctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(qctx, `SELECT cluster_id, raft_index, position, actor, action, resource_type, resource, node, request_id,
		CASE WHEN resource_type = 'config' THEN COALESCE((after -> 'value')::text, '') ELSE '' END
		FROM audit_events ORDER BY cluster_id, raft_index, position`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []checker.AuditRow{}
	for rows.Next() {
		var r checker.AuditRow
		if err := rows.Scan(&r.ClusterID, &r.RaftIndex, &r.Position, &r.Actor, &r.Action, &r.ResourceType, &r.Resource,
			&r.Node, &r.RequestID, &r.Value); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Check implements Workload.
func (w *Audit) Check(ops []history.Op, _ CheckInput) Result {
	w.mu.Lock()
	ar := w.archive
	w.mu.Unlock()
	res := checker.CheckAudit(ops, ar)
	w.mu.Lock()
	w.result = res
	w.mu.Unlock()
	return AuditResult(res)
}

// AuditResult wraps a checker result as a workload Result.
func AuditResult(res *checker.AuditResult) Result {
	return Result{Workload: NameAudit, Valid: res.Valid, Details: res, Anomaly: res.Anomalies,
		Summary: fmt.Sprintf("rows=%d writes=%d (ok %d, info %d, fail %d) archived_ok=%d archived_info=%d lost=%d duplicated=%d unexpected=%d anomalies=%v",
			res.Rows, res.Writes.Total, res.Writes.OK, res.Writes.Info, res.Writes.Fail, res.ArchivedOK, res.ArchivedInfo,
			res.Lost, res.Duplicated, res.Unexpected, res.Counts)}
}

// WriteArtifacts implements Workload: the archive's state and its rows.
func (w *Audit) WriteArtifacts(dir string, _ CheckInput) error {
	w.mu.Lock()
	ar := w.archive
	w.mu.Unlock()
	if ar == nil {
		return nil
	}
	return WriteArchive(dir, ar)
}

// WriteArchive writes FileAuditArchive and FileAuditEvents into dir.
func WriteArchive(dir string, ar *checker.AuditArchive) error {
	b, err := json.MarshalIndent(ar, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, FileAuditArchive), append(b, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, FileAuditEvents))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	enc := json.NewEncoder(bw)
	for i := range ar.Rows {
		if err := enc.Encode(&ar.Rows[i]); err != nil {
			f.Close()
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadArchive reads what WriteArchive wrote (os.ErrNotExist when the run
// never read the archive).
func ReadArchive(dir string) (*checker.AuditArchive, error) {
	b, err := os.ReadFile(filepath.Join(dir, FileAuditArchive))
	if err != nil {
		return nil, err
	}
	ar := &checker.AuditArchive{}
	if err := json.Unmarshal(b, ar); err != nil {
		return nil, fmt.Errorf("%s: %w", FileAuditArchive, err)
	}
	f, err := os.Open(filepath.Join(dir, FileAuditEvents))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	ar.Rows = []checker.AuditRow{}
	for line := 1; sc.Scan(); line++ {
		var r checker.AuditRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", FileAuditEvents, line, err)
		}
		ar.Rows = append(ar.Rows, r)
	}
	return ar, sc.Err()
}
