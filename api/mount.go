package api

import (
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Mounted is an API served under /v1/ of the admin listener: the
// Consul-compatible API (package consul). The admin API's guard, request
// id, panic recovery, body limit, request metrics and X-Nexus-* headers
// apply to it; it authenticates and checks each request itself through the
// methods below, which are the native endpoints' own machinery, and answers
// in its own shapes.
type Mounted interface {
	// ServeMounted answers one request. It returns the route pattern (the
	// route label of the request metrics) and the index X-Nexus-Index
	// reports.
	ServeMounted(ctx *fasthttp.RequestCtx, requestID string) (route string, index uint64)
}

// MountV1 serves every /v1/... request with m. Call it before Serve.
func (s *Server) MountV1(m Mounted) {
	h := func(ctx *fasthttp.RequestCtx, rc *reqCtx) {
		rc.route, rc.index = m.ServeMounted(ctx, rc.id)
	}
	v := &s.eps.v1
	v.get, v.post, v.put, v.delete = h, h, h, h
	v.computeAllow()
}

// StatusCode, ErrorCode and ErrorField tell a mounted API how to answer an
// error returned by the methods below: its HTTP status, the code and the
// offending field of the {"error":{...}} shape.
func (e *apiError) StatusCode() int { return e.status }

// ErrorCode is the error's code (see StatusCode).
func (e *apiError) ErrorCode() string { return e.code }

// ErrorField is the input field the error names, or "" (see StatusCode).
func (e *apiError) ErrorField() string { return e.field }

// RetryAfter reports whether the answer carries Retry-After (see StatusCode).
func (e *apiError) RetryAfter() bool { return e.retryAfter }

// statusError is an error that knows its API answer (apiError does).
type statusError interface {
	error
	StatusCode() int
	ErrorCode() string
}

// WriteError answers err in the API's error shape {"error":{...}}: the
// status, code and field of an error that has StatusCode, ErrorCode and
// ErrorField (Retry-After with RetryAfter), else a 500.
func (s *Server) WriteError(ctx *fasthttp.RequestCtx, err error) {
	e := &apiError{status: fasthttp.StatusInternalServerError, code: registry.CodeInternal, message: err.Error()}
	if se, ok := err.(statusError); ok {
		e.status, e.code = se.StatusCode(), se.ErrorCode()
	}
	if f, ok := err.(interface{ ErrorField() string }); ok {
		e.field = f.ErrorField()
	}
	if ra, ok := err.(interface{ RetryAfter() bool }); ok {
		e.retryAfter = ra.RetryAfter()
	}
	if m, ok := err.(interface{ ErrorMessage() string }); ok {
		e.message = m.ErrorMessage()
	}
	writeError(ctx, e)
}

// ErrorMessage is the message alone (Error() prefixes the code).
func (e *apiError) ErrorMessage() string { return e.message }

// Authenticate resolves the caller presenting cred ("" is anonymous) as the
// native endpoints do: a token secret (looked up through the leader when
// this replica does not know it yet) or a JWT, under the per-token rate
// limit. With ACLs off it returns a nil Authorizer: everything is allowed.
func (s *Server) Authenticate(ctx *fasthttp.RequestCtx, cred string) (acl.Identity, *acl.Authorizer, error) {
	if !s.acl.opts.Enabled {
		return acl.Identity{Kind: acl.Anonymous}, nil, nil
	}
	id, authz, e := s.authenticate(ctx, cred)
	if e != nil {
		return id, nil, e
	}
	return id, authz, nil
}

// Check checks one access of a caller Authenticate resolved: 401 or 403
// when refused, nil when allowed or when ACLs are off.
func (s *Server) Check(id acl.Identity, authz *acl.Authorizer, resource, name string, level acl.Access) error {
	if authz == nil {
		return nil
	}
	if e := s.checkAccess(id, authz, check(resource, name, level)); e != nil {
		return e
	}
	return nil
}

// CheckList is the check of a list filtered to what the caller may read:
// an anonymous caller without any read right on the resource is told to
// authenticate (401) rather than shown an empty list.
func (s *Server) CheckList(id acl.Identity, authz *acl.Authorizer, resource string) error {
	if authz == nil {
		return nil
	}
	if e := s.checkAccess(id, authz, access{mode: modeList, resource: resource}); e != nil {
		return e
	}
	return nil
}

// ApplyAs commits a command as the native writes do: build receives the
// audit meta of the caller (checked again on apply), the write goes
// through the Writer, and the outcome comes back as the result or as an
// error with its answer (503 no_leader, 504 outcome_unknown, a business
// error such as 409 cas_conflict with the result of the entry that
// refused it).
func (s *Server) ApplyAs(id acl.Identity, requestID string, t command.Type, build func(command.Meta) any) (*command.Result, error) {
	rc := &reqCtx{id: requestID, ident: id}
	res, e := s.applyCmd(rc, t, build(s.meta(rc)))
	if e != nil {
		s.metrics.rejected.WithLabelValues(rejectReason(e.code)).Inc()
		return res, e
	}
	return res, nil
}

// SessionNode refuses (400 naming node) a node a session cannot be tied
// to, as POST /sessions does: one gossip does not know, or knows as
// failed or gone.
func (s *Server) SessionNode(node string) error {
	if e := s.sessionNode(node); e != nil {
		return e
	}
	return nil
}

// Heartbeat refreshes an instance's TTL check on the node that owns it,
// with the caller's credential, as PUT /services/{name}/instances/{id}/heartbeat
// does ("" status is passing).
func (s *Server) Heartbeat(requestID, cred, service, id, status, output string) (*registry.Instance, error) {
	rc := &reqCtx{id: requestID}
	if s.heartbeats == nil {
		return nil, errInternal("this node runs no health checks")
	}
	inst, e := s.beat(rc, cred, service, id, status, truncateOutput(output), false)
	if e != nil {
		s.metrics.rejected.WithLabelValues(rejectReason(e.code)).Inc()
		return nil, e
	}
	return inst, nil
}

// Read runs fn on the local replica like the native reads: after a
// consistent-read barrier when consistent; when blocking, again each time
// what fn watched changes while the index fn returns is at most minIndex,
// until wait passes or the server shuts down. The last run is the answer.
func (s *Server) Read(consistent, blocking bool, minIndex uint64, wait time.Duration,
	fn func(tx *registry.Tx, ws memdb.WatchSet) uint64) error {
	if consistent {
		if e := s.consistentBarrier(); e != nil {
			return e
		}
	}
	s.block(readOpts{blocking: blocking, minIndex: minIndex, wait: wait}, fn)
	return nil
}
