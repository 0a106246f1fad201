package api

import (
	"context"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// meta is the audit metadata of a write proposed by this request: the
// actor is the token's accessor id or the JWT subject ("anonymous"
// without a token), and with ACLs on the caller goes along for Apply's
// own check.
func (s *Server) meta(rc *reqCtx) command.Meta {
	return command.Meta{Actor: rc.ident.Actor(), RequestID: rc.id, Node: s.cluster.NodeName(), Time: s.now().UnixNano(),
		Auth: s.authOf(rc)}
}

// reject answers a write refused before or by Raft and counts it.
func (s *Server) reject(ctx *fasthttp.RequestCtx, e *apiError) {
	s.metrics.rejected.WithLabelValues(rejectReason(e.code)).Inc()
	writeError(ctx, e)
}

func rejectReason(code string) string {
	switch code {
	case registry.CodeInvalid, CodeInvalidJSON:
		return "validation"
	case registry.CodeCASConflict:
		return "cas"
	case registry.CodeNotFound, registry.CodeTypeConflict, registry.CodeConflict,
		CodeNoLeader, CodeOutcomeUnknown, CodeBodyTooLarge, CodeForbidden, registry.CodeAuditBacklogFull,
		CodeUnauthenticated, CodePermissionDenied, registry.CodeACLBootstrapped, registry.CodeTxnConflict,
		command.CodeFeatureUnavailable:
		return code
	}
	return "internal"
}

// apply encodes msg, commits it through the Writer and maps the outcome. It
// answers the error itself and returns nil, or returns the applied result
// (Result.Err unset) without answering.
func (s *Server) apply(ctx *fasthttp.RequestCtx, rc *reqCtx, t command.Type, msg any) *command.Result {
	res, e := s.applyCmd(rc, t, msg)
	if e != nil {
		s.reject(ctx, e)
		return nil
	}
	return res
}

// businessError is the answer of a write Apply refused.
func businessError(e *command.Error) *apiError {
	return &apiError{status: statusOfCode(e.Code), code: e.Code, message: e.Message,
		retryAfter: e.Code == registry.CodeAuditBacklogFull}
}

// propose encodes msg and commits it through the Writer. It answers a
// failed write itself and returns nil, or returns the result, business
// error (Result.Err) included, without answering.
func (s *Server) propose(ctx *fasthttp.RequestCtx, rc *reqCtx, t command.Type, msg any) *command.Result {
	res, e := s.applyCmd(rc, t, msg)
	if res == nil {
		s.reject(ctx, e)
		return nil
	}
	return res
}

// applyCmd is apply without the answer: the applied result, or the
// refusal (with the result when Raft applied it as a business error).
func (s *Server) applyCmd(rc *reqCtx, t command.Type, msg any) (*command.Result, *apiError) {
	cmd, err := s.codec.Encode(t, msg)
	if err != nil {
		s.log.Error("encode command", "request_id", rc.id, "type", t.String(), "err", err)
		return nil, errInternal("cannot encode the command")
	}
	actx, cancel := context.WithTimeout(context.Background(), s.applyTimeout)
	res, err := s.writer.Apply(actx, cmd)
	cancel()
	if err != nil {
		return nil, s.writeErr(rc, t, err)
	}
	if res == nil {
		s.log.Error("writer returned no result", "request_id", rc.id, "type", t.String())
		return nil, errInternal("the write returned no result")
	}
	rc.index = res.Index
	if res.Err != nil {
		return res, businessError(res.Err)
	}
	return res, nil
}

// writeErr maps a failed Apply to its answer (errorOf).
func (s *Server) writeErr(rc *reqCtx, t command.Type, err error) *apiError {
	e, ok := errorOf("the write", err)
	if !ok {
		s.log.Error("write failed", "request_id", rc.id, "type", t.String(), "err", err)
	}
	return e
}

// answerResult writes an applied result: 201 when created and the endpoint
// creates, else 200, with Result.Value as the body.
func (s *Server) answerResult(ctx *fasthttp.RequestCtx, rc *reqCtx, res *command.Result, creates bool) {
	body, err := res.RawValue()
	if err != nil {
		s.log.Error("encode result", "request_id", rc.id, "err", err)
		writeError(ctx, errInternal("cannot encode the answer"))
		return
	}
	status := fasthttp.StatusOK
	if creates && res.Created {
		status = fasthttp.StatusCreated
	}
	rc.index = res.Index
	writeRaw(ctx, status, body)
}

// commit is apply then answerResult.
func (s *Server) commit(ctx *fasthttp.RequestCtx, rc *reqCtx, t command.Type, msg any, creates bool) {
	if res := s.apply(ctx, rc, t, msg); res != nil {
		s.answerResult(ctx, rc, res, creates)
	}
}
