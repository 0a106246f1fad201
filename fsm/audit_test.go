package fsm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// applyAll applies msgs at indexes 1.. and returns the results.
func applyAll(t *testing.T, f *fsm.FSM, from uint64, cmds []cmd) []*command.Result {
	t.Helper()
	var out []*command.Result
	for i, c := range cmds {
		out = append(out, applyResult(t, f, logAt(t, from+uint64(i), c.t, c.msg)))
	}
	return out
}

func backlog(f *fsm.FSM) ([]registry.AuditRecord, registry.AuditState) {
	tx := f.Store().ReadTxn()
	defer tx.Abort()
	return tx.AuditBacklog(nil, registry.AuditKey{}, 1<<30), tx.AuditState(nil)
}

// recordShape is what TestFSM_AuditRecords checks of a record.
type recordShape struct {
	Index        uint64
	Position     uint32
	Action       string
	ResourceType string
	Resource     string
	HasBefore    bool
	HasAfter     bool
}

func shapes(recs []registry.AuditRecord) []recordShape {
	out := make([]recordShape, len(recs))
	for i, r := range recs {
		out[i] = recordShape{r.Index, r.Position, r.Action, r.ResourceType, r.Resource, r.Before != nil, r.After != nil}
	}
	return out
}

func TestFSM_AuditRecords(t *testing.T) {
	t.Parallel()
	route, e := registry.NormalizeRoute(registry.Route{ID: "r1", Service: "web", Paths: []string{"/web/"}})
	if e != nil {
		t.Fatal(e)
	}
	f := mustNewFSM(t)
	m := command.Meta{Actor: "alice", RequestID: "rq", Node: "n2", Time: 1_700_000_000_000_000_042}
	res := applyAll(t, f, 1, []cmd{
		{command.TypeClusterInit, &command.ClusterInit{Meta: m, ClusterID: "c-1", Secret: "never-audited"}},             // 1
		{command.TypeRegisterInstance, &command.RegisterInstance{Meta: m, Instance: instance("web", "w1", "http", 1)}},  // 2: service + instance
		{command.TypeRegisterInstance, &command.RegisterInstance{Meta: m, Instance: instance("web", "w1", "http", 2)}},  // 3: update
		{command.TypeRegisterInstance, &command.RegisterInstance{Meta: m, Instance: instance("web", "w2", "http", 3)}},  // 4
		{command.TypeSetStatus, &command.SetStatus{Meta: m, Service: "web", ID: "w1", Status: registry.StatusCritical}}, // 5
		{command.TypeConfigSet, &command.ConfigSet{Meta: m, Batch: true, Entries: []command.ConfigOp{
			{Key: "k/a", Value: []byte(`1`)}, {Key: "k/b", Value: []byte(`{"z":1,"a":[1]}`)}}}}, // 6: two positions
		{command.TypeConfigSet, &command.ConfigSet{Meta: m, Entries: []command.ConfigOp{{Key: "k/a", Value: []byte(`2`), CAS: u64(1)}}}}, // 7: cas conflict: nothing
		{command.TypeConfigDelete, &command.ConfigDelete{Meta: m, Key: "k/b"}},                                                           // 8
		{command.TypeRouteUpsert, &command.RouteUpsert{Meta: m, Route: route, CreateOnly: true}},                                         // 9
		{command.TypeRouteDelete, &command.RouteDelete{Meta: m, ID: "r1"}},                                                               // 10
		{command.TypeDeregisterInstance, &command.DeregisterInstance{Meta: m, Service: "web", ID: "w2"}},                                 // 11
		{command.TypeRegisterInstance, &command.RegisterInstance{Meta: m, Instance: instance("db", "d1", "pg", 5432)}},                   // 12
		{command.TypeDeregisterInstance, &command.DeregisterInstance{Meta: m, Service: "db", ID: "d1"}},                                  // 13: last one: service goes
		{command.TypeDeregisterService, &command.DeregisterService{Meta: m, Service: "web"}},                                             // 14
		{command.TypeNoop, &command.Noop{Meta: m}},                                                                                       // 15: nothing
		{command.TypeAuditSettings, &command.AuditSettings{Meta: m, OnFull: str(registry.OnFullDropOldest)}},                             // 16
		{command.TypeAuditWatermark, &command.AuditWatermark{Meta: command.Meta{Actor: command.ActorSystem}, Index: 0}},                  // 17: not audited
		{command.TypeDeregisterInstance, &command.DeregisterInstance{Meta: m, Service: "web", ID: "gone"}},                               // 18: not found
		{command.TypeAuditSettings, &command.AuditSettings{Meta: m, Archive: str("sometimes")}},                                          // 19: invalid
		{command.TypeRegisterInstance, &command.RegisterInstance{Meta: m, Instance: instance("web", "w3", "grpc", 3)}},                   // 20: new service
		{command.TypeRegisterInstance, &command.RegisterInstance{Meta: m, Instance: instance("web", "w4", "http", 3)}},                   // 21: type conflict
	})
	for _, i := range []int{6, 17, 18, 20} {
		if res[i].Err == nil {
			t.Errorf("entry %d: want a business error", i+1)
		}
	}
	recs, st := backlog(f)
	want := []recordShape{
		{1, 0, "init", "cluster", "c-1", false, true},
		{2, 0, "register", "service", "web", false, true},
		{2, 1, "register", "instance", "web/w1", false, true},
		{3, 0, "update", "instance", "web/w1", true, true},
		{4, 0, "register", "instance", "web/w2", false, true},
		{5, 0, "status", "instance", "web/w1", true, true},
		{6, 0, "set", "config", "k/a", false, true},
		{6, 1, "set", "config", "k/b", false, true},
		{8, 0, "delete", "config", "k/b", true, false},
		{9, 0, "upsert", "route", "r1", false, true},
		{10, 0, "delete", "route", "r1", true, false},
		{11, 0, "deregister", "instance", "web/w2", true, false},
		{12, 0, "register", "service", "db", false, true},
		{12, 1, "register", "instance", "db/d1", false, true},
		{13, 0, "deregister", "instance", "db/d1", true, false},
		{13, 1, "deregister", "service", "db", true, false},
		{14, 0, "deregister", "instance", "web/w1", true, false},
		{14, 1, "deregister", "service", "web", true, false},
		{16, 0, "set", "cluster", fsm.AuditSettingsResource, true, true},
		{20, 0, "register", "service", "web", false, true},
		{20, 1, "register", "instance", "web/w3", false, true},
	}
	if got := shapes(recs); !reflect.DeepEqual(got, want) {
		t.Errorf("records:\n got %+v\nwant %+v", got, want)
	}
	for _, r := range recs {
		if r.Actor != "alice" || r.Node != "n2" || r.RequestID != "rq" || r.Time != m.Time {
			t.Errorf("record %d-%d: proposer facts = %q %q %q %d", r.Index, r.Position, r.Actor, r.Node, r.RequestID, r.Time)
		}
		if bytes.Contains(r.After, []byte("never-audited")) {
			t.Errorf("record %d-%d leaks the cluster secret: %s", r.Index, r.Position, r.After)
		}
	}
	if st.Records != int64(len(recs)) || st.Last != (registry.AuditKey{Index: 20, Position: 1}) {
		t.Errorf("state = %+v", st)
	}
	// Before/after are the replica's documents: the update's before holds
	// the old port, the config after its value and create_index.
	var before registry.Instance
	if err := json.Unmarshal(recs[3].Before, &before); err != nil || before.Port != 1 {
		t.Errorf("update before = %s (%v)", recs[3].Before, err)
	}
	var doc struct {
		Value       json.RawMessage `json:"value"`
		CreateIndex uint64          `json:"create_index"`
	}
	if err := json.Unmarshal(recs[7].After, &doc); err != nil || string(doc.Value) != `{"z":1,"a":[1]}` || doc.CreateIndex != 6 {
		t.Errorf("config after = %s (%v)", recs[7].After, err)
	}
}

func TestFSM_AuditBacklogBounds(t *testing.T) {
	t.Parallel()
	set := func(i int) cmd {
		return cmd{command.TypeConfigSet, &command.ConfigSet{Meta: meta(i), Entries: []command.ConfigOp{{Key: fmt.Sprintf("k/%d", i), Value: []byte(`1`)}}}}
	}
	system := func(i int) cmd {
		m := meta(i)
		m.Actor = command.ActorSystem
		return cmd{command.TypeConfigSet, &command.ConfigSet{Meta: m, Entries: []command.ConfigOp{{Key: fmt.Sprintf("sys/%d", i), Value: []byte(`1`)}}}}
	}
	settings := func(max int64, onFull, archive string) cmd {
		return cmd{command.TypeAuditSettings, &command.AuditSettings{Meta: meta(0), MaxRecords: i64(max), OnFull: str(onFull), Archive: str(archive)}}
	}
	for _, tc := range []struct {
		name                 string
		cmds                 []cmd
		wantErrs             []int // indexes (0-based) answering audit_backlog_full
		wantRecords          int64
		wantDropped, wantEvs uint64
	}{
		{
			// Never attached, archive auto: a ring of the latest records.
			name:        "ring without archiver",
			cmds:        []cmd{settings(3, registry.OnFullReject, registry.ArchiveAuto), set(1), set(2), set(3), set(4), set(5)},
			wantRecords: 3, wantEvs: 3, // the settings record and sets 1 and 2 went
		},
		{
			name:     "archiving reject refuses user writes, system writes pass",
			cmds:     []cmd{settings(3, registry.OnFullReject, registry.ArchiveOn), set(1), set(2), set(3), system(4), set(5)},
			wantErrs: []int{3, 5}, wantRecords: 4,
		},
		{
			name:        "archiving drop_oldest drops and counts",
			cmds:        []cmd{settings(3, registry.OnFullDropOldest, registry.ArchiveOn), set(1), set(2), set(3), set(4)},
			wantRecords: 3, wantDropped: 2,
		},
		{
			name:        "archive off is a ring even when attached",
			cmds:        []cmd{{command.TypeAuditWatermark, &command.AuditWatermark{Attach: true}}, settings(2, registry.OnFullReject, registry.ArchiveOff), set(1), set(2), set(3)},
			wantRecords: 2, wantEvs: 2,
		},
		{
			name: "attached auto archives: reject when full",
			cmds: []cmd{{command.TypeAuditWatermark, &command.AuditWatermark{Attach: true}}, settings(2, registry.OnFullReject, registry.ArchiveAuto),
				set(1), set(2), set(3)},
			wantErrs: []int{3, 4}, wantRecords: 2,
		},
		{
			name: "lowering the bound with drop_oldest drops at once",
			cmds: []cmd{settings(10, registry.OnFullDropOldest, registry.ArchiveOn), set(1), set(2), set(3), set(4),
				settings(2, registry.OnFullDropOldest, registry.ArchiveOn)},
			wantRecords: 2, wantDropped: 4, // 5 records + the new settings record, down to 2
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := mustNewFSM(t)
			res := applyAll(t, f, 1, tc.cmds)
			full := map[int]bool{}
			for _, i := range tc.wantErrs {
				full[i] = true
			}
			for i, r := range res {
				switch {
				case full[i]:
					wantErrCode(t, r, registry.CodeAuditBacklogFull)
				case r.Err != nil:
					t.Errorf("command %d: %s", i, r.Err)
				}
			}
			recs, st := backlog(f)
			if st.Records != tc.wantRecords || int64(len(recs)) != tc.wantRecords || st.Dropped != tc.wantDropped || st.Evicted != tc.wantEvs {
				t.Errorf("records %d (stored %d), dropped %d, evicted %d; want %d, %d, %d",
					st.Records, len(recs), st.Dropped, st.Evicted, tc.wantRecords, tc.wantDropped, tc.wantEvs)
			}
			var bytes int64
			for i := range recs {
				bytes += recs[i].Size()
			}
			if bytes != st.Bytes {
				t.Errorf("bytes = %d, records sum to %d", st.Bytes, bytes)
			}
		})
	}
}

func TestFSM_AuditWatermarkOnlyMovesForwardAndTrims(t *testing.T) {
	t.Parallel()
	f := mustNewFSM(t)
	var cmds []cmd
	for i := 1; i <= 5; i++ {
		cmds = append(cmds, cmd{command.TypeConfigSet, &command.ConfigSet{Meta: meta(i), Batch: true, Entries: []command.ConfigOp{
			{Key: fmt.Sprintf("a/%d", i), Value: []byte(`1`)}, {Key: fmt.Sprintf("b/%d", i), Value: []byte(`2`)}}}})
	}
	applyAll(t, f, 1, cmds)
	for _, tc := range []struct {
		wm          registry.AuditKey
		wantWM      registry.AuditKey
		wantRecords int
	}{
		{registry.AuditKey{Index: 2, Position: 0}, registry.AuditKey{Index: 2, Position: 0}, 7},
		{registry.AuditKey{Index: 1, Position: 1}, registry.AuditKey{Index: 2, Position: 0}, 7}, // back: ignored
		{registry.AuditKey{Index: 2, Position: 0}, registry.AuditKey{Index: 2, Position: 0}, 7}, // same: no-op
		{registry.AuditKey{Index: 4, Position: 1}, registry.AuditKey{Index: 4, Position: 1}, 2},
		{registry.AuditKey{Index: 99, Position: 0}, registry.AuditKey{Index: 99, Position: 0}, 0}, // past the end
	} {
		r := applyResult(t, f, logAt(t, 100, command.TypeAuditWatermark, &command.AuditWatermark{Index: tc.wm.Index, Position: tc.wm.Position}))
		wantErrCode(t, r, "")
		recs, st := backlog(f)
		if st.Watermark != tc.wantWM || len(recs) != tc.wantRecords || st.Records != int64(tc.wantRecords) {
			t.Errorf("after watermark %v: watermark %v, %d records (state %d); want %v, %d", tc.wm, st.Watermark, len(recs), st.Records, tc.wantWM, tc.wantRecords)
		}
		for _, rec := range recs {
			if !st.Watermark.Less(rec.Key()) {
				t.Errorf("record %v at or below the watermark %v stayed", rec.Key(), st.Watermark)
			}
		}
	}
}

func TestFSM_AuditSnapshotKeepsBacklogAndWatermark(t *testing.T) {
	t.Parallel()
	src := mustNewFSM(t)
	src.ApplyBatch(buildLogs(t))
	want := dump(src)
	if len(want.Audit) == 0 || want.AuditState == nil || want.AuditState.Watermark.IsZero() {
		t.Fatalf("the command log left no backlog or watermark: %d records, state %+v", len(want.Audit), want.AuditState)
	}
	dst := mustNewFSM(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, src)))); err != nil {
		t.Fatal(err)
	}
	got := dump(dst)
	if !reflect.DeepEqual(got.Audit, want.Audit) || !reflect.DeepEqual(got.AuditState, want.AuditState) {
		t.Fatalf("restored backlog differs:\n got %d records %+v\nwant %d records %+v", len(got.Audit), got.AuditState, len(want.Audit), want.AuditState)
	}
	// The restored replica refuses and trims exactly like the source.
	next := logAt(t, 1000, command.TypeConfigSet, &command.ConfigSet{Meta: meta(1000), Entries: []command.ConfigOp{{Key: "after/restore", Value: []byte(`1`)}}})
	if a, b := resultJSON(t, src.Apply(next)), resultJSON(t, dst.Apply(next)); a != b {
		t.Errorf("after restore: source answered %s, restored %s", a, b)
	}
}
