package checker

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/internal/jepsen/history"
)

// AuditRow is one row of PostgreSQL's audit_events as the audit workload
// reads it at the end of a run.
type AuditRow struct {
	ClusterID    string `json:"cluster_id"`
	RaftIndex    int64  `json:"raft_index"`
	Position     int32  `json:"position"`
	Actor        string `json:"actor"`
	Action       string `json:"action"`
	ResourceType string `json:"resource_type"`
	Resource     string `json:"resource"`
	Node         string `json:"node"`
	RequestID    string `json:"request_id"`
	// Value is after->'value' of a config row as JSON text ("" when there
	// is none, e.g. a delete).
	Value string `json:"value,omitempty"`
}

func (r *AuditRow) String() string {
	return fmt.Sprintf("row %d/%d %s %s %s request_id=%q actor=%s node=%s value=%s",
		r.RaftIndex, r.Position, r.Action, r.ResourceType, r.Resource, r.RequestID, r.Actor, r.Node, r.Value)
}

// AuditKey is a position in the audit stream (raft index, position).
type AuditKey struct {
	RaftIndex int64 `json:"raft_index"`
	Position  int32 `json:"position"`
}

// Less reports whether k sorts before o.
func (k AuditKey) Less(o AuditKey) bool {
	return k.RaftIndex < o.RaftIndex || (k.RaftIndex == o.RaftIndex && k.Position < o.Position)
}

// AuditArchive is the state of the archive at the end of a run: the rows of
// audit_events and what GET /audit/settings?consistent said just before
// they were read.
type AuditArchive struct {
	Archiving bool  `json:"archiving"`
	Backlog   int64 `json:"backlog"` // records not archived yet when the rows were read
	// Target is the newest record when the harness began to wait for the
	// archive (every acknowledged write is at or before it); the rows are
	// read once the watermark reaches it (or the backlog is empty).
	Target    AuditKey   `json:"target"`
	Watermark AuditKey   `json:"watermark"`
	Newest    AuditKey   `json:"newest"`
	Dropped   uint64     `json:"dropped"` // replicated counters: records lost by configuration
	Evicted   uint64     `json:"evicted"`
	Rows      []AuditRow `json:"-"`
}

// AuditResult is the verdict on the audit archive.
type AuditResult struct {
	Valid bool `json:"valid"`
	Rows  int  `json:"rows"` // rows in audit_events (the whole cluster)
	// Writes checked (ops of every workload that can produce audit
	// records: audit writes and batches, register writes and CAS, set adds
	// and removes), by outcome, and how many of them have their rows.
	Writes         Counts `json:"writes"`
	ArchivedOK     int    `json:"archived_ok"`     // ok writes with exactly their rows
	ArchivedInfo   int    `json:"archived_info"`   // info writes that were applied (rows present)
	UnarchivedInfo int    `json:"unarchived_info"` // info writes with no row (never applied)
	// Lost, Duplicated and Unexpected count anomalies of those kinds.
	Lost       int            `json:"lost"`
	Duplicated int            `json:"duplicated"`
	Unexpected int            `json:"unexpected"`
	ClusterIDs []string       `json:"cluster_ids"`
	Archive    *AuditArchive  `json:"archive,omitempty"`
	Counts     map[string]int `json:"anomaly_counts,omitempty"`
	Anomalies  []Anomaly      `json:"anomalies,omitempty"` // up to maxExamples per kind
	ByWorkload map[string]int `json:"writes_by_workload"`
	Actions    map[string]int `json:"rows_by_action"`
}

// Audit anomaly kinds.
const (
	AuditLost          = "lost"                // an ok write without its row
	AuditDuplicate     = "duplicate"           // a write with two rows for one resource (applied twice)
	AuditFailed        = "failed-archived"     // a row for a write that definitely failed
	AuditUnexpected    = "unexpected"          // a row no attempted write explains
	AuditForeign       = "foreign-row"         // a row with a write's request id for a resource it did not write
	AuditWrongValue    = "wrong-value"         // a config row whose value is not the one written
	AuditWrongNode     = "wrong-node"          // a row whose node is not the one the request was sent to
	AuditReqIDMismatch = "request-id-mismatch" // a row with a write's unique value but another request id
	AuditPartial       = "partial"             // some rows of an atomic write, not all
	AuditSplit         = "split"               // the rows of one write at several raft indexes, or out of request order
	AuditDuplicateKey  = "duplicate-key"       // two rows with one (cluster, raft_index, position)
	AuditPositionGap   = "position-gap"        // positions of a raft index not 0..n-1
	AuditWatermark     = "watermark-ahead"     // the watermark names a row PostgreSQL does not hold
	AuditNotDrained    = "not-drained"         // records still in the backlog when the rows were read
	AuditDropped       = "records-dropped"     // the backlog dropped or evicted records
	AuditClusterID     = "cluster-id"          // rows of more than one cluster id
	AuditNoFinalRead   = "no-final-read"       // the archive was never read
)

// expected is one record a write must (or may) produce.
type expected struct {
	rtype, resource string
	value           string // config: JSON of the value written; "" to not check
	optional        bool   // a companion record (service register/deregister)
	// shared: a key other writes write too, with values that are not
	// unique (the lock key).
	shared bool
	rows   []*AuditRow
}

type auditWrite struct {
	op   *history.Op
	want []*expected
}

// auditExpectations lists the records op can produce (nil: none).
func auditExpectations(op *history.Op) []*expected {
	switch {
	case (op.Workload == "audit" || op.Workload == "register") && (op.F == history.FWrite || op.F == history.FCAS):
		return []*expected{{rtype: "config", resource: op.Key, value: strconv.FormatInt(op.Value, 10)}}
	case op.Workload == "audit" && op.F == history.FBatch:
		out := make([]*expected, len(op.Keys))
		for i, k := range op.Keys {
			out[i] = &expected{rtype: "config", resource: k}
			if i < len(op.Values) {
				out[i].value = strconv.FormatInt(op.Values[i], 10)
			}
		}
		return out
	case op.Workload == "set" && (op.F == history.FAdd || op.F == history.FRemove):
		return []*expected{
			{rtype: "instance", resource: op.Key + "/e" + strconv.FormatInt(op.Value, 10)},
			{rtype: "service", resource: op.Key, optional: true},
		}
	case op.Workload == "lock":
		return lockExpectations(op)
	}
	return nil
}

// lockExpectations lists the records of the lock workload's writes: a
// session create one session record (its id is unknown when the answer was
// lost: any session then); an acquire or release that changed the key (or
// may have) one config record, whose value is not unique (every client
// writes its number); an increment one record of the counter with its
// value (the check-session and the get write nothing). A renew, a refused
// acquire and a release by a non-holder write nothing.
func lockExpectations(op *history.Op) []*expected {
	switch op.F {
	case history.FSessionCreate:
		return []*expected{{rtype: "session", resource: op.Session}}
	case history.FAcquire, history.FRelease:
		if op.Type != history.OK || op.Acquired {
			return []*expected{{rtype: "config", resource: op.Key, shared: true}}
		}
	case history.FIncr:
		return []*expected{{rtype: "config", resource: op.Key, value: strconv.FormatInt(op.Value, 10)}}
	}
	return nil
}

// isSystemActor: records a node makes on its own (leave, reaping, health).
func isSystemActor(a string) bool { return command.IsSystemActor(a) }

// reqPrefix is a request id without its sequence number: the id of the
// client that sent it ("jp-a1b2c3-17" → "jp-a1b2c3-").
func reqPrefix(id string) string {
	if i := strings.LastIndexByte(id, '-'); i > 0 {
		return id[:i+1]
	}
	return ""
}

// CheckAudit checks the audit archive against the history: every
// acknowledged write has exactly one row per record it makes, a write whose
// outcome is unknown at most one (all of an atomic write's or none), a
// failed write none; no row that no attempted write explains; and the
// archive itself: one row per (cluster, raft_index, position), positions of
// an index 0..n-1, one cluster id, nothing dropped, the watermark on a row
// that exists. Rows are matched to writes by X-Request-ID (the harness sets
// a unique one per request) and cross-checked by content (a config row
// carries the written value, unique per workload). ar nil: never read.
func CheckAudit(ops []history.Op, ar *AuditArchive) *AuditResult {
	res := &AuditResult{Counts: map[string]int{}, ByWorkload: map[string]int{}, Actions: map[string]int{}, ClusterIDs: []string{}}
	byReq := map[string]*auditWrite{}
	prefixes := map[string]bool{}
	cfgWriter := map[string]*auditWrite{} // "key=value" → the write that wrote it
	setServices := map[string]bool{}      // services the set workload used
	workloadKeys := map[string]bool{}     // config keys the workloads wrote
	lockKeys := map[string]bool{}         // keys the lock workload held as locks
	var writes []*auditWrite
	finalRead := false
	for i := range ops {
		op := &ops[i]
		if op.Workload == "audit" && op.F == history.FArchiveRead && op.Type == history.OK {
			finalRead = true
		}
		if op.Workload == "set" {
			setServices[op.Key] = true
		}
		if op.ReqID == "" {
			continue
		}
		prefixes[reqPrefix(op.ReqID)] = true
		w := &auditWrite{op: op, want: auditExpectations(op)}
		if prev, dup := byReq[op.ReqID]; dup {
			res.add(Anomaly{Kind: "harness", Ops: []int{prev.op.Index, op.Index}, Detail: "two ops sent with request id " + op.ReqID})
			continue
		}
		byReq[op.ReqID] = w
		if len(w.want) == 0 {
			continue
		}
		writes = append(writes, w)
		res.Writes.add(op.Type)
		res.ByWorkload[op.Workload]++
		for _, e := range w.want {
			if e.shared {
				lockKeys[e.resource] = true
			}
			if e.rtype == "config" {
				workloadKeys[e.resource] = true
				if e.value != "" {
					cfgWriter[e.resource+"="+e.value] = w
				}
			}
		}
	}
	if ar == nil || !finalRead {
		res.add(Anomaly{Kind: AuditNoFinalRead, Detail: "the archive was never read after healing"})
		res.finish()
		return res
	}
	res.Archive = ar
	res.Rows = len(ar.Rows)

	keys := map[AuditKey]*AuditRow{}
	type entryKey struct {
		cluster string
		index   int64
	}
	positions := map[entryKey][]int32{}
	clusters := map[string]int{}
	for i := range ar.Rows {
		r := &ar.Rows[i]
		res.Actions[r.Action]++
		clusters[r.ClusterID]++
		k := AuditKey{r.RaftIndex, r.Position}
		if prev, dup := keys[k]; dup && prev.ClusterID == r.ClusterID {
			res.add(Anomaly{Kind: AuditDuplicateKey, Key: r.Resource, Detail: fmt.Sprintf("%s and %s", prev, r)})
		}
		keys[k] = r
		positions[entryKey{r.ClusterID, r.RaftIndex}] = append(positions[entryKey{r.ClusterID, r.RaftIndex}], r.Position)

		w := byReq[r.RequestID]
		if w == nil {
			res.unmatched(r, cfgWriter, workloadKeys, setServices, prefixes, lockKeys)
			continue
		}
		e := w.slot(r)
		if e == nil {
			res.add(Anomaly{Kind: AuditForeign, Key: r.Resource, Ops: []int{w.op.Index},
				Detail: fmt.Sprintf("%s carries the request id of %s %s %s, which did not write it", r, w.op.Workload, w.op.F, w.op.Key)})
			continue
		}
		e.rows = append(e.rows, r)
		if e.value != "" && r.Value != e.value {
			res.add(Anomaly{Kind: AuditWrongValue, Key: r.Resource, Ops: []int{w.op.Index},
				Detail: fmt.Sprintf("%s: the write set %s", r, e.value)})
		}
		if w.op.Node != "" && r.Node != w.op.Node {
			res.add(Anomaly{Kind: AuditWrongNode, Key: r.Resource, Ops: []int{w.op.Index},
				Detail: fmt.Sprintf("%s: the request was sent to %s (the record names the node that received it)", r, w.op.Node)})
		}
	}
	for _, w := range writes {
		res.checkWrite(w)
	}
	res.checkArchive(ar, keys, clusters)
	var gaps []string
	for k, ps := range positions {
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		for i, p := range ps {
			if p != int32(i) {
				gaps = append(gaps, fmt.Sprintf("%s/%d: positions %v", k.cluster, k.index, ps))
				break
			}
		}
	}
	sort.Strings(gaps)
	for _, g := range gaps {
		res.add(Anomaly{Kind: AuditPositionGap, Detail: g})
	}
	res.finish()
	return res
}

// slot returns the expected record row r is for (nil: none).
func (w *auditWrite) slot(r *AuditRow) *expected {
	for _, e := range w.want {
		if e.rtype == r.ResourceType && (e.resource == r.Resource || (e.rtype == "session" && e.resource == "")) {
			return e
		}
	}
	return nil
}

// unmatched judges a row whose request id is no op's.
func (res *AuditResult) unmatched(r *AuditRow, cfgWriter map[string]*auditWrite, workloadKeys, setServices, prefixes, lockKeys map[string]bool) {
	if r.ResourceType == "config" {
		if w := cfgWriter[r.Resource+"="+r.Value]; w != nil {
			// The write's unique value, under another request id: count it
			// for the write (so it is not also reported lost) and report
			// the mismatch.
			if e := w.slot(r); e != nil {
				e.rows = append(e.rows, r)
			}
			res.add(Anomaly{Kind: AuditReqIDMismatch, Key: r.Resource, Ops: []int{w.op.Index},
				Detail: fmt.Sprintf("%s holds the value written by the op with request id %q", r, w.op.ReqID)})
			return
		}
	}
	service, _, _ := strings.Cut(r.Resource, "/")
	switch {
	case r.ResourceType == "config" && lockKeys[r.Resource] && r.Action == "release" && isSystemActor(r.Actor) && r.RequestID == "":
		// A session invalidated by the leader released the lock it held.
	case prefixes[reqPrefix(r.RequestID)] && r.RequestID != "":
		res.add(Anomaly{Kind: AuditUnexpected, Key: r.Resource, Detail: fmt.Sprintf("%s: a request id of the workloads' clients that no recorded op sent", r)})
	case r.ResourceType == "config" && (workloadKeys[r.Resource] || strings.HasPrefix(r.Resource, "jepsen/")):
		res.add(Anomaly{Kind: AuditUnexpected, Key: r.Resource, Detail: fmt.Sprintf("%s: no write of the workloads explains it", r)})
	case (r.ResourceType == "instance" || r.ResourceType == "service") && setServices[service] && !isSystemActor(r.Actor):
		res.add(Anomaly{Kind: AuditUnexpected, Key: r.Resource, Detail: fmt.Sprintf("%s: no write of the set workload explains it", r)})
	}
}

// checkWrite judges one write against its rows.
func (res *AuditResult) checkWrite(w *auditWrite) {
	op := w.op
	var present, missing, required int
	indexes := map[int64]bool{}
	for _, e := range w.want {
		for _, r := range e.rows {
			indexes[r.RaftIndex] = true
		}
		if len(e.rows) > 1 {
			var rs []string
			for _, r := range e.rows {
				rs = append(rs, r.String())
			}
			res.add(Anomaly{Kind: AuditDuplicate, Key: e.resource, Ops: []int{op.Index},
				Detail: fmt.Sprintf("%s %s %s (request id %q) has %d rows for %s %s: %s", op.Type, op.Workload, op.F, op.ReqID,
					len(e.rows), e.rtype, e.resource, strings.Join(rs, "; "))})
		}
		if e.optional {
			continue
		}
		required++
		if len(e.rows) > 0 {
			present++
		} else {
			missing++
		}
	}
	switch op.Type {
	case history.OK:
		if missing > 0 {
			var miss []string
			for _, e := range w.want {
				if !e.optional && len(e.rows) == 0 {
					miss = append(miss, e.rtype+" "+e.resource)
				}
			}
			res.add(Anomaly{Kind: AuditLost, Key: op.Key, Ops: []int{op.Index},
				Detail: fmt.Sprintf("acknowledged %s %s (request id %q, node %s, completed at %s) has no row for %s",
					op.Workload, op.F, op.ReqID, op.Node, ms(op.Complete), strings.Join(miss, ", "))})
		} else {
			res.ArchivedOK++
		}
	case history.Info:
		switch {
		case present == 0:
			res.UnarchivedInfo++
		case missing > 0:
			res.add(Anomaly{Kind: AuditPartial, Key: op.Key, Ops: []int{op.Index},
				Detail: fmt.Sprintf("%s %s (request id %q, outcome unknown): %d of its %d records archived", op.Workload, op.F, op.ReqID, present, required)})
		default:
			res.ArchivedInfo++
		}
	case history.Fail:
		var rs []string
		for _, e := range w.want {
			for _, r := range e.rows {
				rs = append(rs, r.String())
			}
		}
		if len(rs) > 0 {
			res.add(Anomaly{Kind: AuditFailed, Key: op.Key, Ops: []int{op.Index},
				Detail: fmt.Sprintf("%s %s (request id %q) failed (%d %s) but has rows: %s", op.Workload, op.F, op.ReqID, op.Status, op.Code, strings.Join(rs, "; "))})
		}
	}
	if len(indexes) > 1 {
		res.add(Anomaly{Kind: AuditSplit, Key: op.Key, Ops: []int{op.Index},
			Detail: fmt.Sprintf("%s %s (request id %q): rows at %d raft indexes (one write is one entry)", op.Workload, op.F, op.ReqID, len(indexes))})
	} else if op.F == history.FBatch && missing == 0 {
		for i, e := range w.want {
			if len(e.rows) == 1 && e.rows[0].Position != int32(i) {
				res.add(Anomaly{Kind: AuditSplit, Key: e.resource, Ops: []int{op.Index},
					Detail: fmt.Sprintf("batch (request id %q): key %d of the request is %s", op.ReqID, i, e.rows[0])})
				break
			}
		}
	}
}

// checkArchive checks what GET /audit/settings said against the rows.
func (res *AuditResult) checkArchive(ar *AuditArchive, keys map[AuditKey]*AuditRow, clusters map[string]int) {
	for c := range clusters {
		res.ClusterIDs = append(res.ClusterIDs, c)
	}
	sort.Strings(res.ClusterIDs)
	if len(clusters) > 1 {
		var parts []string
		for _, c := range res.ClusterIDs {
			parts = append(parts, fmt.Sprintf("%s (%d rows)", c, clusters[c]))
		}
		res.add(Anomaly{Kind: AuditClusterID, Detail: "rows of several clusters: " + strings.Join(parts, ", ")})
	}
	if !ar.Archiving {
		res.add(Anomaly{Kind: AuditNotDrained, Detail: "the cluster was not archiving (records are a ring) when the archive was read"})
	} else if ar.Backlog > 0 && ar.Watermark.Less(ar.Target) {
		res.add(Anomaly{Kind: AuditNotDrained, Detail: fmt.Sprintf("%d records still in the backlog when the archive was read (watermark %d/%d short of %d/%d)",
			ar.Backlog, ar.Watermark.RaftIndex, ar.Watermark.Position, ar.Target.RaftIndex, ar.Target.Position)})
	}
	if ar.Dropped > 0 || ar.Evicted > 0 {
		res.add(Anomaly{Kind: AuditDropped, Detail: fmt.Sprintf("the backlog dropped %d and evicted %d records", ar.Dropped, ar.Evicted)})
	}
	if ar.Watermark.RaftIndex > 0 && keys[ar.Watermark] == nil {
		res.add(Anomaly{Kind: AuditWatermark, Detail: fmt.Sprintf("the watermark %d/%d names no row of audit_events", ar.Watermark.RaftIndex, ar.Watermark.Position)})
	}
}

func (res *AuditResult) add(a Anomaly) {
	res.Counts[a.Kind]++
	if res.Counts[a.Kind] <= maxExamples {
		res.Anomalies = append(res.Anomalies, a)
	}
}

func (res *AuditResult) finish() {
	res.Lost = res.Counts[AuditLost]
	res.Duplicated = res.Counts[AuditDuplicate] + res.Counts[AuditDuplicateKey]
	res.Unexpected = res.Counts[AuditUnexpected] + res.Counts[AuditFailed] + res.Counts[AuditForeign]
	res.Valid = len(res.Counts) == 0
}
