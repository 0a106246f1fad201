package registry

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// Tables of the audit backlog.
const (
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

// auditRow is the row of the audit state table: the replicated state and
// the version of the backlog that goes with it (auditlog.go).
type auditRow struct {
	AuditState
	log auditLog
}

// popOldest removes the oldest record of the backlog and counts it out.
func (row *auditRow) popOldest() {
	r := row.log.pop()
	row.Records--
	row.Bytes -= r.Size()
}

func auditTables() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		tableAuditState: {Name: tableAuditState, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: byString(func(r *auditRow) string { return r.Key })},
		}},
	}
}

// AuditState returns a copy of the backlog state (defaults before the first
// record or setting) and adds its watch to ws.
func (tx *Tx) AuditState(ws memdb.WatchSet) AuditState {
	return tx.auditRow(ws).AuditState
}

// auditRow returns a copy of the audit row (the state and the backlog's
// version) and adds its watch to ws.
func (tx *Tx) auditRow(ws memdb.WatchSet) auditRow {
	if tx.audit != nil {
		return *tx.audit
	}
	ch, raw, err := tx.txn.FirstWatch(tableAuditState, "id", auditStateKey)
	if err == nil {
		ws.Add(ch)
	}
	if err != nil || raw == nil {
		return auditRow{AuditState: AuditState{Key: auditStateKey, Settings: DefaultAuditSettings()}}
	}
	return *raw.(*auditRow)
}

// putAuditRow replaces the audit row; the transaction writes it when it
// commits (flush).
func (tx *Tx) putAuditRow(row auditRow) error {
	tx.audit = &row
	return nil
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
	row := tx.auditRow(nil)
	s := &row.AuditState
	for i := range recs {
		r := recs[i]
		if old := row.log.put(r); old != nil {
			s.Records--
			s.Bytes -= old.Size()
		}
		if s.Last.Less(r.Key()) {
			s.Last = r.Key()
		}
		s.Records++
		s.Bytes += r.Size()
	}
	dropped, evicted = enforceAuditBounds(&row)
	return dropped, evicted, tx.putAuditRow(row)
}

// enforceAuditBounds removes the oldest records while the backlog is over
// a bound, unless it is archiving with on_full reject (then records wait;
// only system writes can push it over).
func enforceAuditBounds(row *auditRow) (dropped, evicted int) {
	s := &row.AuditState
	archiving := s.Archiving()
	if archiving && s.Settings.OnFull == OnFullReject {
		return 0, 0
	}
	for s.over() && row.log.Len() > 0 {
		row.popOldest()
		if archiving {
			dropped++
			s.Dropped++
		} else {
			evicted++
			s.Evicted++
		}
	}
	return dropped, evicted
}

// SetAuditWatermark moves the watermark forward to k (never back) and trims
// every record at or below it. attach marks an archiver as attached. It
// returns whether anything changed.
func (tx *Tx) SetAuditWatermark(k AuditKey, attach bool) (bool, error) {
	row := tx.auditRow(nil)
	s := &row.AuditState
	changed := false
	if attach && !s.Attached {
		s.Attached, changed = true, true
	}
	if s.Watermark.Less(k) {
		s.Watermark, changed = k, true
		for row.log.Len() > 0 && !k.Less(row.log.at(0).Key()) {
			row.popOldest()
		}
	}
	if !changed {
		return false, nil
	}
	s.ModifyIndex = tx.index
	return true, tx.putAuditRow(row)
}

// SetAuditSettings applies a validated patch and returns the settings
// before and after. A smaller bound takes effect at once where the backlog
// may drop or evict.
func (tx *Tx) SetAuditSettings(p AuditSettingsPatch) (before, after AuditSettings, dropped, evicted int, e *Error) {
	if e := p.Validate(); e != nil {
		return before, after, 0, 0, e
	}
	row := tx.auditRow(nil)
	s := &row.AuditState
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
	dropped, evicted = enforceAuditBounds(&row)
	if err := tx.putAuditRow(row); err != nil {
		return before, after, 0, 0, internal(err)
	}
	return before, s.Settings, dropped, evicted, nil
}

// AuditBacklog returns up to limit records above after, oldest first (the
// archiver reads it). It watches the backlog state (which moves on every
// append) through ws.
func (tx *Tx) AuditBacklog(ws memdb.WatchSet, after AuditKey, limit int) []AuditRecord {
	row := tx.auditRow(ws)
	var out []AuditRecord
	row.log.each(row.log.search(after), func(r *AuditRecord) bool {
		if len(out) >= limit {
			return false
		}
		if after.Less(r.Key()) {
			out = append(out, *r)
		}
		return true
	})
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
	row := tx.auditRow(ws)
	end := row.log.Len()
	if !f.Before.IsZero() {
		end = row.log.search(f.Before)
	}
	out := []AuditRecord{}
	row.log.eachReverse(end, func(r *AuditRecord) bool {
		if len(out) >= f.Limit {
			return false
		}
		if f.Match(r) {
			out = append(out, *r)
		}
		return true
	})
	return out
}

// eachAuditRecord calls fn for every record of the backlog, oldest first,
// until fn returns an error.
func (tx *Tx) eachAuditRecord(fn func(*AuditRecord) error) error {
	row := tx.auditRow(nil)
	var err error
	row.log.each(0, func(r *AuditRecord) bool {
		err = fn(r)
		return err == nil
	})
	return err
}

// loadAudit restores the backlog and its state from a dump, or a part of
// one: records are added to those already loaded, the state replaces the
// one loaded so far.
func (tx *Tx) loadAudit(d *Dump) error {
	if len(d.Audit) == 0 && d.AuditState == nil {
		return nil
	}
	row := tx.auditRow(nil)
	for i := range d.Audit {
		row.log.put(d.Audit[i])
	}
	if d.AuditState != nil {
		row.AuditState = *d.AuditState
		row.Key = auditStateKey
	}
	return tx.putAuditRow(row)
}
