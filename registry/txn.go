package registry

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Transaction ops (POST /txn, docs/sessions.md).
const (
	TxnGet            = "get"
	TxnGetOrEmpty     = "get-or-empty"
	TxnGetTree        = "get-tree"
	TxnSet            = "set"
	TxnCAS            = "cas"
	TxnDelete         = "delete"
	TxnDeleteTree     = "delete-tree"
	TxnCheckIndex     = "check-index"
	TxnCheckNotExists = "check-not-exists"
	TxnCheckSession   = "check-session"
	TxnLock           = "lock"
	TxnUnlock         = "unlock"
	// MaxTxnOps bounds the ops of one transaction.
	MaxTxnOps = 64
	// CodeTxnConflict answers a transaction whose check (or lock, cas,
	// get) failed: nothing was changed.
	CodeTxnConflict = "txn_conflict"
)

// TxnOp is one operation of a transaction. Key is the prefix of a
// delete-tree and a get-tree. Index is the modify_index of cas (0: create
// only), check-index and of a conditional delete. Value (a JSON value) is
// required by set and cas and optional for lock and unlock (absent: the
// key keeps its value).
type TxnOp struct {
	Op      string          `json:"op" msgpack:"op"`
	Key     string          `json:"key" msgpack:"key"`
	Value   json.RawMessage `json:"value,omitempty" msgpack:"value"`
	Index   *uint64         `json:"index,omitempty" msgpack:"index"`
	Session string          `json:"session,omitempty" msgpack:"session"`
	// KV, on set, cas, lock and unlock, writes the value as Consul's KV
	// does (the Consul-compatible API): exactly Value, empty included. On
	// get, get-or-empty and get-tree (an empty TxnKV) it asks for the
	// values as bytes (TxnResult.RawValues), which cross JSON unchanged.
	KV *TxnKV `json:"kv,omitempty" msgpack:"kv,omitempty"`
}

// TxnKV is how a write op of the Consul-compatible API writes its value:
// Value as given (nil is empty), as opaque bytes when Raw (else a JSON
// value), with Flags; a held key stays held as with any write.
type TxnKV struct {
	Raw   bool   `json:"raw,omitempty" msgpack:"raw,omitempty"`
	Flags uint64 `json:"flags,omitempty" msgpack:"flags,omitempty"`
}

// write sets an entry's value as op says: KV's value and flags, or
// Value unless it is nil (keep).
func (op *TxnOp) write(e *ConfigEntry) {
	switch {
	case op.KV != nil:
		e.Value, e.Raw, e.Flags = op.Value, op.KV.Raw, op.KV.Flags
	case op.Value != nil:
		e.Value, e.Raw = op.Value, false
	}
}

// TxnWrites reports whether op changes state when it succeeds.
func TxnWrites(op string) bool {
	switch op {
	case TxnSet, TxnCAS, TxnDelete, TxnDeleteTree, TxnLock, TxnUnlock:
		return true
	}
	return false
}

// ValidateTxn checks the shape of a transaction; errors name the field
// (ops[i].key). Apply runs it again.
func ValidateTxn(ops []TxnOp) *Error {
	if len(ops) == 0 {
		return invalid("ops", "at least one op is required")
	}
	if len(ops) > MaxTxnOps {
		return invalid("ops", "%d ops, at most %d", len(ops), MaxTxnOps)
	}
	for i := range ops {
		if e := validateTxnOp(i, &ops[i]); e != nil {
			return e
		}
	}
	return nil
}

func validateTxnOp(i int, op *TxnOp) *Error {
	f := func(name string) string { return fmt.Sprintf("ops[%d].%s", i, name) }
	var needValue, mayValue, needIndex, mayIndex, needSession, readsValue bool
	switch op.Op {
	case TxnGet, TxnGetOrEmpty, TxnGetTree:
		readsValue = true
	case TxnCheckNotExists, TxnDeleteTree:
	case TxnSet:
		needValue = true
	case TxnCAS:
		needValue, needIndex = true, true
	case TxnDelete:
		mayIndex = true
	case TxnCheckIndex:
		needIndex = true
	case TxnCheckSession:
		needSession = true
	case TxnLock, TxnUnlock:
		mayValue, needSession = true, true
	case "":
		return invalid(f("op"), "is required")
	default:
		return invalid(f("op"), "%q is not one of get, get-or-empty, get-tree, set, cas, delete, delete-tree, check-index, check-not-exists, check-session, lock, unlock", op.Op)
	}
	if e := ValidateConfigKey(f("key"), op.Key); e != nil {
		return e
	}
	writesValue := needValue || mayValue
	raw := op.KV != nil && op.KV.Raw
	switch {
	case op.KV != nil && !writesValue && !readsValue:
		return invalid(f("kv"), "is not taken by %s", op.Op)
	case op.KV != nil && readsValue && *op.KV != (TxnKV{}):
		return invalid(f("kv"), "%s takes an empty kv (values answered as bytes)", op.Op)
	case needValue && op.Value == nil && !raw:
		return invalid(f("value"), "is required by %s", op.Op)
	case op.Value != nil && !writesValue:
		return invalid(f("value"), "is not taken by %s", op.Op)
	case raw:
		if e := ValidateConfigRawValue(f("value"), op.Value); e != nil {
			return e
		}
	case op.Value != nil || (op.KV != nil && writesValue):
		if e := ValidateConfigValue(f("value"), op.Value); e != nil {
			return e
		}
	}
	switch {
	case needIndex && op.Index == nil:
		return invalid(f("index"), "is required by %s", op.Op)
	case op.Index != nil && !needIndex && !mayIndex:
		return invalid(f("index"), "is not taken by %s", op.Op)
	}
	switch {
	case needSession && !ValidSessionID(op.Session):
		return invalid(f("session"), "%q is not a session id", op.Session)
	case !needSession && op.Session != "":
		return invalid(f("session"), "is not taken by %s", op.Op)
	}
	return nil
}

// TxnResult is the answer of one op, in op order: the entry get, set,
// cas, lock and unlock read or wrote, and that check-index and
// check-session found (get-or-empty: none when the key does not exist);
// the entries under a get-tree's prefix; Deleted counts what delete and
// delete-tree removed. check-not-exists answers its op and key only.
type TxnResult struct {
	Op      string        `json:"op"`
	Key     string        `json:"key"`
	Entry   *ConfigEntry  `json:"entry,omitempty"`
	Entries []ConfigEntry `json:"entries,omitempty"`
	Deleted *int          `json:"deleted,omitempty"`
	// RawValues (a read op with KV) shows every value as its bytes,
	// {"raw_base64":...}, JSON values included: an answer forwarded as
	// JSON (whose encoder escapes <, > and &) then keeps them byte for byte.
	RawValues bool `json:"raw_values,omitempty"`
}

// txnEntry is an entry as a transaction's answer shows it: the config
// entry's JSON plus its create_index (Consul's KVPair has it), the value
// as bytes when asked (TxnResult.RawValues).
type txnEntry struct {
	e     ConfigEntry
	bytes bool
}

func (t txnEntry) MarshalJSON() ([]byte, error) {
	type plain ConfigEntry
	p := plain(t.e)
	p.Value = t.e.JSONValue()
	if t.bytes && !t.e.Raw {
		p.Value, _ = json.Marshal(RawValue{RawBase64: base64.StdEncoding.EncodeToString(t.e.Value)})
	}
	return json.Marshal(struct {
		plain
		CreateIndex uint64 `json:"create_index"`
	}{p, t.e.CreateIndex})
}

// MarshalJSON shows the entries with their create_index.
func (r TxnResult) MarshalJSON() ([]byte, error) {
	type plain TxnResult
	out := struct {
		plain
		Entry   *txnEntry  `json:"entry,omitempty"`
		Entries []txnEntry `json:"entries,omitempty"`
	}{plain: plain(r)}
	if r.Entry != nil {
		out.Entry = &txnEntry{*r.Entry, r.RawValues}
	}
	for _, e := range r.Entries {
		out.Entries = append(out.Entries, txnEntry{e, r.RawValues})
	}
	return json.Marshal(out)
}

// TxnConflict names the op that failed a transaction.
type TxnConflict struct {
	OpIndex int    `json:"op_index"`
	Op      string `json:"op"`
	Key     string `json:"key"`
	Message string `json:"message"`
	// Reason is LockHeld, LockDelayed or LockNoSession when a lock op
	// failed, LockNotHolder when an unlock did.
	Reason string `json:"reason,omitempty"`
}

// TxnChange is one key a transaction changed, in op order; Action is
// set, delete, acquire or release (the audit verbs).
type TxnChange struct {
	OpIndex int
	Action  string
	Key     string
	Before  *ConfigEntry
	After   *ConfigEntry
}

// txnView is the store as the ops of one transaction see it: their own
// writes over the committed state. Nothing reaches the store until every
// op has passed.
type txnView struct {
	tx    *Tx
	over  map[string]*ConfigEntry // nil value: deleted by this transaction
	dirty map[string]bool
}

func (v *txnView) get(key string) *ConfigEntry {
	if v.dirty[key] {
		return v.over[key]
	}
	return v.tx.ConfigGet(nil, key)
}

func (v *txnView) put(key string, e *ConfigEntry) {
	v.dirty[key] = true
	v.over[key] = e
}

// keys returns the keys under prefix that exist in the view, sorted.
func (v *txnView) keys(prefix string) []string {
	var out []string
	for _, e := range v.tx.ConfigList(nil, prefix) {
		if !v.dirty[e.Key] {
			out = append(out, e.Key)
		}
	}
	for k, e := range v.over {
		if e != nil && strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TxnCheck is asked about every key an op reads or writes before the op
// runs (Apply's ACL check); a non-nil error fails the transaction.
type TxnCheck func(key string, write bool) *Error

// Txn runs ops in order against the state plus their own writes, then
// writes everything, all in this entry; or, when an op fails, writes
// nothing and names it in the conflict. check may be nil.
func (tx *Tx) Txn(ops []TxnOp, check TxnCheck) ([]TxnResult, []TxnChange, *TxnConflict, *Error) {
	if e := ValidateTxn(ops); e != nil {
		return nil, nil, nil, e
	}
	v := &txnView{tx: tx, over: map[string]*ConfigEntry{}, dirty: map[string]bool{}}
	results := make([]TxnResult, len(ops))
	var changes []TxnChange
	for i, op := range ops {
		if check != nil {
			if e := check(op.Key, TxnWrites(op.Op)); e != nil {
				return nil, nil, nil, e
			}
		}
		res := TxnResult{Op: op.Op, Key: op.Key, RawValues: op.KV != nil && !TxnWrites(op.Op)}
		conflict := func(reason, format string, args ...any) *TxnConflict {
			return &TxnConflict{OpIndex: i, Op: op.Op, Key: op.Key, Reason: reason,
				Message: fmt.Sprintf("ops[%d] (%s %s): ", i, op.Op, op.Key) + fmt.Sprintf(format, args...)}
		}
		cur := v.get(op.Key)
		change := func(action string, after *ConfigEntry) {
			changes = append(changes, TxnChange{OpIndex: i, Action: action, Key: op.Key, Before: cur, After: after})
			v.put(op.Key, after)
		}
		switch op.Op {
		case TxnGet:
			if cur == nil {
				return nil, nil, conflict("", "the key does not exist"), nil
			}
			res.Entry = cur
		case TxnGetOrEmpty:
			res.Entry = cur
		case TxnGetTree:
			for _, k := range v.keys(op.Key) {
				if check != nil {
					if e := check(k, false); e != nil {
						return nil, nil, nil, e
					}
				}
				res.Entries = append(res.Entries, *v.get(k))
			}
		case TxnSet, TxnCAS:
			if op.Op == TxnCAS {
				if e := checkCAS(op.Key, op.Index, cur); e != nil {
					return nil, nil, conflict("", "%s", e.Message), nil
				}
			}
			next := &ConfigEntry{Key: op.Key, CreateIndex: tx.index, ModifyIndex: tx.index}
			op.write(next)
			if cur != nil {
				next.CreateIndex, next.Session, next.LockIndex = cur.CreateIndex, cur.Session, cur.LockIndex
			}
			change(ActionSet, next)
			res.Entry = next
		case TxnDelete:
			if op.Index != nil && *op.Index != 0 {
				if e := checkCAS(op.Key, op.Index, cur); e != nil {
					return nil, nil, conflict("", "%s", e.Message), nil
				}
			}
			n := 0
			if cur != nil {
				change(ActionDelete, nil)
				n = 1
			}
			res.Deleted = &n
		case TxnDeleteTree:
			keys := v.keys(op.Key)
			for _, k := range keys {
				if check != nil {
					if e := check(k, true); e != nil {
						return nil, nil, nil, e
					}
				}
				changes = append(changes, TxnChange{OpIndex: i, Action: ActionDelete, Key: k, Before: v.get(k)})
				v.put(k, nil)
			}
			n := len(keys)
			res.Deleted = &n
		case TxnCheckIndex:
			if e := checkCAS(op.Key, op.Index, cur); e != nil {
				return nil, nil, conflict("", "%s", e.Message), nil
			}
			res.Entry = cur
		case TxnCheckNotExists:
			if cur != nil {
				return nil, nil, conflict("", "the key exists (modify_index %d)", cur.ModifyIndex), nil
			}
		case TxnCheckSession:
			if cur == nil || cur.Session != op.Session {
				return nil, nil, conflict("", "the key is not held by session %s (%s)", op.Session, holder(cur)), nil
			}
			res.Entry = cur
		case TxnLock:
			if tx.Session(nil, op.Session) == nil {
				return nil, nil, conflict(LockNoSession, "session %s not found (never created, destroyed or invalidated)", op.Session), nil
			}
			next, why := acquireEntry(op.Key, cur, op.Value, op.Session, tx.LockDelayOf(nil, op.Key) != nil, tx.index)
			if next == nil {
				if why == LockDelayed {
					return nil, nil, conflict(why, "the key is in its lock delay"), nil
				}
				return nil, nil, conflict(why, "the key is held by session %s", cur.Session), nil
			}
			if op.KV != nil {
				op.write(next)
			}
			change(ActionAcquire, next)
			res.Entry = next
		case TxnUnlock:
			next, _ := releaseEntry(cur, op.Value, op.Session, tx.index)
			if next == nil {
				return nil, nil, conflict(LockNotHolder, "the key is not held by session %s (%s)", op.Session, holder(cur)), nil
			}
			if op.KV != nil {
				op.write(next)
			}
			change(ActionRelease, next)
			res.Entry = next
		}
		results[i] = res
	}
	if e := v.commit(); e != nil {
		return nil, nil, nil, e
	}
	return results, changes, nil, nil
}

// commit writes the view's changes in key order.
func (v *txnView) commit() *Error {
	if len(v.dirty) == 0 {
		return nil
	}
	keys := make([]string, 0, len(v.dirty))
	for k := range v.dirty {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := v.over[k]
		if e == nil {
			if cur := v.tx.ConfigGet(nil, k); cur != nil {
				if err := v.tx.txn.Delete(tableConfig, cur); err != nil {
					return internal(err)
				}
			}
			continue
		}
		stored := *e
		if err := v.tx.txn.Insert(tableConfig, &stored); err != nil {
			return internal(err)
		}
	}
	if err := v.tx.bumpIndex(tableConfig); err != nil {
		return internal(err)
	}
	return nil
}

func holder(e *ConfigEntry) string {
	switch {
	case e == nil:
		return "the key does not exist"
	case e.Session == "":
		return "it is not held"
	}
	return "it is held by session " + e.Session
}
