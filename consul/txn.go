package consul

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// PUT /v1/txn maps Consul's KV verbs one for one onto the ops of a native
// transaction (docs/sessions.md), applied all or nothing in one Raft entry,
// read-only transactions included. Node, Service and Check operations are
// refused: Nexus keeps the catalog in its registry, not in transactions.

// Consul's KV verbs (the Verb of a KV operation).
const (
	verbSet            = "set"
	verbCAS            = "cas"
	verbLock           = "lock"
	verbUnlock         = "unlock"
	verbGet            = "get"
	verbGetOrEmpty     = "get-or-empty"
	verbGetTree        = "get-tree"
	verbCheckIndex     = "check-index"
	verbCheckSession   = "check-session"
	verbCheckNotExists = "check-not-exists"
	verbDelete         = "delete"
	verbDeleteTree     = "delete-tree"
	verbDeleteCAS      = "delete-cas"
)

// kvTxnOp is Consul's KVTxnOp; Value is base64 in JSON.
type kvTxnOp struct {
	Verb    string
	Key     string
	Value   []byte
	Flags   uint64
	Index   uint64
	Session string
}

var kvTxnFields = []string{"verb", "key", "value", "flags", "index", "session", "namespace", "partition"}

// txnResult and txnError are Consul's TxnResult (KV only) and TxnError.
type txnResult struct {
	KV *kvPair
}

type txnError struct {
	OpIndex int
	What    string
}

type txnResponse struct {
	Results []txnResult
	Errors  []txnError
}

// mapTxnOp maps Consul operation i onto a native op. Values are opaque
// bytes, kept as JSON when they are compact JSON (as PUT /v1/kv does).
func mapTxnOp(i int, in *kvTxnOp) (registry.TxnOp, *answer) {
	f := func(name string) string { return fmt.Sprintf("[%d].KV.%s", i, name) }
	if e := registry.ValidateConfigKey(f("Key"), in.Key); e != nil {
		return registry.TxnOp{}, &answer{status: fasthttp.StatusBadRequest, code: e.Code, field: e.Field, message: e.Message + " (docs/consul-compat.md)"}
	}
	if ve := registry.ValidateConfigRawValue(f("Value"), in.Value); ve != nil {
		return registry.TxnOp{}, &answer{status: fasthttp.StatusRequestEntityTooLarge, code: "value_too_large", field: ve.Field, message: ve.Message}
	}
	index := in.Index
	write := &registry.TxnKV{Raw: !isCompactJSON(in.Value), Flags: in.Flags}
	op := registry.TxnOp{Key: in.Key}
	switch in.Verb {
	case verbSet:
		op.Op, op.Value, op.KV = registry.TxnSet, in.Value, write
	case verbCAS:
		op.Op, op.Value, op.KV, op.Index = registry.TxnCAS, in.Value, write, &index
	case verbLock, verbUnlock:
		op.Op, op.Value, op.KV, op.Session = registry.TxnLock, in.Value, write, in.Session
		if in.Verb == verbUnlock {
			op.Op = registry.TxnUnlock
		}
	case verbGet, verbGetOrEmpty, verbGetTree:
		// The values come back as bytes (TxnResult.RawValues).
		op.Op, op.KV = map[string]string{verbGet: registry.TxnGet, verbGetOrEmpty: registry.TxnGetOrEmpty,
			verbGetTree: registry.TxnGetTree}[in.Verb], &registry.TxnKV{}
	case verbCheckIndex:
		op.Op, op.Index = registry.TxnCheckIndex, &index
	case verbCheckSession:
		op.Op, op.Session = registry.TxnCheckSession, in.Session
	case verbCheckNotExists:
		op.Op = registry.TxnCheckNotExists
	case verbDelete:
		op.Op = registry.TxnDelete
	case verbDeleteTree:
		op.Op = registry.TxnDeleteTree
	case verbDeleteCAS:
		// Index 0 never deletes (Consul: "a 0 index will not delete the
		// key"): the op passes only when there is nothing to delete.
		op.Op, op.Index = registry.TxnDelete, &index
		if index == 0 {
			op.Op, op.Index = registry.TxnCheckNotExists, nil
		}
	case "":
		return op, errInvalid(f("Verb"), "is required")
	default:
		return op, errInvalid(f("Verb"), "%q is not a KV verb Nexus maps (set, cas, lock, unlock, get, get-or-empty, get-tree, check-index, check-session, check-not-exists, delete, delete-tree, delete-cas)", in.Verb)
	}
	if op.Session != "" || op.Op == registry.TxnLock || op.Op == registry.TxnUnlock || op.Op == registry.TxnCheckSession {
		if !registry.ValidSessionID(op.Session) {
			return op, errInvalid(f("Session"), "%q is not a session id", op.Session)
		}
	}
	return op, nil
}

// parseTxn reads Consul's transaction body: an array of operations, each
// with one of KV, Node, Service or Check; only KV is mapped.
func parseTxn(body []byte) ([]kvTxnOp, []registry.TxnOp, *answer) {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, nil, &answer{status: fasthttp.StatusBadRequest, code: "invalid_json",
			message: "request body: a JSON array of operations is required: " + err.Error()}
	}
	if len(raws) > registry.MaxTxnOps {
		return nil, nil, &answer{status: fasthttp.StatusRequestEntityTooLarge, code: "too_many_operations", field: "body",
			message: fmt.Sprintf("Transaction contains too many operations (%d > %d)", len(raws), registry.MaxTxnOps)}
	}
	ins := make([]kvTxnOp, len(raws))
	ops := make([]registry.TxnOp, len(raws))
	for i, raw := range raws {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, nil, errInvalid(fmt.Sprintf("[%d]", i), "an operation must be an object: %v", err)
		}
		var kv json.RawMessage
		for k, v := range fields {
			switch l := strings.ToLower(k); {
			case l == "kv":
				kv = v
			case zeroJSON(v):
			case l == "node" || l == "service" || l == "check":
				a := errInvalid(fmt.Sprintf("[%d].%s", i, k), "%s operations are not supported: Nexus maps the KV operations of transactions only (docs/consul-compat.md)", k)
				a.unsupported = true
				return nil, nil, a
			default:
				return nil, nil, errInvalid(fmt.Sprintf("[%d].%s", i, k), "unknown operation kind")
			}
		}
		if zeroJSON(kv) || kv == nil {
			return nil, nil, errInvalid(fmt.Sprintf("[%d]", i), "an operation needs KV")
		}
		prefix := fmt.Sprintf("[%d].KV.", i)
		if a := fieldsOK(prefix, kv, kvTxnFields); a != nil {
			a.unsupported = true
			return nil, nil, a
		}
		var kvFields map[string]json.RawMessage
		_ = json.Unmarshal(kv, &kvFields)
		for k, v := range kvFields {
			if l := strings.ToLower(k); l == "namespace" || l == "partition" {
				if a := onlyDefault(prefix+k, v); a != nil {
					return nil, nil, a
				}
			}
		}
		if err := json.Unmarshal(kv, &ins[i]); err != nil {
			return nil, nil, errInvalid(prefix[:len(prefix)-1], "%v", err)
		}
		op, a := mapTxnOp(i, &ins[i])
		if a != nil {
			return nil, nil, a
		}
		ops[i] = op
	}
	return ins, ops, nil
}

// PUT /v1/txn → 200 {"Results":[...],"Errors":null}; a failed op → 409
// {"Results":null,"Errors":[{"OpIndex","What"}]} and nothing changed.
func (s *Server) txn(r *request) {
	ins, ops, a := parseTxn(r.ctx.PostBody())
	if a != nil {
		if a.unsupported {
			s.m.unsupported.WithLabelValues("field").Inc()
		}
		r.fail(a)
		return
	}
	if len(ops) == 0 {
		// Nothing to do: nothing to commit.
		r.json(txnResponse{Results: []txnResult{}})
		return
	}
	for i, op := range ops {
		level := acl.Read
		if registry.TxnWrites(op.Op) {
			level = acl.Write
		}
		if err := s.native.Check(r.ident, r.authz, registry.ACLResourceConfig, op.Key, level); err != nil {
			r.fail(withField(err, fmt.Sprintf("[%d].KV.Key", i)))
			return
		}
	}
	results, conflict, err := r.txn(ops)
	switch {
	case err != nil:
		r.fail(err)
	case conflict != nil:
		r.jsonStatus(fasthttp.StatusConflict, txnResponse{Errors: []txnError{{OpIndex: conflict.OpIndex, What: conflict.Message}}})
	default:
		out := txnResponse{Results: []txnResult{}}
		for i, res := range results {
			out.Results = append(out.Results, consulResults(ins[i].Verb, res)...)
		}
		r.json(out)
	}
}

// consulResults are the results Consul gives for one op: the entry for
// the verbs that read or write one (the value only for reads), every
// entry of a get-tree, nothing for deletes and check-not-exists.
func consulResults(verb string, res nativeResult) []txnResult {
	var out []txnResult
	switch verb {
	case verbGet, verbGetOrEmpty:
		if res.Entry != nil {
			out = append(out, txnResult{KV: res.Entry.pair(true)})
		}
	case verbGetTree:
		for i := range res.Entries {
			out = append(out, txnResult{KV: res.Entries[i].pair(true)})
		}
	case verbSet, verbCAS, verbLock, verbUnlock, verbCheckIndex, verbCheckSession:
		if res.Entry != nil {
			out = append(out, txnResult{KV: res.Entry.pair(false)})
		}
	}
	return out
}

// nativeEntry is an entry of a native transaction answer
// (registry.TxnResult's JSON, which is what arrives after forwarding).
type nativeEntry struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value"`
	CreateIndex uint64          `json:"create_index"`
	ModifyIndex uint64          `json:"modify_index"`
	Session     string          `json:"session"`
	LockIndex   uint64          `json:"lock_index"`
	Flags       uint64          `json:"flags"`
}

// nativeResult is one op's result; reads asked for their values as bytes
// (registry.TxnResult.RawValues), so they are {"raw_base64":...}.
type nativeResult struct {
	Op      string        `json:"op"`
	Entry   *nativeEntry  `json:"entry"`
	Entries []nativeEntry `json:"entries"`
}

// pair is the entry as Consul's KVPair, with its value or (writes and
// checks) without.
func (e *nativeEntry) pair(withValue bool) *kvPair {
	p := &kvPair{Key: e.Key, Flags: e.Flags, CreateIndex: e.CreateIndex, ModifyIndex: e.ModifyIndex,
		LockIndex: e.LockIndex, Session: e.Session}
	if withValue {
		p.Value = e.bytesValue()
	}
	return p
}

// bytesValue decodes a value answered as bytes; nil when empty.
func (e *nativeEntry) bytesValue() []byte {
	var rv registry.RawValue
	if json.Unmarshal(e.Value, &rv) != nil {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(rv.RawBase64)
	if err != nil || len(b) == 0 {
		return nil
	}
	return b
}

// txn commits native ops in one entry for the caller: the results, one
// per op, or the op that failed (nothing changed), or an error answer.
func (r *request) txn(ops []registry.TxnOp) ([]nativeResult, *registry.TxnConflict, error) {
	res, err := r.s.native.ApplyAs(r.ident, r.id, command.TypeTxn, func(m command.Meta) any {
		return &command.Txn{Meta: m, Ops: ops}
	})
	if res != nil {
		r.index = res.Index
	}
	if err != nil {
		if codeOf(err) != registry.CodeTxnConflict || res == nil {
			return nil, nil, err
		}
		var c struct {
			Errors []registry.TxnConflict `json:"errors"`
		}
		if !decodeValue(res, &c) || len(c.Errors) == 0 {
			return nil, &registry.TxnConflict{Message: err.Error()}, nil
		}
		return nil, &c.Errors[0], nil
	}
	var ans struct {
		Results []nativeResult `json:"results"`
	}
	if !decodeValue(res, &ans) || len(ans.Results) != len(ops) {
		return nil, nil, &answer{status: fasthttp.StatusInternalServerError, code: registry.CodeInternal,
			message: fmt.Sprintf("the transaction applied at index %d but its answer could not be read", res.Index)}
	}
	return ans.Results, nil, nil
}

// withField names the field of an error answer (an ACL refusal of op i).
func withField(err error, field string) error {
	a := &answer{status: fasthttp.StatusInternalServerError, code: registry.CodeInternal, message: err.Error(), field: field}
	if se, ok := err.(interface {
		StatusCode() int
		ErrorCode() string
	}); ok {
		a.status, a.code = se.StatusCode(), se.ErrorCode()
	}
	if m, ok := err.(interface{ ErrorMessage() string }); ok {
		a.message = m.ErrorMessage()
	}
	return a
}
