// Package history records the operations of a nexus-jepsen run: one Op per
// client call, with its invoke and complete times and its outcome, written
// as JSON lines as they complete (so an interrupted run keeps its history).
package history

import "time"

// Type is the outcome of an operation, as in Jepsen.
type Type string

// Outcomes.
const (
	// OK: the operation took effect (a read returned a value or 404, a
	// write was acknowledged).
	OK Type = "ok"
	// Fail: the operation definitely did not take effect (503 no_leader, a
	// refused connection, a 4xx). A CAS refused with 409 is a Fail with Code
	// cas_conflict: the register checker still uses it as a definite answer
	// ("the modify_index was not the expected one").
	Fail Type = "fail"
	// Info: unknown whether it took effect (504 outcome_unknown, a timeout,
	// a connection lost after sending).
	Info Type = "info"
)

// Functions (Op.F).
const (
	FRead    = "read"     // register: consistent read of a key
	FWrite   = "write"    // register: unconditional write
	FCAS     = "cas"      // register: compare-and-set on modify_index
	FAdd     = "add"      // set: register an instance
	FRemove  = "remove"   // set: deregister an instance
	FSetRead = "set-read" // set: consistent read of all instances
	FBatch   = "batch"    // audit: atomic multi-key config write (POST /config with entries)
	// FArchiveRead is the audit workload's final read of PostgreSQL's
	// audit_events (Value: the number of rows; the rows go to
	// audit_events.jsonl).
	FArchiveRead = "archive-read"
	// The lock workload (Key: the lock key, or the counter key for FRead and
	// FIncr).
	FSessionCreate = "session-create" // Session: the id answered; Value: the TTL in ms
	FRenew         = "renew"          // Session renewed; a 404 (Fail, not_found) says it ended
	FSessionLost   = "session-lost"   // why Session ended, from the audit trail: Code = ttl, node_failed, node_left, destroy
	FAcquire       = "acquire"        // PUT ?acquire=Session: Acquired, Holder, LockIndex, ModIndex (Raft index when acquired)
	FRelease       = "release"        // PUT ?release=Session: Acquired = released, LockIndex, ModIndex
	FIncr          = "incr"           // POST /txn: counter := Value under Session's lock; Holder, LockIndex as the txn saw them, ModIndex = its Raft index
)

// Op is one completed client operation.
type Op struct {
	Index    int    `json:"index"`    // position in the history (completion order)
	Process  int    `json:"process"`  // logical client; a new one after every info
	Workload string `json:"workload"` // register, set, audit
	F        string `json:"f"`
	Node     string `json:"node"` // node the request went to
	Type     Type   `json:"type"`
	Invoke   int64  `json:"invoke"`   // ns since the run started
	Complete int64  `json:"complete"` // ns since the run started

	Key    string   `json:"key,omitempty"`
	Value  int64    `json:"value,omitempty"`  // value written, element added/removed
	Expect *uint64  `json:"expect,omitempty"` // CAS: the expected modify_index (0 = absent)
	Keys   []string `json:"keys,omitempty"`   // batch: the keys written, in request order
	Values []int64  `json:"values,omitempty"` // batch: the value written to each key

	// Results.
	Present  bool    `json:"present,omitempty"`      // read: the key exists
	Read     int64   `json:"read,omitempty"`         // read: the value
	ModIndex uint64  `json:"modify_index,omitempty"` // read/write/cas: modify_index of the key
	Elements []int64 `json:"elements,omitempty"`     // set-read: the ids seen, sorted
	Final    bool    `json:"final,omitempty"`        // set-read/read after every fault healed

	// Sessions and locks (the lock workload).
	Session   string `json:"session,omitempty"`    // the session the op acts for
	Holder    string `json:"holder,omitempty"`     // acquire/release/incr: the lock key's session after the op ("" free)
	LockIndex uint64 `json:"lock_index,omitempty"` // the lock key's lock_index the op saw
	Acquired  bool   `json:"acquired,omitempty"`   // acquire: acquired; release: released

	Status int    `json:"status,omitempty"` // HTTP status, 0 if none
	ReqID  string `json:"req_id,omitempty"` // X-Request-ID: grep the node logs for it; audit records carry it
	Code   string `json:"code,omitempty"`   // API error code or a client error class
	Error  string `json:"error,omitempty"`
}

// Duration returns how long the operation took.
func (o *Op) Duration() time.Duration { return time.Duration(o.Complete - o.Invoke) }
