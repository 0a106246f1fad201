package registry

import (
	"encoding/json"
	"regexp"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Session tables. A session's held keys are found through the config
// table's "session" index, so nothing else records who holds what.
const (
	tableSessions   = "sessions"
	tableLockDelays = "lock_delays"
	// TableSessions is the table-index key bumped when a session is created
	// or invalidated (X-Nexus-Index of GET /sessions). A renew does not
	// bump it: it is a keep-alive, not a change anyone waits for.
	TableSessions = "sessions"
)

// Session behaviors: what an invalidation does to the keys a session holds.
const (
	BehaviorRelease = "release"
	BehaviorDelete  = "delete"
)

// Invalidation reasons (audit records and nexus_session_invalidations_total).
const (
	ReasonTTL        = "ttl"
	ReasonNodeFailed = "node_failed"
	ReasonNodeLeft   = "node_left"
	ReasonDestroy    = "destroy"
)

// Audit records of sessions and locks (docs/audit.md): resource type
// session (resource = the session id) with create, destroy and
// invalidate; config records acquire and release for locks.
const (
	AuditSession     = "session"
	ActionDestroy    = "destroy"
	ActionInvalidate = "invalidate"
	ActionAcquire    = "acquire"
	ActionRelease    = "release"
)

// Limits and defaults of sessions (docs/sessions.md).
const (
	MinSessionTTL    = 10 * time.Second
	MaxSessionTTL    = 24 * time.Hour
	DefaultLockDelay = "15s"
	MaxLockDelay     = 60 * time.Second
	maxSessionName   = 128
)

var (
	sessionIDPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	sessionNamePattern = regexp.MustCompile(`^[A-Za-z0-9._:/@ -]{0,128}$`) // spaces: Consul clients name sessions "Consul API Lock"
	nodeNamePattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// Session is a replicated session: applications hold locks on config keys
// through it, and lose them when it is invalidated (TTL without a renew,
// its node failed or left, or destroyed). TTL and LockDelay are kept as
// the durations the user gave (validated on write).
type Session struct {
	ID        string `json:"id" msgpack:"id"`
	Name      string `json:"name" msgpack:"name"`
	Node      string `json:"node" msgpack:"node"`
	TTL       string `json:"ttl,omitempty" msgpack:"ttl"`
	Behavior  string `json:"behavior" msgpack:"behavior"`
	LockDelay string `json:"lock_delay" msgpack:"lock_delay"`
	// CreateTime is the proposer's clock, Unix ns (shown as create_time).
	CreateTime int64 `json:"-" msgpack:"create_time"`
	// RenewIndex is the Raft index of the last renew (the create at
	// first). The leader's TTL timer restarts whenever it moves, and a TTL
	// invalidation names the renew index it timed (docs/sessions.md).
	RenewIndex  uint64 `json:"renew_index" msgpack:"ri"`
	CreateIndex uint64 `json:"create_index" msgpack:"ci"`
	ModifyIndex uint64 `json:"modify_index" msgpack:"mi"`
}

// MarshalJSON adds create_time in RFC 3339 (UTC: the same text on every
// replica).
func (s Session) MarshalJSON() ([]byte, error) {
	type plain Session
	return json.Marshal(struct {
		plain
		CreateTime string `json:"create_time"`
	}{plain(s), time.Unix(0, s.CreateTime).UTC().Format(time.RFC3339Nano)})
}

// TTLDuration returns the session's TTL, 0 for none.
func (s *Session) TTLDuration() time.Duration {
	d, _ := time.ParseDuration(s.TTL)
	return d
}

// LockDelayDuration returns the session's lock delay.
func (s *Session) LockDelayDuration() time.Duration {
	d, _ := time.ParseDuration(s.LockDelay)
	return d
}

// LockDelay records that a key was held by a session when it was
// invalidated: the key cannot be acquired until the leader ends the delay
// (a LockDelayEnd command, after Delay on the leader's clock).
type LockDelay struct {
	Key     string `json:"key" msgpack:"key"`
	Session string `json:"session" msgpack:"session"`
	// Delay is the session's lock_delay in ns.
	Delay int64 `json:"-" msgpack:"delay"`
	// Index is the Raft index of the invalidation that started the delay;
	// an end names it, so an old end never cuts a newer delay short.
	Index uint64 `json:"index" msgpack:"index"`
}

func sessionTables() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		tableSessions: {Name: tableSessions, Indexes: map[string]*memdb.IndexSchema{
			"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			"node": {Name: "node", Indexer: &memdb.StringFieldIndex{Field: "Node"}},
		}},
		tableLockDelays: {Name: tableLockDelays, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		}},
	}
}

// configSessionIndex is the config table's index of held keys by session.
func configSessionIndex() *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: "session", AllowMissing: true, Indexer: byString(func(e *ConfigEntry) string { return e.Session })}
}

// ---- validation (the proposer validates; Apply validates again) ----

// NormalizeSession fills a session's defaults (behavior release, lock
// delay 15s) and validates it; errors name the JSON field. ID and Node
// are the proposer's to fill.
func NormalizeSession(s Session) (Session, *Error) {
	if s.Behavior == "" {
		s.Behavior = BehaviorRelease
	}
	if s.LockDelay == "" {
		s.LockDelay = DefaultLockDelay
	}
	if !sessionIDPattern.MatchString(s.ID) {
		return s, invalid("id", "%q must be 1-64 characters of letters, digits, '_', '-'", s.ID)
	}
	if len(s.Name) > maxSessionName || !sessionNamePattern.MatchString(s.Name) {
		return s, invalid("name", "must be at most %d characters of letters, digits, spaces and ._:/@-", maxSessionName)
	}
	if !nodeNamePattern.MatchString(s.Node) {
		return s, invalid("node", "%q is not a node name", s.Node)
	}
	if s.TTL != "" {
		d, err := time.ParseDuration(s.TTL)
		if err != nil {
			return s, invalid("ttl", "%q is not a duration like 15s", s.TTL)
		}
		if d < MinSessionTTL || d > MaxSessionTTL {
			return s, invalid("ttl", "%s is out of range %s..%s", s.TTL, MinSessionTTL, MaxSessionTTL)
		}
	}
	switch s.Behavior {
	case BehaviorRelease, BehaviorDelete:
	default:
		return s, invalid("behavior", "must be release or delete, not %q", s.Behavior)
	}
	d, err := time.ParseDuration(s.LockDelay)
	if err != nil {
		return s, invalid("lock_delay", "%q is not a duration like 15s", s.LockDelay)
	}
	if d < 0 || d > MaxLockDelay {
		return s, invalid("lock_delay", "%s is out of range 0s..%s", s.LockDelay, MaxLockDelay)
	}
	return s, nil
}

// ValidSessionID reports whether id has the shape of a session id.
func ValidSessionID(id string) bool { return sessionIDPattern.MatchString(id) }

// ---- reads ----

// first returns the object of table whose index matches args, or nil,
// and adds its watch to ws.
func first[T any](tx *Tx, ws memdb.WatchSet, table, index string, args ...any) *T {
	ch, raw, err := tx.txn.FirstWatch(table, index, args...)
	if err != nil {
		return nil
	}
	ws.Add(ch)
	if raw == nil {
		return nil
	}
	return raw.(*T)
}

// list returns copies of the objects of table whose index matches args,
// in index order, and adds their watch to ws.
func list[T any](tx *Tx, ws memdb.WatchSet, table, index string, args ...any) []T {
	it, err := tx.txn.Get(table, index, args...)
	if err != nil {
		return nil
	}
	ws.Add(it.WatchCh())
	var out []T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, *raw.(*T))
	}
	return out
}

// Session returns a session or nil.
func (tx *Tx) Session(ws memdb.WatchSet, id string) *Session {
	return first[Session](tx, ws, tableSessions, "id", id)
}

// Sessions returns every session sorted by id.
func (tx *Tx) Sessions(ws memdb.WatchSet) []Session {
	return list[Session](tx, ws, tableSessions, "id")
}

// NodeSessions returns the sessions of a node sorted by id.
func (tx *Tx) NodeSessions(ws memdb.WatchSet, node string) []Session {
	return list[Session](tx, ws, tableSessions, "node", node)
}

// SessionCounts returns the number of sessions, of held keys and of keys
// in their lock delay.
func (tx *Tx) SessionCounts() (sessions, held, delayed int) {
	count := func(table, index string) int {
		it, err := tx.txn.Get(table, index)
		if err != nil {
			return 0
		}
		n := 0
		for raw := it.Next(); raw != nil; raw = it.Next() {
			n++
		}
		return n
	}
	return count(tableSessions, "id"), count(tableConfig, "session"), count(tableLockDelays, "id")
}

// SessionKeys returns the config entries a session holds, sorted by key
// (the index orders a session's entries by their primary key).
func (tx *Tx) SessionKeys(ws memdb.WatchSet, id string) []ConfigEntry {
	return list[ConfigEntry](tx, ws, tableConfig, "session", id)
}

// LockDelayOf returns the lock delay of a key, or nil.
func (tx *Tx) LockDelayOf(ws memdb.WatchSet, key string) *LockDelay {
	return first[LockDelay](tx, ws, tableLockDelays, "id", key)
}

// LockDelays returns every key under lock delay, sorted by key.
func (tx *Tx) LockDelays(ws memdb.WatchSet) []LockDelay {
	return list[LockDelay](tx, ws, tableLockDelays, "id")
}

// ---- writes (FSM only) ----

// CreateSession stores a new session (normalized and validated again).
func (tx *Tx) CreateSession(s Session) (*Session, *Error) {
	s, e := NormalizeSession(s)
	if e != nil {
		return nil, e
	}
	if tx.Session(nil, s.ID) != nil {
		return nil, errorf(CodeConflict, "session %q exists already", s.ID)
	}
	s.CreateIndex, s.ModifyIndex, s.RenewIndex = tx.index, tx.index, tx.index
	stored := s
	if err := tx.txn.Insert(tableSessions, &stored); err != nil {
		return nil, internal(err)
	}
	if err := tx.bumpIndex(TableSessions); err != nil {
		return nil, internal(err)
	}
	return &stored, nil
}

// errSessionGone is the answer about a session that does not exist.
func errSessionGone(id string) *Error {
	return errorf(CodeNotFound, "session %q not found (never created, destroyed or invalidated)", id)
}

// RenewSession moves a session's renew index to this entry: the leader
// restarts its TTL timer when it sees the move.
func (tx *Tx) RenewSession(id string) (*Session, *Error) {
	prev := tx.Session(nil, id)
	if prev == nil {
		return nil, errSessionGone(id)
	}
	next := *prev
	next.RenewIndex = tx.index
	if err := tx.txn.Insert(tableSessions, &next); err != nil {
		return nil, internal(err)
	}
	return &next, nil
}

// ConfigChange is one key changed by an invalidation or a transaction:
// Before nil = created, After nil = deleted.
type ConfigChange struct {
	Before, After *ConfigEntry
}

// Invalidation is what invalidating a session did.
type Invalidation struct {
	Session Session
	// Released (behavior release) or Deleted (behavior delete) keys, by key.
	Released []ConfigChange
	Deleted  []ConfigEntry
	// Delays are the lock delays started (none when lock_delay is 0).
	Delays []LockDelay
}

// InvalidateSession deletes a session and releases or deletes every key
// it holds, starting their lock delay, in this one entry. With renewIndex
// set (a TTL invalidation) a session renewed since that index is left
// alone: the answer is then nil, nil, so a renew racing the timer never
// ends a live session. A session that does not exist is not_found.
func (tx *Tx) InvalidateSession(id string, renewIndex *uint64) (*Invalidation, *Error) {
	s := tx.Session(nil, id)
	if s == nil {
		return nil, errSessionGone(id)
	}
	if renewIndex != nil && *renewIndex != s.RenewIndex {
		return nil, nil
	}
	inv := &Invalidation{Session: *s}
	delay := s.LockDelayDuration()
	for _, held := range tx.SessionKeys(nil, id) {
		before := held
		if s.Behavior == BehaviorDelete {
			if err := tx.txn.Delete(tableConfig, &before); err != nil {
				return nil, internal(err)
			}
			inv.Deleted = append(inv.Deleted, before)
		} else {
			after := held
			after.Session = ""
			after.ModifyIndex = tx.index
			if err := tx.txn.Insert(tableConfig, &after); err != nil {
				return nil, internal(err)
			}
			inv.Released = append(inv.Released, ConfigChange{Before: &before, After: &after})
		}
		if delay > 0 {
			d := LockDelay{Key: held.Key, Session: id, Delay: int64(delay), Index: tx.index}
			if err := tx.txn.Insert(tableLockDelays, &d); err != nil {
				return nil, internal(err)
			}
			inv.Delays = append(inv.Delays, d)
		}
	}
	if err := tx.txn.Delete(tableSessions, s); err != nil {
		return nil, internal(err)
	}
	keys := []string{TableSessions}
	if len(inv.Released)+len(inv.Deleted) > 0 {
		keys = append(keys, tableConfig)
	}
	if err := tx.bumpIndex(keys...); err != nil {
		return nil, internal(err)
	}
	return inv, nil
}

// EndLockDelays ends the lock delays named by key and index; a delay
// restarted since (another index) stays. It returns the keys ended.
func (tx *Tx) EndLockDelays(ends []LockDelay) ([]string, *Error) {
	var out []string
	for _, e := range ends {
		cur := tx.LockDelayOf(nil, e.Key)
		if cur == nil || cur.Index != e.Index {
			continue
		}
		if err := tx.txn.Delete(tableLockDelays, cur); err != nil {
			return nil, internal(err)
		}
		out = append(out, e.Key)
	}
	return out, nil
}

// ---- locks ----

// Why an acquire or release did nothing (LockOutcome.Reason).
const (
	// LockHeld: another session holds the key.
	LockHeld = "held"
	// LockDelayed: the key is in its lock delay after an invalidation.
	LockDelayed = "lock_delay"
	// LockNotHolder: a release by a session that does not hold the key.
	LockNotHolder = "not_holder"
	// LockNoSession: a transaction's lock op named a session that does not
	// exist (never created, destroyed or invalidated).
	LockNoSession = "no_session"
)

// LockOutcome is the answer of an acquire or a release. OK is true when
// the session holds (acquire) or no longer holds (release) the key;
// Entry is the key as it is after the command (nil: no such key).
type LockOutcome struct {
	OK     bool
	Reason string
	Prev   *ConfigEntry
	Entry  *ConfigEntry
}

// acquireEntry decides an acquisition of a key whose current entry is
// prev (nil: none) by session: the next entry, or a reason why not. A
// value nil keeps the current value (null for a new key). lock_index
// grows when the key changes hands, not when its holder acquires again.
func acquireEntry(key string, prev *ConfigEntry, value []byte, session string, delayed bool, idx uint64) (*ConfigEntry, string) {
	if prev != nil && prev.Session != "" && prev.Session != session {
		return nil, LockHeld
	}
	if delayed && (prev == nil || prev.Session != session) {
		return nil, LockDelayed
	}
	next := ConfigEntry{Key: key, Value: value, CreateIndex: idx, ModifyIndex: idx, Session: session, LockIndex: 1}
	if prev != nil {
		next.CreateIndex, next.LockIndex = prev.CreateIndex, prev.LockIndex
		if prev.Session != session {
			next.LockIndex++
		}
		if value == nil {
			next.Value = prev.Value
		}
	}
	if next.Value == nil {
		next.Value = json.RawMessage("null")
	}
	return &next, ""
}

// releaseEntry decides a release: the next entry, or a reason why not.
func releaseEntry(prev *ConfigEntry, value []byte, session string, idx uint64) (*ConfigEntry, string) {
	if prev == nil || prev.Session != session {
		return nil, LockNotHolder
	}
	next := *prev
	next.Session = ""
	next.ModifyIndex = idx
	if value != nil {
		next.Value = value
	}
	return &next, ""
}

// LockAcquire makes session the holder of key, setting its value (nil
// keeps it). A session that does not exist is not_found and changes
// nothing; a key held by another session, or in its lock delay, answers
// OK false and changes nothing.
func (tx *Tx) LockAcquire(key string, value []byte, session string) (LockOutcome, *Error) {
	if tx.Session(nil, session) == nil {
		return LockOutcome{}, errSessionGone(session)
	}
	prev := tx.ConfigGet(nil, key)
	next, why := acquireEntry(key, prev, value, session, tx.LockDelayOf(nil, key) != nil, tx.index)
	if next == nil {
		return LockOutcome{Reason: why, Prev: prev, Entry: prev}, nil
	}
	if err := tx.putConfig(next); err != nil {
		return LockOutcome{}, internal(err)
	}
	return LockOutcome{OK: true, Prev: prev, Entry: next}, nil
}

// LockRelease gives key up if session holds it, setting its value (nil
// keeps it); otherwise OK is false and nothing changes.
func (tx *Tx) LockRelease(key string, value []byte, session string) (LockOutcome, *Error) {
	prev := tx.ConfigGet(nil, key)
	next, why := releaseEntry(prev, value, session, tx.index)
	if next == nil {
		return LockOutcome{Reason: why, Prev: prev, Entry: prev}, nil
	}
	if err := tx.putConfig(next); err != nil {
		return LockOutcome{}, internal(err)
	}
	return LockOutcome{OK: true, Prev: prev, Entry: next}, nil
}

func (tx *Tx) putConfig(e *ConfigEntry) error {
	if err := tx.txn.Insert(tableConfig, e); err != nil {
		return err
	}
	return tx.bumpIndex(tableConfig)
}

// ---- snapshots ----

func (tx *Tx) dumpSessions(d *Dump) {
	d.Sessions = tx.Sessions(nil)
	d.LockDelays = tx.LockDelays(nil)
}

func (tx *Tx) loadSessions(d *Dump) error {
	for i := range d.Sessions {
		if err := tx.txn.Insert(tableSessions, &d.Sessions[i]); err != nil {
			return err
		}
	}
	for i := range d.LockDelays {
		if err := tx.txn.Insert(tableLockDelays, &d.LockDelays[i]); err != nil {
			return err
		}
	}
	return nil
}
