package api

import (
	"context"
	"errors"

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
		CodeUnauthenticated, CodePermissionDenied, registry.CodeACLBootstrapped, command.CodeFeatureUnavailable:
		return code
	}
	return "internal"
}

// apply encodes msg, commits it through the Writer and maps the outcome. It
// answers the error itself and returns nil, or returns the applied result
// (Result.Err unset) without answering.
func (s *Server) apply(ctx *fasthttp.RequestCtx, rc *reqCtx, t command.Type, msg any) *command.Result {
	cmd, err := s.codec.Encode(t, msg)
	if err != nil {
		s.log.Error("encode command", "request_id", rc.id, "type", t.String(), "err", err)
		s.reject(ctx, errInternal("cannot encode the command"))
		return nil
	}
	actx, cancel := context.WithTimeout(context.Background(), s.applyTimeout)
	res, err := s.writer.Apply(actx, cmd)
	cancel()
	if err != nil {
		s.reject(ctx, s.writeErr(rc, t, err))
		return nil
	}
	if res == nil {
		s.log.Error("writer returned no result", "request_id", rc.id, "type", t.String())
		s.reject(ctx, errInternal("the write returned no result"))
		return nil
	}
	rc.index = res.Index
	if res.Err != nil {
		s.reject(ctx, &apiError{status: statusOfCode(res.Err.Code), code: res.Err.Code, message: res.Err.Message,
			retryAfter: res.Err.Code == registry.CodeAuditBacklogFull})
		return nil
	}
	return res
}

// writeErr maps a failed Apply to its answer.
func (s *Server) writeErr(rc *reqCtx, t command.Type, err error) *apiError {
	switch {
	case errors.Is(err, command.ErrFeatureUnavailable):
		// Not dispatched: a rolling upgrade is not finished (docs/operations.md).
		return &apiError{status: fasthttp.StatusConflict, code: command.CodeFeatureUnavailable, message: err.Error()}
	case errors.Is(err, command.ErrNoLeader):
		return errNoLeader("no leader: the write was not applied; retry")
	case errors.Is(err, command.ErrOutcomeUnknown), errors.Is(err, command.ErrNotApplied),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errOutcomeUnknown("the write may or may not have been applied: " + err.Error())
	}
	s.log.Error("write failed", "request_id", rc.id, "type", t.String(), "err", err)
	return errInternal("the write failed: " + err.Error())
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
