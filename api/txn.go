package api

import (
	"encoding/json"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// txnRequest is the body of POST /txn.
type txnRequest struct {
	Ops []txnOpRequest `json:"ops"`
}

type txnOpRequest struct {
	Op      string          `json:"op"`
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value"`
	Index   *uint64         `json:"index"`
	Session string          `json:"session"`
}

// txnConflictBody is the 409 answer of a transaction whose check failed.
type txnConflictBody struct {
	Error  errorDetail            `json:"error"`
	Errors []registry.TxnConflict `json:"errors"`
}

// POST /txn → 200 {"results":[...],"index":N}; a failed check → 409
// txn_conflict naming the op, and nothing changed.
func (s *Server) postTxn(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	var req txnRequest
	if e := decodeJSON(ctx.PostBody(), &req); e != nil {
		s.reject(ctx, e)
		return
	}
	ops := make([]registry.TxnOp, len(req.Ops))
	for i, o := range req.Ops {
		ops[i] = registry.TxnOp{Op: o.Op, Key: o.Key, Index: o.Index, Session: o.Session}
		if o.Value != nil {
			v, e := compactValue("ops["+strconv.Itoa(i)+"].value", o.Value)
			if e != nil {
				s.reject(ctx, e)
				return
			}
			ops[i].Value = v
		}
	}
	if e := registry.ValidateTxn(ops); e != nil {
		s.reject(ctx, fromRegistry(e))
		return
	}
	for i, op := range ops {
		level := acl.Read
		if registry.TxnWrites(op.Op) {
			level = acl.Write
		}
		if e := s.allowedTo(rc, registry.ACLResourceConfig, op.Key, level); e != nil {
			e.field = "ops[" + strconv.Itoa(i) + "].key"
			writeError(ctx, e)
			return
		}
	}
	res := s.propose(ctx, rc, command.TypeTxn, &command.Txn{Meta: s.meta(rc), Ops: ops})
	if res == nil {
		return
	}
	if res.Err == nil {
		s.answerResult(ctx, rc, res, false)
		return
	}
	if res.Err.Code != registry.CodeTxnConflict {
		s.reject(ctx, businessError(res.Err))
		return
	}
	body := txnConflictBody{Error: errorDetail{Code: res.Err.Code, Message: res.Err.Message}, Errors: []registry.TxnConflict{}}
	var conf fsm.TxnConflicts
	if raw, err := res.RawValue(); err == nil && json.Unmarshal(raw, &conf) == nil && conf.Errors != nil {
		body.Errors = conf.Errors
	}
	s.metrics.rejected.WithLabelValues(rejectReason(res.Err.Code)).Inc()
	writeJSON(ctx, fasthttp.StatusConflict, body)
}
