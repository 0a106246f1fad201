package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

const tableConfig = "config"

// configEntryRequest is one key of POST /config.
type configEntryRequest struct {
	Key   *string         `json:"key"`
	Value json.RawMessage `json:"value"`
	CAS   *uint64         `json:"cas"`
}

// configRequest is the body of POST /config: one key, or entries. (Not an
// embedded configEntryRequest: type errors would name the embedded struct.)
type configRequest struct {
	Key     *string              `json:"key"`
	Value   json.RawMessage      `json:"value"`
	CAS     *uint64              `json:"cas"`
	Entries []configEntryRequest `json:"entries"`
}

// GET /config?prefix=P&session=ID (session: only the keys it holds)
func (s *Server) listConfig(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	args := ctx.QueryArgs()
	lo, e := parseListOpts(args)
	if e != nil {
		writeError(ctx, e)
		return
	}
	prefix := string(args.Peek("prefix"))
	session := string(args.Peek("session"))
	if args.Has("session") && !registry.ValidSessionID(session) {
		writeError(ctx, errInvalid("session", "%q is not a session id", session))
		return
	}
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		res := readResult{index: tx.TableIndex(ws, tableConfig)}
		out := make([]registry.ConfigEntry, 0, min(lo.limit, 64))
		each := tx.EachConfig
		if session != "" {
			each = func(prefix, after string, fn func(*registry.ConfigEntry) bool) {
				eachHeld(tx, session, prefix, after, fn)
			}
		}
		each(prefix, lo.after, func(en *registry.ConfigEntry) bool {
			if !rc.canRead(registry.ACLResourceConfig, en.Key) {
				return true
			}
			if len(out) == lo.limit {
				res.next = out[len(out)-1].Key
				return false
			}
			out = append(out, *en)
			return true
		})
		res.body = out
		return res
	})
}

// eachHeld is EachConfig over the keys session holds (the config table's
// session index, sorted by key): what a session page lists.
func eachHeld(tx *registry.Tx, session, prefix, after string, fn func(*registry.ConfigEntry) bool) {
	held := tx.SessionKeys(nil, session)
	for i := range held {
		en := &held[i]
		if !strings.HasPrefix(en.Key, prefix) || (after != "" && en.Key <= after) {
			continue
		}
		if !fn(en) {
			return
		}
	}
}

// GET /config/{key}
func (s *Server) getConfig(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	key := rc.key
	if key == "" {
		writeError(ctx, errInvalid("key", "is required"))
		return
	}
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		en := tx.ConfigGet(ws, key)
		if en == nil {
			return readResult{index: tx.TableIndex(ws, tableConfig), err: errNotFound(fmt.Sprintf("config key %q not found", key))}
		}
		return readResult{index: en.ModifyIndex, body: en}
	})
}

// compactValue checks and compacts a JSON value for field.
func compactValue(field string, v json.RawMessage) ([]byte, *apiError) {
	if len(v) == 0 {
		return nil, errInvalid(field, "is required")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return nil, &apiError{status: fasthttp.StatusBadRequest, code: CodeInvalidJSON,
			message: field + ": malformed JSON: " + err.Error(), field: field}
	}
	out := buf.Bytes()
	if e := registry.ValidateConfigValue(field, out); e != nil {
		return nil, fromRegistry(e)
	}
	return out, nil
}

func (r *configEntryRequest) op(prefix string) (command.ConfigOp, *apiError) {
	var key string
	if r.Key != nil {
		key = *r.Key
	}
	if e := registry.ValidateConfigKey(prefix+"key", key); e != nil {
		return command.ConfigOp{}, fromRegistry(e)
	}
	v, e := compactValue(prefix+"value", r.Value)
	if e != nil {
		return command.ConfigOp{}, e
	}
	return command.ConfigOp{Key: key, Value: v, CAS: r.CAS}, nil
}

// POST /config: {"key","value","cas"?} or {"entries":[...]} (atomic).
func (s *Server) postConfig(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	var req configRequest
	if e := decodeJSON(ctx.PostBody(), &req); e != nil {
		s.reject(ctx, e)
		return
	}
	cmd := &command.ConfigSet{Meta: s.meta(rc)}
	if req.Entries != nil {
		if req.Key != nil || req.Value != nil || req.CAS != nil {
			s.reject(ctx, errInvalid("entries", "give either key/value/cas or entries, not both"))
			return
		}
		if len(req.Entries) == 0 {
			s.reject(ctx, errInvalid("entries", "at least one entry is required"))
			return
		}
		cmd.Batch = true
		seen := make(map[string]int, len(req.Entries))
		for i := range req.Entries {
			op, e := req.Entries[i].op("entries[" + strconv.Itoa(i) + "].")
			if e != nil {
				s.reject(ctx, e)
				return
			}
			if j, dup := seen[op.Key]; dup {
				s.reject(ctx, errInvalid(fmt.Sprintf("entries[%d].key", i), "%q appears twice (also entries[%d])", op.Key, j))
				return
			}
			seen[op.Key] = i
			cmd.Entries = append(cmd.Entries, op)
		}
	} else {
		single := configEntryRequest{Key: req.Key, Value: req.Value, CAS: req.CAS}
		op, e := single.op("")
		if e != nil {
			s.reject(ctx, e)
			return
		}
		cmd.Entries = []command.ConfigOp{op}
	}
	for i, op := range cmd.Entries {
		if e := s.allowedTo(rc, registry.ACLResourceConfig, op.Key, acl.Write); e != nil {
			if cmd.Batch {
				e.field = "entries[" + strconv.Itoa(i) + "].key"
			}
			writeError(ctx, e)
			return
		}
	}
	s.commit(ctx, rc, command.TypeConfigSet, cmd, false)
}

// PUT /config/{key}?cas=N, body = the JSON value.
func (s *Server) putConfig(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if args := ctx.QueryArgs(); args.Has("acquire") || args.Has("release") {
		s.putLock(ctx, rc) // sessions.go
		return
	}
	if e := registry.ValidateConfigKey("key", rc.key); e != nil {
		s.reject(ctx, fromRegistry(e))
		return
	}
	cas, e := casArg(ctx.QueryArgs())
	if e != nil {
		s.reject(ctx, e)
		return
	}
	body := ctx.PostBody()
	if len(bytes.TrimSpace(body)) == 0 {
		s.reject(ctx, errInvalid("value", "is required: the body is the JSON value"))
		return
	}
	v, e := bodyValue(body)
	if e != nil {
		s.reject(ctx, e)
		return
	}
	s.commit(ctx, rc, command.TypeConfigSet, &command.ConfigSet{
		Meta: s.meta(rc), Entries: []command.ConfigOp{{Key: rc.key, Value: v, CAS: cas}},
	}, false)
}

// DELETE /config/{key}?cas=N
func (s *Server) deleteConfig(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if e := registry.ValidateConfigKey("key", rc.key); e != nil {
		s.reject(ctx, fromRegistry(e))
		return
	}
	cas, e := casArg(ctx.QueryArgs())
	if e != nil {
		s.reject(ctx, e)
		return
	}
	s.commit(ctx, rc, command.TypeConfigDelete, &command.ConfigDelete{Meta: s.meta(rc), Key: rc.key, CAS: cas}, false)
}
