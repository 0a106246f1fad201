package fsm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

func mustNewFSM(t testing.TB) *fsm.FSM {
	t.Helper()
	return fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: command.NewCodec()})
}

// fsmWritingFormat returns an FSM whose snapshots are in format.
func fsmWritingFormat(format int) *fsm.FSM { return writerOf(registry.NewStore(), format) }

// writerOf returns an FSM over store whose snapshots are in format.
func writerOf(store *registry.Store, format int) *fsm.FSM {
	return fsm.New(fsm.Deps{Store: store, Codec: command.NewCodec(), SnapshotFormat: func() int { return format }})
}

func u64(n uint64) *uint64 { return &n }
func intp(n int) *int      { return &n }

func meta(i int) command.Meta {
	// The proposer's clock travels in the command; Apply never reads it.
	return command.Meta{Actor: "tester", RequestID: fmt.Sprintf("req-%d", i), Node: "n1", Time: 1_700_000_000_000_000_000 + int64(i)}
}

// bigMeta returns a map with n keys, enough that Go's random map order
// would show in any encoding that does not sort keys.
func bigMeta(prefix string, n int) map[string]string {
	m := make(map[string]string, n)
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("%s-key-%02d", prefix, i)] = fmt.Sprintf("value-%d", i*7%n)
	}
	return m
}

func instance(service, id, typ string, port int) registry.Instance {
	return registry.Instance{
		ID: id, Service: service, Type: typ, Address: "10.0.0.1", Port: port,
		Tags: []string{"v1"}, Metadata: bigMeta(id, 40), Node: "n1", Status: registry.StatusPassing,
		Checks:    []registry.Check{{Kind: registry.CheckTTL, TTL: "10s", Status: registry.StatusPassing}},
		DependsOn: []string{},
	}
}

type cmd struct {
	t   command.Type
	msg any
}

// commandLog is a few dozen mixed commands, some of which fail on purpose
// (CAS conflicts, type conflict, not found, create-only conflict).
func commandLog() []cmd {
	route := func(id, svc string) registry.Route {
		r, e := registry.NormalizeRoute(registry.Route{ID: id, Service: svc, Hosts: []string{"api.example"},
			Methods: []string{"get", "post"}, Retries: intp(2), RateLimit: &registry.RateLimit{RPS: 50},
			Metadata: bigMeta("route-"+id, 30)})
		if e != nil {
			panic(e)
		}
		return r
	}
	var out []cmd
	add := func(t command.Type, msg any) { out = append(out, cmd{t, msg}) }
	i := 0
	next := func() command.Meta { i++; return meta(i) }

	add(command.TypeClusterInit, &command.ClusterInit{Meta: next(), ClusterID: "c-1", Secret: "s3cret"})
	add(command.TypeNoop, &command.Noop{Meta: next()})
	for n := 1; n <= 4; n++ {
		add(command.TypeRegisterInstance, &command.RegisterInstance{Meta: next(), Instance: instance("web", fmt.Sprintf("web-%d", n), "http", 9000+n)})
	}
	add(command.TypeRegisterInstance, &command.RegisterInstance{Meta: next(), Instance: instance("db", "db-1", "postgres", 5432)})
	add(command.TypeRegisterInstance, &command.RegisterInstance{Meta: next(), Instance: instance("web", "web-x", "grpc", 1)}) // type_conflict
	upd := instance("web", "web-2", "http", 9100)
	upd.Metadata = bigMeta("updated", 50)
	add(command.TypeRegisterInstance, &command.RegisterInstance{Meta: next(), Instance: upd}) // update
	add(command.TypeSetStatus, &command.SetStatus{Meta: next(), Service: "web", ID: "web-1", Status: registry.StatusCritical, Output: "ttl expired"})
	add(command.TypeSetStatus, &command.SetStatus{Meta: next(), Service: "web", ID: "nope", Status: registry.StatusCritical}) // not_found
	add(command.TypeConfigSet, &command.ConfigSet{Meta: next(), Entries: []command.ConfigOp{{Key: "app/a", Value: []byte(`1`), CAS: u64(0)}}})
	add(command.TypeConfigSet, &command.ConfigSet{Meta: next(), Entries: []command.ConfigOp{{Key: "app/a", Value: []byte(`2`), CAS: u64(0)}}}) // cas_conflict
	add(command.TypeConfigSet, &command.ConfigSet{Meta: next(), Batch: true, Entries: []command.ConfigOp{
		{Key: "app/b", Value: []byte(`{"x":[1,2,3]}`)}, {Key: "app/c", Value: []byte(`"c"`), CAS: u64(0)}, {Key: "app/d", Value: []byte(`null`)}}})
	add(command.TypeConfigSet, &command.ConfigSet{Meta: next(), Batch: true, Entries: []command.ConfigOp{
		{Key: "app/e", Value: []byte(`5`), CAS: u64(0)}, {Key: "app/b", Value: []byte(`0`), CAS: u64(3)}}}) // cas_conflict, all-or-nothing
	add(command.TypeConfigSet, &command.ConfigSet{Meta: next(), Entries: []command.ConfigOp{{Key: "app/a", Value: []byte(`3`), CAS: u64(14)}}})                       // cas match (app/a was created at index 14)
	add(command.TypeConfigSet, &command.ConfigSet{Meta: next(), Entries: []command.ConfigOp{{Key: "app/x", Value: []byte(`1`)}, {Key: "app/x", Value: []byte(`2`)}}}) // duplicate: invalid
	add(command.TypeConfigDelete, &command.ConfigDelete{Meta: next(), Key: "app/d", CAS: u64(999)})                                                                   // cas_conflict
	add(command.TypeConfigDelete, &command.ConfigDelete{Meta: next(), Key: "app/d"})
	add(command.TypeConfigDelete, &command.ConfigDelete{Meta: next(), Key: "app/d"}) // not_found
	add(command.TypeRouteUpsert, &command.RouteUpsert{Meta: next(), Route: route("r-web", "web"), CreateOnly: true})
	add(command.TypeRouteUpsert, &command.RouteUpsert{Meta: next(), Route: route("r-web", "web"), CreateOnly: true}) // conflict
	add(command.TypeRouteUpsert, &command.RouteUpsert{Meta: next(), Route: route("r-web", "web")})                   // upsert
	add(command.TypeRouteUpsert, &command.RouteUpsert{Meta: next(), Route: route("r-db", "db")})
	add(command.TypeRouteUpsert, &command.RouteUpsert{Meta: next(), Route: route("r-tmp", "web")})
	add(command.TypeRouteDelete, &command.RouteDelete{Meta: next(), ID: "r-tmp"})
	add(command.TypeRouteDelete, &command.RouteDelete{Meta: next(), ID: "r-tmp"}) // not_found
	add(command.TypeDeregisterInstance, &command.DeregisterInstance{Meta: next(), Service: "web", ID: "web-4"})
	add(command.TypeDeregisterInstance, &command.DeregisterInstance{Meta: next(), Service: "web", ID: "web-4"}) // not_found
	add(command.TypeRegisterInstance, &command.RegisterInstance{Meta: next(), Instance: instance("cache", "cache-1", "redis", 6379)})
	add(command.TypeRegisterInstance, &command.RegisterInstance{Meta: next(), Instance: instance("cache", "cache-2", "redis", 6380)})
	add(command.TypeDeregisterService, &command.DeregisterService{Meta: next(), Service: "cache"})
	add(command.TypeDeregisterService, &command.DeregisterService{Meta: next(), Service: "cache"}) // not_found
	add(command.TypeSetStatus, &command.SetStatus{Meta: next(), Service: "db", ID: "db-1", Status: registry.StatusWarning, Output: "slow"})
	add(command.TypeClusterInit, &command.ClusterInit{Meta: next(), ClusterID: "c-2", Secret: "other"}) // ignored
	add(command.TypeNoop, &command.Noop{Meta: next()})
	add(command.TypeConfigSet, &command.ConfigSet{Meta: next(), Entries: []command.ConfigOp{{Key: "app/z", Value: []byte(`[true,false]`)}}})
	// Consul KV: an opaque value with flags, a prefix delete, one that
	// deletes nothing, and one refused (cas with a prefix).
	add(command.TypeConfigSet, &command.ConfigSet{Meta: next(), Entries: []command.ConfigOp{{Key: "kv/raw", Value: []byte{0xff, 0, 'x'}, Raw: true, Flags: 42}}})
	add(command.TypeConfigSet, &command.ConfigSet{Meta: next(), Entries: []command.ConfigOp{{Key: "kv/tmp/a", Value: []byte(`1`), Flags: 7}, {Key: "kv/tmp/b", Value: []byte{}, Raw: true}}})
	add(command.TypeConfigDelete, &command.ConfigDelete{Meta: next(), Key: "kv/tmp/", Prefix: true})
	add(command.TypeConfigDelete, &command.ConfigDelete{Meta: next(), Key: "kv/none/", Prefix: true})
	add(command.TypeConfigDelete, &command.ConfigDelete{Meta: next(), Key: "kv/", Prefix: true, CAS: u64(1)}) // invalid
	// ACLs: bootstrap (twice: refused), policies, a role, tokens, an
	// update, a write refused by the check on apply, a revocation.
	add(command.TypeACLBootstrap, &command.ACLBootstrap{Meta: next(), Token: registry.ACLToken{AccessorID: "root", SecretHash: strings.Repeat("a", 64)}})
	add(command.TypeACLBootstrap, &command.ACLBootstrap{Meta: next(), Token: registry.ACLToken{AccessorID: "root2", SecretHash: strings.Repeat("b", 64)}})
	add(command.TypeACLPolicyUpsert, &command.ACLPolicyUpsert{Meta: next(), CreateOnly: true, Policy: registry.ACLPolicy{Name: "web",
		Rules: []registry.ACLRule{{Resource: "service", Prefix: "web", Access: "write"}, {Resource: "config", Prefix: "app/", Access: "read"}}}})
	add(command.TypeACLRoleUpsert, &command.ACLRoleUpsert{Meta: next(), Role: registry.ACLRole{Name: "dev", Policies: []string{"web"}}})
	add(command.TypeACLTokenCreate, &command.ACLTokenCreate{Meta: next(), Token: registry.ACLToken{AccessorID: "t-web", SecretHash: strings.Repeat("c", 64), Roles: []string{"dev"}}})
	add(command.TypeACLTokenUpdate, &command.ACLTokenUpdate{Meta: next(), Accessor: "t-web", Description: str("web deployer")})
	denied := next()
	denied.Auth = &command.Auth{Enforce: true, Kind: 1, Accessor: "t-web"}
	add(command.TypeConfigSet, &command.ConfigSet{Meta: denied, Entries: []command.ConfigOp{{Key: "app/denied", Value: []byte(`1`)}}})
	add(command.TypeACLTokenDelete, &command.ACLTokenDelete{Meta: next(), Accessor: "t-web"})
	add(command.TypeACLRoleDelete, &command.ACLRoleDelete{Meta: next(), Name: "dev"})
	add(command.TypeACLPolicyDelete, &command.ACLPolicyDelete{Meta: next(), Name: "web"})
	// Audit: archive on with a small ring-like bound and drop_oldest (drops
	// records), an attach + watermark (trims), a watermark that would move
	// back (ignored), then reject: a user write is refused while full, a
	// system write passes.
	add(command.TypeAuditSettings, &command.AuditSettings{Meta: next(), MaxRecords: i64(12), OnFull: str(registry.OnFullDropOldest), Archive: str(registry.ArchiveOn)})
	add(command.TypeAuditWatermark, &command.AuditWatermark{Meta: next(), Index: 30, Position: 0, Attach: true})
	add(command.TypeAuditWatermark, &command.AuditWatermark{Meta: next(), Index: 12, Position: 3})
	for k := 0; k < 6; k++ {
		add(command.TypeConfigSet, &command.ConfigSet{Meta: next(), Batch: true, Entries: []command.ConfigOp{
			{Key: fmt.Sprintf("audit/%d/a", k), Value: []byte(`{"b":1,"a":2}`)}, {Key: fmt.Sprintf("audit/%d/b", k), Value: []byte(`"x"`)}}})
	}
	add(command.TypeAuditSettings, &command.AuditSettings{Meta: next(), OnFull: str(registry.OnFullReject)})
	add(command.TypeConfigSet, &command.ConfigSet{Meta: next(), Entries: []command.ConfigOp{{Key: "app/refused", Value: []byte(`1`)}}}) // audit_backlog_full
	add(command.TypeSetStatus, &command.SetStatus{Meta: next(), Service: "db", ID: "db-1", Status: registry.StatusPassing})             // system: passes
	add(command.TypeAuditSettings, &command.AuditSettings{Meta: next(), MaxRecords: i64(0)})                                            // invalid
	return out
}

func i64(n int64) *int64   { return &n }
func str(s string) *string { return &s }

// buildLogs encodes the command log as raft entries with indexes from 1,
// interleaving configuration entries and an unknown skippable command.
func buildLogs(t testing.TB) []*raft.Log {
	t.Helper()
	c := command.NewCodec()
	var logs []*raft.Log
	idx := uint64(0)
	for i, cm := range commandLog() {
		b, err := c.Encode(cm.t, cm.msg)
		if err != nil {
			t.Fatalf("encode %s: %v", cm.t, err)
		}
		idx++
		logs = append(logs, &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: b})
		switch i {
		case 5, 20:
			idx++
			logs = append(logs, &raft.Log{Index: idx, Term: 1, Type: raft.LogConfiguration, Data: []byte("cfg")})
		case 9:
			idx++ // a future skippable command type this build does not know
			logs = append(logs, &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: []byte{byte(command.SkippableFlag | 77), 1, 0xc0}})
		}
	}
	return logs
}

func snapshotBytes(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.WriteSnapshot(&buf); err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	return buf.Bytes()
}

// resultJSON renders an Apply answer for comparison across FSMs.
func resultJSON(t testing.TB, v any) string {
	t.Helper()
	if v == nil {
		return "nil"
	}
	if r, ok := v.(*command.Result); ok && r == nil {
		return "nil"
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal result: %v", err)
	}
	return string(b)
}

func TestFSM_DeterministicApplyVsApplyBatch(t *testing.T) {
	t.Parallel()
	logs := buildLogs(t)
	if len(logs) < 30 {
		t.Fatalf("only %d entries", len(logs))
	}

	one := mustNewFSM(t)
	var oneRes []string
	for _, l := range logs {
		oneRes = append(oneRes, resultJSON(t, one.Apply(l)))
	}
	want := snapshotBytes(t, one)

	for _, sizes := range [][]int{{1, 3, 7, 2, 11, 1, 5}, {len(logs)}, {2, 2, 9, 4, 13}, {17, 1}} {
		t.Run(fmt.Sprint(sizes), func(t *testing.T) {
			t.Parallel()
			batch := mustNewFSM(t)
			var batchRes []string
			for pos, k := 0, 0; pos < len(logs); k++ {
				n := sizes[k%len(sizes)]
				if pos+n > len(logs) {
					n = len(logs) - pos
				}
				res := batch.ApplyBatch(logs[pos : pos+n])
				if len(res) != n {
					t.Fatalf("ApplyBatch returned %d results for %d logs", len(res), n)
				}
				for _, r := range res {
					batchRes = append(batchRes, resultJSON(t, r))
				}
				pos += n
				if got := batch.AppliedIndex(); got != logs[pos-1].Index {
					t.Fatalf("AppliedIndex = %d after batch ending at %d", got, logs[pos-1].Index)
				}
			}
			for i := range oneRes {
				if oneRes[i] != batchRes[i] {
					t.Errorf("entry %d: Apply answered %s, ApplyBatch %s", logs[i].Index, oneRes[i], batchRes[i])
				}
			}
			got := snapshotBytes(t, batch)
			if !bytes.Equal(got, want) {
				t.Fatalf("snapshots differ: %d vs %d bytes", len(got), len(want))
			}
		})
	}

	// Replaying the same log into more fresh FSMs (fresh maps, fresh random
	// iteration order) gives the same bytes every time.
	for i := 0; i < 5; i++ {
		f := mustNewFSM(t)
		f.ApplyBatch(logs)
		if !bytes.Equal(snapshotBytes(t, f), want) {
			t.Fatalf("replay %d: snapshot differs", i)
		}
	}
	if one.AppliedIndex() != logs[len(logs)-1].Index {
		t.Errorf("AppliedIndex = %d, want %d", one.AppliedIndex(), logs[len(logs)-1].Index)
	}

	// Sanity: the log did what it says.
	tx := one.Store().ReadTxn()
	defer tx.Abort()
	svcs, insts, cfg, routes := tx.Counts()
	if svcs != 2 || insts != 4 || cfg != 17 || routes != 2 { // config: kv/raw added, kv/tmp/ deleted
		t.Errorf("counts = services %d instances %d config %d routes %d", svcs, insts, cfg, routes)
	}
	if m := tx.ClusterMeta(); m == nil || m.ClusterID != "c-1" {
		t.Errorf("cluster meta = %+v", m)
	}
	if e := tx.ConfigGet(nil, "app/a"); e == nil || string(e.Value) != "3" {
		t.Errorf("app/a = %+v", e)
	}
	if tx.ConfigGet(nil, "app/e") != nil || tx.ConfigGet(nil, "app/x") != nil {
		t.Error("a refused multi-key write left keys behind")
	}
	if tx.ConfigGet(nil, "app/refused") != nil {
		t.Error("a write refused for a full audit backlog was applied")
	}
	st := tx.AuditState(nil)
	if !st.Archiving() || st.Settings.MaxRecords != 12 || st.Settings.OnFull != registry.OnFullReject || st.Dropped == 0 ||
		st.Watermark != (registry.AuditKey{Index: 30}) || !st.Attached {
		t.Errorf("audit state = %+v", st)
	}
	if recs := tx.AuditBacklog(nil, registry.AuditKey{}, 1000); int64(len(recs)) != st.Records || len(recs) == 0 {
		t.Errorf("backlog holds %d records, state says %d", len(recs), st.Records)
	}
}

// fakeSink is an in-memory raft.SnapshotSink.
type fakeSink struct {
	bytes.Buffer
	failAfter int // fail writes once this many bytes were written (0 = never)
	closed    bool
	cancelled bool
}

func (s *fakeSink) Write(p []byte) (int, error) {
	if s.failAfter > 0 && s.Len()+len(p) > s.failAfter {
		return 0, errors.New("disk full")
	}
	return s.Buffer.Write(p)
}
func (s *fakeSink) ID() string    { return "fake" }
func (s *fakeSink) Close() error  { s.closed = true; return nil }
func (s *fakeSink) Cancel() error { s.cancelled = true; return nil }

var _ raft.SnapshotSink = (*fakeSink)(nil)

func TestFSM_SnapshotPersistRestore(t *testing.T) {
	t.Parallel()
	logs := buildLogs(t)
	src := mustNewFSM(t)
	half := len(logs) / 2
	src.ApplyBatch(logs[:half])

	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	wantAtSnap := snapshotBytes(t, src)
	wantIndex := src.AppliedIndex()
	// Entries applied after Snapshot() must not leak into the snapshot:
	// it captured an MVCC view.
	src.ApplyBatch(logs[half:])

	sink := &fakeSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	snap.Release()
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v", sink.closed, sink.cancelled)
	}
	if !bytes.Equal(sink.Bytes(), wantAtSnap) {
		t.Fatal("persisted snapshot differs from the state at Snapshot()")
	}

	dst := mustNewFSM(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if dst.AppliedIndex() != wantIndex {
		t.Errorf("AppliedIndex after restore = %d, want %d", dst.AppliedIndex(), wantIndex)
	}
	if got := snapshotBytes(t, dst); !bytes.Equal(got, wantAtSnap) {
		t.Fatal("snapshot of restored FSM differs")
	}

	// The restored FSM continues the log and converges with the source.
	dst.ApplyBatch(logs[half:])
	if !bytes.Equal(snapshotBytes(t, dst), snapshotBytes(t, src)) {
		t.Fatal("restored FSM diverged after applying the rest of the log")
	}

	// Restore into an FSM that already holds other state replaces it.
	other := mustNewFSM(t)
	other.ApplyBatch(logs)
	if err := other.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, other), wantAtSnap) || other.AppliedIndex() != wantIndex {
		t.Fatal("restore over existing state did not replace it")
	}
}

func TestFSM_SnapshotEmptyRoundTrip(t *testing.T) {
	t.Parallel()
	src := mustNewFSM(t)
	want := snapshotBytes(t, src)
	dst := mustNewFSM(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(want))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, dst), want) || dst.AppliedIndex() != 0 {
		t.Fatal("empty snapshot round trip differs")
	}
}

func TestFSM_PersistErrorCancelsSink(t *testing.T) {
	t.Parallel()
	f := mustNewFSM(t)
	f.ApplyBatch(buildLogs(t))
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &fakeSink{failAfter: 10}
	if err := snap.Persist(sink); err == nil {
		t.Fatal("Persist succeeded on a failing sink")
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("sink closed=%v cancelled=%v, want cancelled only", sink.closed, sink.cancelled)
	}
}

func TestFSM_RestoreRefusesGarbage(t *testing.T) {
	t.Parallel()
	good := fsmWritingFormat(fsm.SnapshotFormat1)
	good.ApplyBatch(buildLogs(t))
	valid := snapshotBytes(t, good)
	const magic = "NEXUS-SNAPSHOT-1\n"
	if !strings.HasPrefix(string(valid), magic) {
		t.Fatalf("snapshot does not start with %q", magic)
	}
	var hb bytes.Buffer
	if err := command.NewCodec().EncodeValue(&hb, struct {
		LastIndex uint64 `msgpack:"last_index"`
		Term      uint64 `msgpack:"term,omitempty"`
	}{good.AppliedIndex(), 1}); err != nil {
		t.Fatal(err)
	}
	hdrLen := hb.Len()
	if !bytes.Equal(valid[len(magic):len(magic)+hdrLen], hb.Bytes()) {
		t.Fatalf("unexpected snapshot header % x", valid[len(magic):len(magic)+hdrLen])
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short magic", []byte("NEXUS")},
		{"wrong magic", []byte("NEXUS-SNAPSHOT-9\n\x81\xaalast_index\x01")},
		{"json", []byte(`{"services":[]}`)},
		{"magic only", []byte(magic)},
		{"magic and garbage", append([]byte(magic), 0xc1, 0xff, 0x00, 0x13)},
		{"header only", valid[:len(magic)+hdrLen]},
		{"truncated body", valid[:len(valid)*2/3]},
		{"body is a string", append(append([]byte(magic), valid[len(magic):len(magic)+hdrLen]...), 0xa3, 'a', 'b', 'c')},
		{"body of another shape", append(append([]byte(magic), valid[len(magic):len(magic)+hdrLen]...), 0x93, 1, 2, 3)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := &trackingCloser{Reader: bytes.NewReader(tc.data)}
			if err := refusedRestore(t, rc); err == nil {
				t.Fatal("Restore accepted garbage")
			}
			if !rc.closed {
				t.Error("Restore did not close its reader")
			}
		})
	}
}

// refusedRestore restores rc into an FSM that applied five entries,
// checks that the restore changed nothing (state, applied index, no
// watcher woken) and returns its error.
func refusedRestore(t *testing.T, rc io.ReadCloser) error {
	t.Helper()
	f := mustNewFSM(t)
	f.ApplyBatch(buildLogs(t)[:5])
	before := snapshotBytes(t, f)
	abandon := f.Store().AbandonCh()
	err := f.Restore(rc)
	if !bytes.Equal(snapshotBytes(t, f), before) || f.AppliedIndex() != 5 {
		t.Error("a refused restore changed the state")
	}
	select {
	case <-abandon:
		t.Error("a refused restore woke watchers")
	default:
	}
	return err
}

type trackingCloser struct {
	io.Reader
	closed bool
}

func (c *trackingCloser) Close() error { c.closed = true; return nil }

func TestFSM_RestoreWakesWatchers(t *testing.T) {
	t.Parallel()
	src := mustNewFSM(t)
	src.ApplyBatch(buildLogs(t))
	data := snapshotBytes(t, src)
	f := mustNewFSM(t)
	abandon := f.Store().AbandonCh()
	if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-abandon:
	default:
		t.Fatal("restore did not close the old store's AbandonCh")
	}
}

func dump(f *fsm.FSM) *registry.Dump {
	tx := f.Store().ReadTxn()
	defer tx.Abort()
	return tx.Dump()
}

func logAt(t testing.TB, idx uint64, ty command.Type, msg any) *raft.Log {
	t.Helper()
	b, err := command.NewCodec().Encode(ty, msg)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: b}
}

func applyResult(t *testing.T, f *fsm.FSM, l *raft.Log) *command.Result {
	t.Helper()
	r, ok := f.Apply(l).(*command.Result)
	if !ok || r == nil {
		t.Fatalf("Apply(%d) did not answer a *command.Result", l.Index)
	}
	if r.Index != l.Index {
		t.Errorf("Result.Index = %d, want %d", r.Index, l.Index)
	}
	return r
}

func wantErrCode(t *testing.T, r *command.Result, code string) {
	t.Helper()
	switch {
	case code == "" && r.Err != nil:
		t.Fatalf("unexpected error %s", r.Err)
	case code != "" && r.Err == nil:
		t.Fatalf("want error %q, got value %+v", code, r.Value)
	case code != "" && r.Err.Code != code:
		t.Fatalf("error code = %q (%s), want %q", r.Err.Code, r.Err.Message, code)
	case code != "" && r.Value != nil:
		t.Errorf("an error result carries a value: %+v", r.Value)
	}
}

func TestFSM_ConfigCASThroughApply(t *testing.T) {
	t.Parallel()
	set := func(key, val string, cas *uint64) *command.ConfigSet {
		return &command.ConfigSet{Meta: meta(0), Entries: []command.ConfigOp{{Key: key, Value: []byte(val), CAS: cas}}}
	}
	del := func(key string, cas *uint64) *command.ConfigDelete {
		return &command.ConfigDelete{Meta: meta(0), Key: key, CAS: cas}
	}
	steps := []struct {
		ty   command.Type
		msg  any
		code string
		mi   uint64 // expected modify_index of the answer, when ok
	}{
		{command.TypeConfigSet, set("k", "1", u64(0)), "", 1},             // create only: ok
		{command.TypeConfigSet, set("k", "2", u64(0)), "cas_conflict", 0}, // create only: exists
		{command.TypeConfigSet, set("k", "2", u64(7)), "cas_conflict", 0}, // mismatch
		{command.TypeConfigSet, set("k", "2", u64(1)), "", 4},             // match
		{command.TypeConfigSet, set("k", "3", nil), "", 5},                // unconditional
		{command.TypeConfigSet, set("m", "3", u64(5)), "cas_conflict", 0}, // cas on missing
		{command.TypeConfigDelete, del("k", u64(4)), "cas_conflict", 0},
		{command.TypeConfigDelete, del("k", u64(5)), "", 8},
		{command.TypeConfigDelete, del("k", nil), "not_found", 0},
		{command.TypeConfigDelete, del("k", u64(8)), "cas_conflict", 0},
		{command.TypeConfigSet, &command.ConfigSet{Meta: meta(0)}, "invalid", 0}, // no entries: refused, never a panic
		{command.TypeConfigSet, &command.ConfigSet{Meta: meta(0), Batch: true}, "invalid", 0},
		{command.TypeConfigSet, &command.ConfigSet{Meta: meta(0), Batch: true, Entries: []command.ConfigOp{
			{Key: "a", Value: []byte(`1`)}, {Key: "a", Value: []byte(`2`)}}}, "invalid", 0},
		{command.TypeConfigSet, &command.ConfigSet{Meta: meta(0), Batch: true, Entries: []command.ConfigOp{
			{Key: "a", Value: []byte(`1`), CAS: u64(0)}, {Key: "b", Value: []byte(`2`)}}}, "", 14},
	}
	f := mustNewFSM(t)
	for i, st := range steps {
		idx := uint64(i + 1)
		r := applyResult(t, f, logAt(t, idx, st.ty, st.msg))
		wantErrCode(t, r, st.code)
		if st.code != "" {
			continue
		}
		switch v := r.Value.(type) {
		case registry.ConfigEntry:
			if v.ModifyIndex != st.mi {
				t.Errorf("step %d: modify_index = %d, want %d", idx, v.ModifyIndex, st.mi)
			}
		case fsm.ConfigEntries:
			if len(v.Entries) != 2 || v.Entries[0].ModifyIndex != st.mi || v.Entries[1].Key != "b" {
				t.Errorf("step %d: entries = %+v", idx, v.Entries)
			}
		case fsm.DeletedKey:
			if v.ModifyIndex != st.mi || v.Key != "k" {
				t.Errorf("step %d: deleted = %+v", idx, v)
			}
		default:
			t.Errorf("step %d: unexpected value %T", idx, r.Value)
		}
	}
	tx := f.Store().ReadTxn()
	defer tx.Abort()
	if tx.ConfigGet(nil, "k") != nil || tx.ConfigGet(nil, "m") != nil {
		t.Error("deleted or refused keys present")
	}
	if tx.TableIndex(nil, "config") != 14 {
		t.Errorf("config index = %d", tx.TableIndex(nil, "config"))
	}
}

func TestFSM_ResultCreatedAndCodes(t *testing.T) {
	t.Parallel()
	f := mustNewFSM(t)
	reg := func(in registry.Instance) *command.RegisterInstance {
		return &command.RegisterInstance{Meta: meta(0), Instance: in}
	}
	route := registry.Route{ID: "r", Service: "web"}
	steps := []struct {
		name    string
		ty      command.Type
		msg     any
		code    string
		created bool
	}{
		{"first register", command.TypeRegisterInstance, reg(instance("web", "web-1", "http", 1)), "", true},
		{"re-register", command.TypeRegisterInstance, reg(instance("web", "web-1", "http", 2)), "", false},
		{"second instance", command.TypeRegisterInstance, reg(instance("web", "web-2", "http", 3)), "", true},
		{"type conflict", command.TypeRegisterInstance, reg(instance("web", "web-3", "grpc", 3)), "type_conflict", false},
		{"status", command.TypeSetStatus, &command.SetStatus{Service: "web", ID: "web-1", Status: "critical"}, "", false},
		{"status unknown", command.TypeSetStatus, &command.SetStatus{Service: "web", ID: "x", Status: "critical"}, "not_found", false},
		{"deregister unknown", command.TypeDeregisterInstance, &command.DeregisterInstance{Service: "web", ID: "x"}, "not_found", false},
		{"deregister", command.TypeDeregisterInstance, &command.DeregisterInstance{Service: "web", ID: "web-2"}, "", false},
		{"deregister service", command.TypeDeregisterService, &command.DeregisterService{Service: "web"}, "", false},
		{"deregister service again", command.TypeDeregisterService, &command.DeregisterService{Service: "web"}, "not_found", false},
		{"route create", command.TypeRouteUpsert, &command.RouteUpsert{Route: route, CreateOnly: true}, "", true},
		{"route create again", command.TypeRouteUpsert, &command.RouteUpsert{Route: route, CreateOnly: true}, "conflict", false},
		{"route upsert", command.TypeRouteUpsert, &command.RouteUpsert{Route: route}, "", false},
		{"route delete", command.TypeRouteDelete, &command.RouteDelete{ID: "r"}, "", false},
		{"route delete again", command.TypeRouteDelete, &command.RouteDelete{ID: "r"}, "not_found", false},
		{"cluster init", command.TypeClusterInit, &command.ClusterInit{ClusterID: "c1", Secret: "s"}, "", false},
		{"cluster init again", command.TypeClusterInit, &command.ClusterInit{ClusterID: "c2", Secret: "s"}, "", false},
		{"noop", command.TypeNoop, &command.Noop{}, "", false},
	}
	for i, st := range steps {
		idx := uint64(100 + i)
		r := applyResult(t, f, logAt(t, idx, st.ty, st.msg))
		wantErrCode(t, r, st.code)
		if r.Created != st.created {
			t.Errorf("%s: Created = %v, want %v", st.name, r.Created, st.created)
		}
		switch st.name {
		case "re-register":
			in := r.Value.(*registry.Instance)
			if in.CreateIndex != 100 || in.ModifyIndex != idx || in.Port != 2 {
				t.Errorf("re-register answered %+v", in)
			}
		case "status":
			if in := r.Value.(*registry.Instance); in.Status != "critical" || in.ModifyIndex != idx {
				t.Errorf("status answered %+v", in)
			}
		case "deregister":
			if v := r.Value.(fsm.DeregisteredInstance); v.ID != "web-2" || v.Service != "web" || v.ModifyIndex != idx {
				t.Errorf("deregister answered %+v", v)
			}
		case "deregister service":
			if v := r.Value.(fsm.DeregisteredService); v.Deregistered != 1 || v.ModifyIndex != idx {
				t.Errorf("deregister service answered %+v", v)
			}
		case "route delete":
			if v := r.Value.(fsm.DeletedRoute); v.ID != "r" || v.ModifyIndex != idx {
				t.Errorf("route delete answered %+v", v)
			}
		case "cluster init again":
			if v := r.Value.(fsm.ClusterIdentity); v.ClusterID != "c1" {
				t.Errorf("second cluster init answered %+v", v)
			}
		}
	}
}

func TestFSM_OnApplyHook(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []command.Type
	f := fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: command.NewCodec(), OnApply: func(ty command.Type, r *command.Result) {
		mu.Lock()
		defer mu.Unlock()
		if r == nil {
			t.Error("OnApply got a nil result")
		}
		seen = append(seen, ty)
	}})
	logs := buildLogs(t)
	f.ApplyBatch(logs)
	mu.Lock()
	defer mu.Unlock()
	if want := len(commandLog()); len(seen) != want {
		t.Errorf("OnApply called %d times, want %d (commands only, skipped entries excluded)", len(seen), want)
	}
}

func TestFSM_WaitApplied(t *testing.T) {
	t.Parallel()
	logs := buildLogs(t)

	t.Run("already applied", func(t *testing.T) {
		t.Parallel()
		f := mustNewFSM(t)
		f.ApplyBatch(logs[:3])
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // even a dead context: the index is there already
		if err := f.WaitApplied(ctx, 3); err != nil {
			t.Fatalf("WaitApplied(3) = %v", err)
		}
		if err := f.WaitApplied(ctx, 0); err != nil {
			t.Fatalf("WaitApplied(0) = %v", err)
		}
	})

	t.Run("blocks until applied", func(t *testing.T) {
		t.Parallel()
		f := mustNewFSM(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- f.WaitApplied(ctx, 6) }()
		for i := 0; i < 5; i++ {
			f.Apply(logs[i])
			select {
			case err := <-done:
				t.Fatalf("WaitApplied(6) returned %v at applied index %d", err, f.AppliedIndex())
			default:
			}
		}
		f.ApplyBatch(logs[5:8]) // jumps past 6 in one batch
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("WaitApplied = %v", err)
			}
		case <-ctx.Done():
			t.Fatal("WaitApplied did not return after the index was applied")
		}
	})

	t.Run("many waiters", func(t *testing.T) {
		t.Parallel()
		f := mustNewFSM(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, len(logs))
		for i := range logs {
			wg.Add(1)
			go func(idx uint64) {
				defer wg.Done()
				if err := f.WaitApplied(ctx, idx); err != nil {
					errs <- fmt.Errorf("WaitApplied(%d): %w", idx, err)
				}
			}(logs[i].Index)
		}
		for _, l := range logs {
			f.Apply(l)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("honours cancel", func(t *testing.T) {
		t.Parallel()
		f := mustNewFSM(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.WaitApplied(ctx, 100) }()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("WaitApplied = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("WaitApplied ignored cancellation")
		}
	})

	t.Run("honours deadline", func(t *testing.T) {
		t.Parallel()
		f := mustNewFSM(t)
		f.ApplyBatch(logs[:2])
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := f.WaitApplied(ctx, 3); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitApplied = %v, want DeadlineExceeded", err)
		}
	})

	t.Run("restore wakes waiters", func(t *testing.T) {
		t.Parallel()
		src := mustNewFSM(t)
		src.ApplyBatch(logs)
		data := snapshotBytes(t, src)
		f := mustNewFSM(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- f.WaitApplied(ctx, logs[len(logs)-1].Index) }()
		if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("WaitApplied after restore = %v", err)
		}
	})
}

// mustPanic runs fn and returns the panic value, failing if fn returns.
func mustPanic(t *testing.T, fn func()) (v any) {
	t.Helper()
	defer func() { v = recover() }()
	fn()
	t.Fatal("no panic")
	return nil
}

func TestFSM_UndecodableEntryPanics(t *testing.T) {
	t.Parallel()
	valid, err := command.NewCodec().Encode(command.TypeConfigSet, &command.ConfigSet{Entries: []command.ConfigOp{{Key: "k", Value: []byte(`1`)}}})
	if err != nil {
		t.Fatal(err)
	}
	wrongVersion := append([]byte{valid[0], command.Version + 1}, valid[2:]...)
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{byte(command.TypeConfigSet)}},
		{"unknown type without skip bit", append([]byte{77}, valid[1:]...)},
		{"unknown version", wrongVersion},
		{"known type, garbage payload", []byte{byte(command.TypeConfigSet), command.Version, 0xc1, 0xc1}},
		{"known type, empty payload", []byte{byte(command.TypeRegisterInstance), command.Version}},
		{"known type, truncated payload", valid[:len(valid)-3]},
		{"known type, payload of another shape", []byte{byte(command.TypeRouteDelete), command.Version, 0x93, 1, 2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, batch := range []bool{false, true} {
				f := mustNewFSM(t)
				f.Apply(logAt(t, 1, command.TypeConfigSet, &command.ConfigSet{Entries: []command.ConfigOp{{Key: "before", Value: []byte(`1`)}}}))
				before := snapshotBytes(t, f)
				bad := &raft.Log{Index: 3, Term: 1, Type: raft.LogCommand, Data: tc.data}
				v := mustPanic(t, func() {
					if batch {
						// The good entry before the bad one in the same batch
						// must not be committed either.
						f.ApplyBatch([]*raft.Log{logAt(t, 2, command.TypeConfigSet, &command.ConfigSet{Entries: []command.ConfigOp{{Key: "k2", Value: []byte(`1`)}}}), bad})
					} else {
						f.Apply(bad)
					}
				})
				if !strings.Contains(fmt.Sprint(v), "entry 3") {
					t.Errorf("panic %q does not name the entry", v)
				}
				if f.AppliedIndex() != 1 || !bytes.Equal(snapshotBytes(t, f), before) {
					t.Errorf("batch=%v: state or applied index moved on a fatal entry", batch)
				}
			}
		})
	}
}

func TestFSM_SkipsUnknownSkippableType(t *testing.T) {
	t.Parallel()
	for _, data := range [][]byte{
		{byte(command.SkippableFlag | 77), command.Version, 0x80},
		{byte(command.SkippableFlag | 2), 9, 0xff, 0xff},           // unknown version too: the type decides
		{byte(command.SkippableFlag | 127), command.Version},       // no payload at all
		{byte(command.SkippableFlag | 100), command.Version, 0xc1}, // garbage payload
		{byte(command.TypeNoop), command.Version + 1, 0x80},        // known skippable type, unknown version
	} {
		f := mustNewFSM(t)
		f.Apply(logAt(t, 1, command.TypeNoop, &command.Noop{}))
		before := dump(f)
		res := f.Apply(&raft.Log{Index: 2, Term: 1, Type: raft.LogCommand, Data: data})
		if r, ok := res.(*command.Result); res != nil && (!ok || r != nil) {
			t.Errorf("% x: skipped entry answered %+v", data, res)
		}
		if f.AppliedIndex() != 2 {
			t.Errorf("% x: applied index %d, want 2", data, f.AppliedIndex())
		}
		if !reflect.DeepEqual(dump(f), before) {
			t.Errorf("% x: skipped entry changed the state", data)
		}
		// The FSM continues after a skipped entry.
		r := applyResult(t, f, logAt(t, 3, command.TypeConfigSet, &command.ConfigSet{Entries: []command.ConfigOp{{Key: "k", Value: []byte(`1`)}}}))
		wantErrCode(t, r, "")
	}
}

func TestFSM_NonCommandEntries(t *testing.T) {
	t.Parallel()
	f := mustNewFSM(t)
	res := f.ApplyBatch([]*raft.Log{
		{Index: 1, Type: raft.LogConfiguration, Data: []byte("not a command")},
		logAt(t, 2, command.TypeNoop, &command.Noop{}),
		{Index: 3, Type: raft.LogBarrier},
	})
	if res[0] != nil || res[2] != nil {
		t.Errorf("non-command entries answered %v / %v", res[0], res[2])
	}
	if r, ok := res[1].(*command.Result); !ok || r == nil || r.Index != 2 || r.Err != nil {
		t.Errorf("noop answered %+v", res[1])
	}
	if f.AppliedIndex() != 3 {
		t.Errorf("applied index = %d, want 3", f.AppliedIndex())
	}
	if got := f.ApplyBatch(nil); len(got) != 0 {
		t.Errorf("empty batch answered %v", got)
	}
}

func TestFSM_ConcurrentReadsDuringApply(t *testing.T) {
	t.Parallel()
	f := mustNewFSM(t)
	logs := buildLogs(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				tx := f.Store().ReadTxn()
				for _, in := range tx.ServiceInstances(nil, "web") {
					_ = len(in.Metadata)
				}
				tx.Abort()
				var buf bytes.Buffer
				if err := f.WriteSnapshot(&buf); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for _, l := range logs {
		f.Apply(l)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &fakeSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	cancel()
	wg.Wait()
	g := mustNewFSM(t)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, g), snapshotBytes(t, f)) {
		t.Fatal("restored state differs")
	}
}
