package registry

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// Tables of the audit backlog.
const (
	tableAudit      = "audit"
	tableAuditState = "audit_state"
	auditStateKey   = "audit"
)

// Resource types of audit records (api.md, Audit).
const (
	AuditService  = "service"
	AuditInstance = "instance"
	AuditConfig   = "config"
	AuditRoute    = "route"
	AuditACL      = "acl"
	AuditCluster  = "cluster"
)

// Actions of audit records.
const (
	ActionRegister   = "register"
	ActionUpdate     = "update"
	ActionDeregister = "deregister"
	ActionSet        = "set"
	ActionDelete     = "delete"
	ActionUpsert     = "upsert"
	ActionStatus     = "status"
	ActionInit       = "init"
	// ACL verbs (resource_type acl; resource "token:ID", "policy:NAME",
	// "role:NAME").
	ActionBootstrap = "bootstrap"
	ActionCreate    = "create"
	ActionRevoke    = "revoke"
)

// What a full backlog does (AuditSettings.OnFull).
const (
	OnFullReject     = "reject"
	OnFullDropOldest = "drop_oldest"
)

// Archive modes (AuditSettings.Archive).
const (
	// ArchiveAuto archives once an archiver attached (a leader with
	// --postgres-url committed its first watermark); before that the backlog
	// is a ring of the latest records.
	ArchiveAuto = "auto"
	// ArchiveOn always keeps records until they are archived.
	ArchiveOn = "on"
	// ArchiveOff makes the backlog a ring even when an archiver runs; the
	// archiver then stays idle.
	ArchiveOff = "off"
)

// Defaults and limits of the audit settings.
const (
	DefaultAuditMaxRecords = 100_000
	DefaultAuditMaxBytes   = 256 << 20
	MaxAuditMaxRecords     = 10_000_000
	MaxAuditMaxBytes       = 4 << 30
	MinAuditMaxBytes       = 4 << 10
	// CodeAuditBacklogFull is the business error of a user write refused
	// because the backlog is full and on_full is reject.
	CodeAuditBacklogFull = "audit_backlog_full"
	// auditRecordOverhead is what a record costs beyond its variable fields,
	// in the byte accounting (an estimate, but a deterministic one).
	auditRecordOverhead = 64
)

// AuditKey orders audit records: the Raft index of the entry that produced
// a record, then its position among the records of that entry.
type AuditKey struct {
	Index    uint64 `json:"raft_index" msgpack:"i"`
	Position uint32 `json:"position" msgpack:"p"`
}

// Less reports whether k sorts before o.
func (k AuditKey) Less(o AuditKey) bool {
	return k.Index < o.Index || (k.Index == o.Index && k.Position < o.Position)
}

// IsZero reports whether k is the zero key (before every record).
func (k AuditKey) IsZero() bool { return k.Index == 0 && k.Position == 0 }

func (k AuditKey) String() string { return fmt.Sprintf("%d-%d", k.Index, k.Position) }

// bytes is the memdb key: 12 big-endian bytes, so byte order is key order.
// bytes is the key in the audit table's radix tree: the big-endian index
// and position spelled one nibble per byte. The order is the same as with
// whole bytes, but a tree node then has at most 16 children instead of 256:
// keys are sequential, so every append (and every eviction) copies the path
// to the newest (oldest) leaf, and copying 16-edge nodes instead of
// 256-edge ones cut the allocation per audited write from 27-32 KB to
// 15-19 KB and Apply's time by ~20% (BenchmarkApplyConfigSet in fsm).
func (k AuditKey) bytes() []byte {
	var raw [12]byte
	binary.BigEndian.PutUint64(raw[:], k.Index)
	binary.BigEndian.PutUint32(raw[8:], k.Position)
	b := make([]byte, 2*len(raw))
	for i, c := range raw {
		b[2*i], b[2*i+1] = c>>4, c&0x0f
	}
	return b
}

// AuditRecord is one change of the replicated state, as Apply saw it.
// Before and After are JSON documents (nil for none).
type AuditRecord struct {
	Index        uint64          `msgpack:"i"`
	Position     uint32          `msgpack:"p"`
	Time         int64           `msgpack:"t"` // proposer clock, Unix ns
	Actor        string          `msgpack:"actor"`
	Action       string          `msgpack:"action"`
	ResourceType string          `msgpack:"rtype"`
	Resource     string          `msgpack:"res"`
	Node         string          `msgpack:"node"`
	RequestID    string          `msgpack:"rid"`
	Before       json.RawMessage `msgpack:"before"`
	After        json.RawMessage `msgpack:"after"`
}

// Key returns the record's key.
func (r *AuditRecord) Key() AuditKey { return AuditKey{Index: r.Index, Position: r.Position} }

// Size is the record's cost in the backlog's byte bound.
func (r *AuditRecord) Size() int64 {
	return int64(auditRecordOverhead + len(r.Actor) + len(r.Action) + len(r.ResourceType) + len(r.Resource) +
		len(r.Node) + len(r.RequestID) + len(r.Before) + len(r.After))
}

// AuditSettings are the replicated settings of the audit backlog. They
// change what Apply does, so they are cluster state, not node flags.
type AuditSettings struct {
	MaxRecords int64  `json:"max_records" msgpack:"max_records"`
	MaxBytes   int64  `json:"max_bytes" msgpack:"max_bytes"`
	OnFull     string `json:"on_full" msgpack:"on_full"`
	Archive    string `json:"archive" msgpack:"archive"`
}

// DefaultAuditSettings are the settings of a cluster that never set any.
func DefaultAuditSettings() AuditSettings {
	return AuditSettings{MaxRecords: DefaultAuditMaxRecords, MaxBytes: DefaultAuditMaxBytes, OnFull: OnFullReject, Archive: ArchiveAuto}
}

// AuditSettingsPatch changes some settings; nil fields stay.
type AuditSettingsPatch struct {
	MaxRecords *int64
	MaxBytes   *int64
	OnFull     *string
	Archive    *string
}

// Validate checks a patch and names the offending field.
func (p *AuditSettingsPatch) Validate() *Error {
	if p.MaxRecords != nil && (*p.MaxRecords < 1 || *p.MaxRecords > MaxAuditMaxRecords) {
		return invalid("max_records", "%d is out of range 1..%d", *p.MaxRecords, MaxAuditMaxRecords)
	}
	if p.MaxBytes != nil && (*p.MaxBytes < MinAuditMaxBytes || *p.MaxBytes > MaxAuditMaxBytes) {
		return invalid("max_bytes", "%d is out of range %d..%d", *p.MaxBytes, MinAuditMaxBytes, MaxAuditMaxBytes)
	}
	if p.OnFull != nil && *p.OnFull != OnFullReject && *p.OnFull != OnFullDropOldest {
		return invalid("on_full", "%q must be reject or drop_oldest", *p.OnFull)
	}
	if p.Archive != nil && *p.Archive != ArchiveAuto && *p.Archive != ArchiveOn && *p.Archive != ArchiveOff {
		return invalid("archive", "%q must be auto, on or off", *p.Archive)
	}
	return nil
}

// AuditState is the replicated state of the backlog: its settings, its
// size, the archive watermark and the counters of records it let go.
type AuditState struct {
	Key      string        `msgpack:"key"` // always "audit"
	Settings AuditSettings `msgpack:"settings"`
	// Attached is set by the first watermark an archiver commits with
	// Attach (ArchiveAuto then means archiving).
	Attached bool `msgpack:"attached"`
	// Watermark is the last record known to be in the archive; records at
	// or below it are trimmed from the backlog on every node.
	Watermark AuditKey `msgpack:"watermark"`
	// Last is the key of the newest record ever appended.
	Last    AuditKey `msgpack:"last"`
	Records int64    `msgpack:"records"`
	Bytes   int64    `msgpack:"bytes"`
	// Dropped counts records removed unarchived by on_full drop_oldest;
	// Evicted counts records removed from the ring while not archiving.
	Dropped uint64 `msgpack:"dropped"`
	Evicted uint64 `msgpack:"evicted"`
	// ModifyIndex is the Raft index of the last change of the settings or
	// the watermark.
	ModifyIndex uint64 `msgpack:"mi"`
}

// Archiving reports whether records wait in the backlog for an archiver
// (else the backlog is a ring of the latest records).
func (s *AuditState) Archiving() bool {
	switch s.Settings.Archive {
	case ArchiveOn:
		return true
	case ArchiveOff:
		return false
	}
	return s.Attached
}

// Full reports whether the backlog is at or above one of its bounds.
func (s *AuditState) Full() bool {
	return s.Records >= s.Settings.MaxRecords || s.Bytes >= s.Settings.MaxBytes
}

func (s *AuditState) over() bool {
	return s.Records > s.Settings.MaxRecords || s.Bytes > s.Settings.MaxBytes
}

// auditKeyIndex indexes AuditRecord by its key.
type auditKeyIndex struct{}

func (auditKeyIndex) FromObject(raw any) (bool, []byte, error) {
	r, ok := raw.(*AuditRecord)
	if !ok {
		return false, nil, fmt.Errorf("audit index: %T is not an audit record", raw)
	}
	return true, r.Key().bytes(), nil
}

func (auditKeyIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("audit index: one AuditKey argument expected, got %d", len(args))
	}
	k, ok := args[0].(AuditKey)
	if !ok {
		return nil, fmt.Errorf("audit index: %T is not an AuditKey", args[0])
	}
	return k.bytes(), nil
}

func auditTables() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		tableAudit: {Name: tableAudit, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: auditKeyIndex{}},
		}},
		tableAuditState: {Name: tableAuditState, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		}},
	}
}

// AuditState returns a copy of the backlog state (defaults before the first
// record or setting) and adds its watch to ws.
func (tx *Tx) AuditState(ws memdb.WatchSet) AuditState {
	ch, raw, err := tx.txn.FirstWatch(tableAuditState, "id", auditStateKey)
	if err == nil {
		ws.Add(ch)
	}
	if err != nil || raw == nil {
		return AuditState{Key: auditStateKey, Settings: DefaultAuditSettings()}
	}
	return *raw.(*AuditState)
}

func (tx *Tx) putAuditState(s AuditState) error {
	return tx.txn.Insert(tableAuditState, &s)
}

// AuditAdmit decides whether a write may add audit records: a user write
// is refused with audit_backlog_full when the backlog is archiving, full,
// and on_full is reject. System writes always pass.
func (tx *Tx) AuditAdmit(system bool) *Error {
	if system {
		return nil
	}
	s := tx.AuditState(nil)
	if s.Archiving() && s.Settings.OnFull == OnFullReject && s.Full() {
		return errorf(CodeAuditBacklogFull, "the audit backlog is full (%d records, %d bytes; limits %d, %d): the archive is behind; the write was not applied",
			s.Records, s.Bytes, s.Settings.MaxRecords, s.Settings.MaxBytes)
	}
	return nil
}

// AppendAudit adds records (keyed by Raft index and position, so normally
// above every stored key) and enforces the bounds: while archiving with
// drop_oldest, and always while not archiving, the oldest records go. It
// returns how many were dropped (unarchived, by drop_oldest) and evicted
// (from the ring). A key already present (only after restoring a foreign
// snapshot) is replaced, never counted twice.
func (tx *Tx) AppendAudit(recs []AuditRecord) (dropped, evicted int, err error) {
	if len(recs) == 0 {
		return 0, 0, nil
	}
	s := tx.AuditState(nil)
	for i := range recs {
		r := recs[i]
		if raw, err := tx.txn.First(tableAudit, "id", r.Key()); err != nil {
			return 0, 0, err
		} else if raw != nil {
			s.Records--
			s.Bytes -= raw.(*AuditRecord).Size()
		}
		if err := tx.txn.Insert(tableAudit, &r); err != nil {
			return 0, 0, err
		}
		if s.Last.Less(r.Key()) {
			s.Last = r.Key()
		}
		s.Records++
		s.Bytes += r.Size()
	}
	dropped, evicted, err = tx.enforceAuditBounds(&s)
	if err != nil {
		return 0, 0, err
	}
	return dropped, evicted, tx.putAuditState(s)
}

// enforceAuditBounds removes the oldest records while the backlog is over
// a bound, unless it is archiving with on_full reject (then records wait;
// only system writes can push it over).
func (tx *Tx) enforceAuditBounds(s *AuditState) (dropped, evicted int, err error) {
	archiving := s.Archiving()
	if archiving && s.Settings.OnFull == OnFullReject {
		return 0, 0, nil
	}
	for s.over() && s.Records > 0 {
		raw, err := tx.txn.First(tableAudit, "id")
		if err != nil {
			return 0, 0, err
		}
		if raw == nil {
			break
		}
		r := raw.(*AuditRecord)
		if err := tx.txn.Delete(tableAudit, r); err != nil {
			return 0, 0, err
		}
		s.Records--
		s.Bytes -= r.Size()
		if archiving {
			dropped++
			s.Dropped++
		} else {
			evicted++
			s.Evicted++
		}
	}
	return dropped, evicted, nil
}

// SetAuditWatermark moves the watermark forward to k (never back) and trims
// every record at or below it. attach marks an archiver as attached. It
// returns whether anything changed.
func (tx *Tx) SetAuditWatermark(k AuditKey, attach bool) (bool, error) {
	s := tx.AuditState(nil)
	changed := false
	if attach && !s.Attached {
		s.Attached, changed = true, true
	}
	if s.Watermark.Less(k) {
		s.Watermark, changed = k, true
		for {
			raw, err := tx.txn.First(tableAudit, "id")
			if err != nil {
				return false, err
			}
			if raw == nil {
				break
			}
			r := raw.(*AuditRecord)
			if k.Less(r.Key()) {
				break
			}
			if err := tx.txn.Delete(tableAudit, r); err != nil {
				return false, err
			}
			s.Records--
			s.Bytes -= r.Size()
		}
	}
	if !changed {
		return false, nil
	}
	s.ModifyIndex = tx.index
	return true, tx.putAuditState(s)
}

// SetAuditSettings applies a validated patch and returns the settings
// before and after. A smaller bound takes effect at once where the backlog
// may drop or evict.
func (tx *Tx) SetAuditSettings(p AuditSettingsPatch) (before, after AuditSettings, dropped, evicted int, e *Error) {
	if e := p.Validate(); e != nil {
		return before, after, 0, 0, e
	}
	s := tx.AuditState(nil)
	before = s.Settings
	if p.MaxRecords != nil {
		s.Settings.MaxRecords = *p.MaxRecords
	}
	if p.MaxBytes != nil {
		s.Settings.MaxBytes = *p.MaxBytes
	}
	if p.OnFull != nil {
		s.Settings.OnFull = *p.OnFull
	}
	if p.Archive != nil {
		s.Settings.Archive = *p.Archive
	}
	s.ModifyIndex = tx.index
	dropped, evicted, err := tx.enforceAuditBounds(&s)
	if err != nil {
		return before, after, 0, 0, internal(err)
	}
	if err := tx.putAuditState(s); err != nil {
		return before, after, 0, 0, internal(err)
	}
	return before, s.Settings, dropped, evicted, nil
}

// AuditBacklog returns up to limit records above after, oldest first (the
// archiver reads it). It watches the backlog state (which moves on every
// append) through ws.
func (tx *Tx) AuditBacklog(ws memdb.WatchSet, after AuditKey, limit int) []AuditRecord {
	tx.AuditState(ws)
	it, err := tx.txn.LowerBound(tableAudit, "id", after)
	if err != nil {
		return nil
	}
	var out []AuditRecord
	for raw := it.Next(); raw != nil && len(out) < limit; raw = it.Next() {
		r := raw.(*AuditRecord)
		if !after.Less(r.Key()) {
			continue
		}
		out = append(out, *r)
	}
	return out
}

// AuditFilter selects audit records for GET /audit. Zero fields match all.
type AuditFilter struct {
	ResourceType string
	Resource     string
	Actor        string
	Action       string
	// Since keeps records with Time at or after it (Unix ns); 0 = all.
	Since int64
	// Before keeps records strictly below this key (the paging cursor);
	// the zero key means from the newest.
	Before AuditKey
	Limit  int
}

// Match reports whether r passes the filter (the cursor aside).
func (f *AuditFilter) Match(r *AuditRecord) bool {
	return (f.ResourceType == "" || r.ResourceType == f.ResourceType) &&
		(f.Resource == "" || r.Resource == f.Resource) &&
		(f.Actor == "" || r.Actor == f.Actor) &&
		(f.Action == "" || r.Action == f.Action) &&
		(f.Since == 0 || r.Time >= f.Since)
}

// AuditList returns up to f.Limit matching records of the backlog, newest
// first, below the cursor. It watches the backlog state (which moves on
// every append) through ws.
func (tx *Tx) AuditList(ws memdb.WatchSet, f AuditFilter) []AuditRecord {
	tx.AuditState(ws)
	var it memdb.ResultIterator
	var err error
	if f.Before.IsZero() {
		it, err = tx.txn.GetReverse(tableAudit, "id")
	} else {
		it, err = tx.txn.ReverseLowerBound(tableAudit, "id", f.Before)
	}
	if err != nil {
		return nil
	}
	out := []AuditRecord{}
	for raw := it.Next(); raw != nil && len(out) < f.Limit; raw = it.Next() {
		r := raw.(*AuditRecord)
		if !f.Before.IsZero() && !r.Key().Less(f.Before) {
			continue
		}
		if f.Match(r) {
			out = append(out, *r)
		}
	}
	return out
}

// loadAudit restores the backlog and its state from a dump.
func (tx *Tx) loadAudit(d *Dump) error {
	for i := range d.Audit {
		if err := tx.txn.Insert(tableAudit, &d.Audit[i]); err != nil {
			return err
		}
	}
	if d.AuditState != nil {
		s := *d.AuditState
		s.Key = auditStateKey
		return tx.putAuditState(s)
	}
	return nil
}
