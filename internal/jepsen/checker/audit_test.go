package checker

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/nexus/nexus/internal/jepsen/history"
)

// Audit ops: request ids "jp-c-<n>" from one client.
func aWrite(t history.Type, key string, value int64, req int) history.Op {
	return history.Op{Workload: "audit", F: history.FWrite, Type: t, Key: key, Value: value, Node: "n1",
		Invoke: int64(req) * 10, Complete: int64(req)*10 + 5, ReqID: "jp-c-" + strconv.Itoa(req)}
}

func aBatch(t history.Type, keys []string, values []int64, req int) history.Op {
	return history.Op{Workload: "audit", F: history.FBatch, Type: t, Keys: keys, Values: values, Node: "n1",
		Invoke: int64(req) * 10, Complete: int64(req)*10 + 5, ReqID: "jp-c-" + strconv.Itoa(req)}
}

func aFinal() history.Op {
	return history.Op{Workload: "audit", F: history.FArchiveRead, Type: history.OK, Final: true, Invoke: 1000, Complete: 1001}
}

// cfgRow is the row of a config set at index/position by request req.
func cfgRow(index int64, pos int32, key string, value int64, req int) AuditRow {
	return AuditRow{ClusterID: "c1", RaftIndex: index, Position: pos, Actor: "anonymous", Action: "config set",
		ResourceType: "config", Resource: key, Node: "n1", RequestID: "jp-c-" + strconv.Itoa(req), Value: strconv.FormatInt(value, 10)}
}

func archive(rows ...AuditRow) *AuditArchive {
	ar := &AuditArchive{Archiving: true, Rows: rows}
	for _, r := range rows {
		k := AuditKey{r.RaftIndex, r.Position}
		if ar.Watermark.Less(k) {
			ar.Watermark, ar.Newest = k, k
		}
	}
	return ar
}

// lockW is a write of the lock workload with request id "jp-l-<req>"
// (its value req too); done: acquired or released.
func lockW(f string, t history.Type, sess string, done bool, req int) history.Op {
	key := ""
	switch f {
	case history.FAcquire, history.FRelease:
		key = "l"
	case history.FIncr:
		key = "c"
	}
	return history.Op{Workload: "lock", F: f, Type: t, Key: key, Session: sess, Acquired: done, Value: int64(req), Node: "n1",
		ReqID: "jp-l-" + strconv.Itoa(req)}
}

func lockRow(index int64, action, rtype, resource, value string, req int) AuditRow {
	return AuditRow{ClusterID: "c1", RaftIndex: index, Action: action, ResourceType: rtype, Resource: resource, Node: "n1",
		Actor: "anonymous", RequestID: "jp-l-" + strconv.Itoa(req), Value: value}
}

func TestCheckAudit(t *testing.T) {
	t.Parallel()
	const ok, fail, info = history.OK, history.Fail, history.Info
	setAdd := func(typ history.Type, e int64, req int) history.Op {
		return history.Op{Workload: "set", F: history.FAdd, Type: typ, Key: "s", Value: e, Node: "n1", ReqID: "jp-s-" + strconv.Itoa(req)}
	}
	setRow := func(index int64, pos int32, rtype, resource, action string, req int) AuditRow {
		return AuditRow{ClusterID: "c1", RaftIndex: index, Position: pos, Actor: "anonymous", Action: action,
			ResourceType: rtype, Resource: resource, Node: "n1", RequestID: "jp-s-" + strconv.Itoa(req)}
	}
	tests := []struct {
		name  string
		ops   []history.Op
		ar    *AuditArchive
		kinds map[string]int // anomaly counts; nil = valid
		want  func(t *testing.T, r *AuditResult)
	}{
		{name: "correct", ops: h(aWrite(ok, "k1", 1, 1), aWrite(ok, "k2", 2, 2), aWrite(fail, "k1", 3, 3),
			aWrite(info, "k1", 4, 4), aWrite(info, "k2", 5, 5), aBatch(ok, []string{"k1", "k2"}, []int64{6, 7}, 6), aFinal()),
			ar: archive(cfgRow(10, 0, "k1", 1, 1), cfgRow(11, 0, "k2", 2, 2), cfgRow(12, 0, "k2", 5, 5),
				cfgRow(13, 0, "k1", 6, 6), cfgRow(13, 1, "k2", 7, 6)),
			want: func(t *testing.T, r *AuditResult) {
				if r.ArchivedOK != 3 || r.ArchivedInfo != 1 || r.UnarchivedInfo != 1 || r.Writes.Total != 6 || r.Rows != 5 {
					t.Errorf("counts: %+v", r)
				}
			}},
		{name: "lost audited write", ops: h(aWrite(ok, "k1", 1, 1), aWrite(ok, "k1", 2, 2), aFinal()),
			ar: archive(cfgRow(10, 0, "k1", 1, 1)), kinds: map[string]int{AuditLost: 1},
			want: func(t *testing.T, r *AuditResult) {
				if r.Lost != 1 || len(r.Anomalies) != 1 || r.Anomalies[0].Ops[0] != 1 {
					t.Errorf("lost: %+v", r.Anomalies)
				}
			}},
		{name: "duplicated row (applied twice)", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar: archive(cfgRow(10, 0, "k1", 1, 1), cfgRow(14, 0, "k1", 1, 1)), kinds: map[string]int{AuditDuplicate: 1, AuditSplit: 1},
			want: func(t *testing.T, r *AuditResult) {
				if r.Duplicated != 1 {
					t.Errorf("duplicated = %d", r.Duplicated)
				}
			}},
		{name: "duplicated (raft_index, position)", ops: h(aWrite(ok, "k1", 1, 1), aWrite(ok, "k2", 2, 2), aFinal()),
			ar:    archive(cfgRow(10, 0, "k1", 1, 1), cfgRow(10, 0, "k2", 2, 2)),
			kinds: map[string]int{AuditDuplicateKey: 1, AuditPositionGap: 1}},
		{name: "row for a failed write", ops: h(aWrite(fail, "k1", 1, 1), aFinal()),
			ar: archive(cfgRow(10, 0, "k1", 1, 1)), kinds: map[string]int{AuditFailed: 1},
			want: func(t *testing.T, r *AuditResult) {
				if r.Unexpected != 1 {
					t.Errorf("unexpected = %d", r.Unexpected)
				}
			}},
		{name: "info write archived twice", ops: h(aWrite(info, "k1", 1, 1), aFinal()),
			ar: archive(cfgRow(10, 0, "k1", 1, 1), cfgRow(11, 0, "k1", 1, 1)), kinds: map[string]int{AuditDuplicate: 1, AuditSplit: 1}},
		{name: "row for a write never attempted", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar: archive(cfgRow(10, 0, "k1", 1, 1), cfgRow(11, 0, "k1", 99, 7)), kinds: map[string]int{AuditUnexpected: 1}},
		{name: "row in the workload's key space from another client", ops: h(aWrite(ok, "jepsen/audit/k1", 1, 1), aFinal()),
			ar: archive(cfgRow(10, 0, "jepsen/audit/k1", 1, 1),
				AuditRow{ClusterID: "c1", RaftIndex: 11, ResourceType: "config", Resource: "jepsen/audit/k9", RequestID: "other-1", Value: "5", Actor: "anonymous"}),
			kinds: map[string]int{AuditUnexpected: 1}},
		{name: "rows of other writers outside the workloads are ignored", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar: archive(AuditRow{ClusterID: "c1", RaftIndex: 1, Action: "cluster init", ResourceType: "cluster", Resource: "c1", Actor: "system"},
				cfgRow(10, 0, "k1", 1, 1))},
		{name: "wrong value", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar: archive(cfgRow(10, 0, "k1", 2, 1)), kinds: map[string]int{AuditWrongValue: 1}},
		{name: "record names another node than the one that received the request", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar: archive(func() AuditRow { r := cfgRow(10, 0, "k1", 1, 1); r.Node = "n3"; return r }()), kinds: map[string]int{AuditWrongNode: 1}},
		{name: "request id not propagated", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar:    archive(AuditRow{ClusterID: "c1", RaftIndex: 10, ResourceType: "config", Resource: "k1", RequestID: "generated-by-node", Value: "1", Actor: "anonymous"}),
			kinds: map[string]int{AuditReqIDMismatch: 1}},
		{name: "row for a resource the write did not touch", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar: archive(cfgRow(10, 0, "k1", 1, 1), cfgRow(10, 1, "k3", 1, 1)), kinds: map[string]int{AuditForeign: 1}},
		{name: "batch partly archived (info)", ops: h(aBatch(info, []string{"k1", "k2"}, []int64{1, 2}, 1), aFinal()),
			ar: archive(cfgRow(10, 0, "k1", 1, 1)), kinds: map[string]int{AuditPartial: 1}},
		{name: "batch partly archived (ok)", ops: h(aBatch(ok, []string{"k1", "k2"}, []int64{1, 2}, 1), aFinal()),
			ar: archive(cfgRow(10, 0, "k1", 1, 1)), kinds: map[string]int{AuditLost: 1}},
		{name: "batch out of request order", ops: h(aBatch(ok, []string{"k1", "k2"}, []int64{1, 2}, 1), aFinal()),
			ar: archive(cfgRow(10, 1, "k1", 1, 1), cfgRow(10, 0, "k2", 2, 1)), kinds: map[string]int{AuditSplit: 1}},
		{name: "position gap", ops: h(aBatch(ok, []string{"k1", "k2"}, []int64{1, 2}, 1), aFinal()),
			ar: archive(cfgRow(10, 0, "k1", 1, 1), cfgRow(10, 2, "k2", 2, 1)), kinds: map[string]int{AuditPositionGap: 1, AuditSplit: 1}},
		{name: "set add with its service record; leave deregistration by the system", ops: h(setAdd(ok, 1, 1), setAdd(ok, 2, 2), aFinal()),
			ar: archive(setRow(5, 0, "service", "s", "service register", 1), setRow(5, 1, "instance", "s/e1", "instance register", 1),
				setRow(6, 0, "instance", "s/e2", "instance register", 2),
				AuditRow{ClusterID: "c1", RaftIndex: 7, ResourceType: "instance", Resource: "s/e2", Action: "instance deregister", Actor: "system", RequestID: "leave-1"})},
		{name: "set add lost", ops: h(setAdd(ok, 1, 1), aFinal()),
			ar: archive(setRow(5, 0, "service", "s", "service register", 1)), kinds: map[string]int{AuditLost: 1}},
		{name: "set instance row no op explains", ops: h(setAdd(ok, 1, 1), aFinal()),
			ar: archive(setRow(5, 0, "instance", "s/e1", "instance register", 1),
				AuditRow{ClusterID: "c1", RaftIndex: 7, ResourceType: "instance", Resource: "s/e9", Action: "instance register", Actor: "anonymous", RequestID: "x-1"}),
			kinds: map[string]int{AuditUnexpected: 1}},
		{name: "register CAS refused has no row", ops: h(history.Op{Workload: "register", F: history.FCAS, Type: fail, Code: "cas_conflict",
			Key: "r", Value: 1, ReqID: "jp-r-1"}, aFinal()),
			ar:    archive(AuditRow{ClusterID: "c1", RaftIndex: 5, ResourceType: "config", Resource: "r", Value: "1", RequestID: "jp-r-1"}),
			kinds: map[string]int{AuditFailed: 1}},
		{name: "lock workload: sessions, acquires, releases, increments; invalidations by the leader", ops: h(
			lockW(history.FSessionCreate, ok, "S1", false, 1), lockW(history.FSessionCreate, info, "", false, 2),
			lockW(history.FRenew, ok, "S1", false, 3), lockW(history.FAcquire, ok, "S1", true, 4), lockW(history.FAcquire, ok, "S1", false, 5),
			lockW(history.FIncr, ok, "S1", false, 6), lockW(history.FIncr, fail, "S1", false, 7), lockW(history.FRelease, ok, "S1", true, 8),
			lockW(history.FRelease, ok, "S1", false, 9), aFinal()),
			ar: archive(lockRow(10, "create", "session", "S1", "", 1), lockRow(11, "create", "session", "S9", "", 2),
				lockRow(12, "acquire", "config", "l", "4", 4), lockRow(13, "set", "config", "c", "6", 6), lockRow(14, "release", "config", "l", "8", 8),
				AuditRow{ClusterID: "c1", RaftIndex: 15, Action: "invalidate", ResourceType: "session", Resource: "S9", Actor: "system:leader"},
				AuditRow{ClusterID: "c1", RaftIndex: 15, Position: 1, Action: "release", ResourceType: "config", Resource: "l", Actor: "system:leader", Value: "4"})},
		{name: "lock workload: a lost increment, a refused acquire that wrote, a renew that wrote", ops: h(
			lockW(history.FAcquire, ok, "S1", false, 4), lockW(history.FIncr, ok, "S1", false, 6), lockW(history.FRenew, ok, "S1", false, 3), aFinal()),
			ar:    archive(lockRow(12, "acquire", "config", "l", "4", 4), lockRow(13, "set", "config", "jepsen/lock/x", "1", 3)),
			kinds: map[string]int{AuditLost: 1, AuditForeign: 2}},
		{name: "never read", ops: h(aWrite(ok, "k1", 1, 1)), ar: archive(cfgRow(10, 0, "k1", 1, 1)), kinds: map[string]int{AuditNoFinalRead: 1}},
		{name: "backlog not drained", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar:    &AuditArchive{Archiving: true, Backlog: 3, Target: AuditKey{12, 0}, Watermark: AuditKey{10, 0}, Rows: []AuditRow{cfgRow(10, 0, "k1", 1, 1)}},
			kinds: map[string]int{AuditNotDrained: 1}},
		{name: "records after the target may wait", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar: &AuditArchive{Archiving: true, Backlog: 1, Target: AuditKey{10, 0}, Watermark: AuditKey{10, 0}, Rows: []AuditRow{cfgRow(10, 0, "k1", 1, 1)}}},
		{name: "not archiving", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar: &AuditArchive{Rows: []AuditRow{cfgRow(10, 0, "k1", 1, 1)}}, kinds: map[string]int{AuditNotDrained: 1}},
		{name: "watermark ahead of the rows", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar:    &AuditArchive{Archiving: true, Watermark: AuditKey{20, 0}, Rows: []AuditRow{cfgRow(10, 0, "k1", 1, 1)}},
			kinds: map[string]int{AuditWatermark: 1}},
		{name: "dropped records", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar:    &AuditArchive{Archiving: true, Dropped: 4, Rows: []AuditRow{cfgRow(10, 0, "k1", 1, 1)}},
			kinds: map[string]int{AuditDropped: 1}},
		{name: "two cluster ids", ops: h(aWrite(ok, "k1", 1, 1), aFinal()),
			ar:    archive(cfgRow(10, 0, "k1", 1, 1), AuditRow{ClusterID: "c2", RaftIndex: 1, ResourceType: "cluster", Resource: "c2", Actor: "system"}),
			kinds: map[string]int{AuditClusterID: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := CheckAudit(tc.ops, tc.ar)
			want := tc.kinds
			if want == nil {
				want = map[string]int{}
			}
			if !reflect.DeepEqual(res.Counts, want) {
				t.Fatalf("anomalies %v, want %v:\n%+v", res.Counts, want, res.Anomalies)
			}
			if res.Valid != (tc.kinds == nil) {
				t.Fatalf("Valid = %v", res.Valid)
			}
			if tc.want != nil {
				tc.want(t, res)
			}
		})
	}
}
