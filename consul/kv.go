package consul

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

const tableConfig = "config"

// The KV endpoints map onto the configuration store: a Consul key is a
// config key, its value opaque bytes (a value that is compact JSON is
// stored as JSON, so the native /config API shows it as such), its flags
// kept with it.

// kvEntry is a config entry as Consul shows it.
func kvEntry(e *registry.ConfigEntry) kvPair {
	p := kvPair{Key: e.Key, Flags: e.Flags, CreateIndex: e.CreateIndex, ModifyIndex: e.ModifyIndex,
		LockIndex: e.LockIndex, Session: e.Session}
	if len(e.Value) > 0 {
		p.Value = e.Value
	}
	return p
}

// validPrefix: a prefix of a valid key, "" included.
func validPrefix(p string) bool {
	return p == "" || registry.ValidateConfigKey("key", p) == nil
}

// GET /v1/kv/:key[?recurse|?keys[&separator=]|?raw]
func (s *Server) kvGet(r *request) {
	args := r.ctx.QueryArgs()
	key := r.param
	recurse, keys, raw := args.Has("recurse"), args.Has("keys"), args.Has("raw")
	switch {
	case keys && raw, recurse && raw:
		r.fail(errInvalid("raw", "raw reads a single key; not with recurse or keys"))
		return
	case r.refuseParams("cas", "flags", "acquire", "release"):
		return
	case args.Has("separator") && !keys:
		r.fail(errInvalid("separator", "needs keys"))
		return
	}
	if recurse || keys {
		if !validPrefix(key) {
			r.fail(errInvalid("key", "%q: Nexus keys are [A-Za-z0-9._/-] (docs/consul-compat.md)", key))
			return
		}
		if keys {
			s.kvKeys(r, key, string(args.Peek("separator")))
		} else {
			s.kvList(r, key)
		}
		return
	}
	if e := registry.ValidateConfigKey("key", key); e != nil {
		r.fail(&answer{status: fasthttp.StatusBadRequest, code: e.Code, field: e.Field, message: e.Message + " (docs/consul-compat.md)"})
		return
	}
	if !r.check(registry.ACLResourceConfig, key, acl.Read) {
		return
	}
	var found *registry.ConfigEntry
	if !r.read(func(tx *registry.Tx, ws memdb.WatchSet) uint64 {
		found = tx.ConfigGet(ws, key)
		if found == nil {
			return tx.TableIndex(ws, tableConfig)
		}
		return found.ModifyIndex
	}) {
		return
	}
	switch {
	case found == nil:
		r.ctx.SetStatusCode(fasthttp.StatusNotFound)
	case raw:
		r.ctx.SetStatusCode(fasthttp.StatusOK)
		r.ctx.SetContentType("application/octet-stream")
		r.ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
		r.ctx.SetBody(found.Value)
	default:
		r.json([]kvPair{kvEntry(found)})
	}
}

// kvList answers ?recurse: every entry under the prefix the caller may
// read; none is 404.
func (s *Server) kvList(r *request, prefix string) {
	if !r.checkList(registry.ACLResourceConfig) {
		return
	}
	var out []kvPair
	if r.read(func(tx *registry.Tx, ws memdb.WatchSet) uint64 {
		out = out[:0]
		for _, e := range tx.ConfigList(ws, prefix) {
			if r.canRead(registry.ACLResourceConfig, e.Key) {
				out = append(out, kvEntry(&e))
			}
		}
		return tx.TableIndex(ws, tableConfig)
	}) {
		r.listOr404(len(out), out)
	}
}

// kvKeys answers ?keys: the keys under the prefix, each cut after the
// first separator past the prefix (a "folder"), without repeats; none is
// 404.
func (s *Server) kvKeys(r *request, prefix, sep string) {
	if !r.checkList(registry.ACLResourceConfig) {
		return
	}
	var out []string
	if r.read(func(tx *registry.Tx, ws memdb.WatchSet) uint64 {
		out = out[:0]
		for _, e := range tx.ConfigList(ws, prefix) {
			if !r.canRead(registry.ACLResourceConfig, e.Key) {
				continue
			}
			k := e.Key
			if sep != "" {
				if i := strings.Index(k[len(prefix):], sep); i >= 0 {
					k = k[:len(prefix)+i+len(sep)]
				}
			}
			if len(out) == 0 || out[len(out)-1] != k {
				out = append(out, k)
			}
		}
		return tx.TableIndex(ws, tableConfig)
	}) {
		r.listOr404(len(out), out)
	}
}

// listOr404 answers a list, or 404 without a body when it is empty (a KV
// miss).
func (r *request) listOr404(n int, v any) {
	if n == 0 {
		r.ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	r.json(v)
}

// refuseParams answers 400 naming the first of names the request has:
// parameters the endpoint takes with another method only.
func (r *request) refuseParams(names ...string) bool {
	for _, n := range names {
		if r.ctx.QueryArgs().Has(n) {
			r.s.m.unsupported.WithLabelValues("param").Inc()
			r.fail(errInvalid(n, "query parameter %s is not supported on %s %s", n, r.ctx.Method(), r.route))
			return true
		}
	}
	return false
}

// uintParam parses an optional unsigned parameter.
func uintParam(r *request, name string) (*uint64, *answer) {
	args := r.ctx.QueryArgs()
	if !args.Has(name) {
		return nil, nil
	}
	v := string(args.Peek(name))
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return nil, errInvalid(name, "%q is not a non-negative integer", v)
	}
	return &n, nil
}

// isCompactJSON: the value is JSON that the config store keeps byte for
// byte (compacted), so it can be stored as a JSON value.
func isCompactJSON(v []byte) bool {
	if len(v) == 0 || !json.Valid(v) {
		return false
	}
	var buf bytes.Buffer
	return json.Compact(&buf, v) == nil && bytes.Equal(buf.Bytes(), v)
}

// PUT /v1/kv/:key?flags=&cas=[&acquire=|&release=]: body is the value;
// true, or false on a CAS mismatch or a lock not taken or given up.
func (s *Server) kvPut(r *request) {
	if r.refuseParams("recurse", "keys", "separator", "raw", "index", "wait", "consistent", "cached") {
		return
	}
	key := r.param
	if e := registry.ValidateConfigKey("key", key); e != nil {
		r.fail(&answer{status: fasthttp.StatusBadRequest, code: e.Code, field: e.Field, message: e.Message + " (docs/consul-compat.md)"})
		return
	}
	cas, e := uintParam(r, "cas")
	if e != nil {
		r.fail(e)
		return
	}
	flags, e := uintParam(r, "flags")
	if e != nil {
		r.fail(e)
		return
	}
	value := slices.Clone(r.ctx.PostBody())
	if ve := registry.ValidateConfigRawValue("value", value); ve != nil {
		r.fail(&answer{status: fasthttp.StatusRequestEntityTooLarge, code: "value_too_large", field: "value", message: ve.Message})
		return
	}
	if !r.check(registry.ACLResourceConfig, key, acl.Write) {
		return
	}
	if args := r.ctx.QueryArgs(); args.Has("acquire") || args.Has("release") {
		var f uint64
		if flags != nil {
			f = *flags
		}
		s.kvLock(r, key, value, f, cas)
		return
	}
	op := command.ConfigOp{Key: key, Value: value, CAS: cas, Raw: !isCompactJSON(value)}
	if flags != nil {
		op.Flags = *flags
	}
	set := &command.ConfigSet{Entries: []command.ConfigOp{op}}
	s.kvWrite(r, command.ConfigSetType(set), func(m command.Meta) any {
		set.Meta = m
		return set
	})
}

// DELETE /v1/kv/:key[?recurse|?cas=]: true, or false on a CAS mismatch.
func (s *Server) kvDelete(r *request) {
	if r.refuseParams("flags", "keys", "separator", "raw", "index", "wait", "consistent", "cached", "acquire", "release") {
		return
	}
	args := r.ctx.QueryArgs()
	key := r.param
	cas, e := uintParam(r, "cas")
	if e != nil {
		r.fail(e)
		return
	}
	if args.Has("recurse") {
		if cas != nil {
			r.fail(errInvalid("cas", "not with recurse"))
			return
		}
		if !validPrefix(key) {
			r.fail(errInvalid("key", "%q: Nexus keys are [A-Za-z0-9._/-] (docs/consul-compat.md)", key))
			return
		}
		// Write access to every key it removes (Apply checks again).
		denied := ""
		if r.authz != nil {
			_ = s.native.Read(false, false, 0, 0, func(tx *registry.Tx, _ memdb.WatchSet) uint64 {
				for _, en := range tx.ConfigList(nil, key) {
					if !r.authz.Allowed(registry.ACLResourceConfig, en.Key, acl.Write) {
						denied = en.Key
						break
					}
				}
				return 0
			})
		}
		if denied != "" && !r.check(registry.ACLResourceConfig, denied, acl.Write) {
			return
		}
		s.kvWrite(r, command.TypeConfigDelete, func(m command.Meta) any {
			return &command.ConfigDelete{Meta: m, Key: key, Prefix: true}
		})
		return
	}
	if ve := registry.ValidateConfigKey("key", key); ve != nil {
		r.fail(&answer{status: fasthttp.StatusBadRequest, code: ve.Code, field: ve.Field, message: ve.Message + " (docs/consul-compat.md)"})
		return
	}
	if cas != nil && *cas == 0 {
		// Consul: "a 0 index will not delete the key".
		r.json(false)
		return
	}
	if !r.check(registry.ACLResourceConfig, key, acl.Write) {
		return
	}
	s.kvWrite(r, command.TypeConfigDelete, func(m command.Meta) any {
		return &command.ConfigDelete{Meta: m, Key: key, CAS: cas}
	})
}

// kvWrite commits a KV write and answers Consul's true/false: a CAS
// mismatch is false, deleting a key that is not there is true.
func (s *Server) kvWrite(r *request, t command.Type, build func(command.Meta) any) {
	switch err := r.apply(t, build); codeOf(err) {
	case "":
		r.json(true)
	case registry.CodeCASConflict:
		r.json(false)
	case registry.CodeNotFound:
		r.json(true)
	default:
		r.fail(err)
	}
}

// kvLock is PUT ?acquire=SESSION or ?release=SESSION: one native
// transaction, a lock or unlock op that writes the body and flags as
// Consul does (an empty body empties the value), after a check-index (or
// check-not-exists for cas=0) when cas is given. true when the session
// holds (acquire) or no longer holds (release) the key; false when the key
// is held by another session, in its lock delay, not held by the session,
// or cas does not match. Acquiring with a session that does not exist is
// 404 naming acquire.
func (s *Server) kvLock(r *request, key string, value []byte, flags uint64, cas *uint64) {
	args := r.ctx.QueryArgs()
	field, op := "acquire", registry.TxnLock
	switch {
	case args.Has("acquire") && args.Has("release"):
		r.fail(errInvalid("release", "give acquire or release, not both"))
		return
	case args.Has("release"):
		field, op = "release", registry.TxnUnlock
	}
	id := string(args.Peek(field))
	if !registry.ValidSessionID(id) {
		r.fail(errInvalid(field, "%q is not a session id", id))
		return
	}
	var ops []registry.TxnOp
	switch {
	case cas == nil:
	case *cas == 0:
		ops = append(ops, registry.TxnOp{Op: registry.TxnCheckNotExists, Key: key})
	default:
		ops = append(ops, registry.TxnOp{Op: registry.TxnCheckIndex, Key: key, Index: cas})
	}
	ops = append(ops, registry.TxnOp{Op: op, Key: key, Session: id, Value: value,
		KV: &registry.TxnKV{Raw: !isCompactJSON(value), Flags: flags}})
	_, conflict, err := r.txn(ops)
	switch {
	case err != nil:
		r.fail(err)
	case conflict == nil:
		r.json(true)
	case conflict.Reason == registry.LockNoSession:
		r.fail(&answer{status: fasthttp.StatusNotFound, code: registry.CodeNotFound, field: field,
			message: fmt.Sprintf("%s: session %q not found (never created, destroyed or invalidated)", field, id)})
	default:
		r.json(false)
	}
}
