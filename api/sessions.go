package api

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Sessions and locks (docs/sessions.md): a session is created, renewed
// and destroyed through Raft; its TTL is timed by the leader (package
// session), never here.

// sessionRequest is the body of POST /sessions.
type sessionRequest struct {
	Name      string `json:"name"`
	TTL       string `json:"ttl"`
	Behavior  string `json:"behavior"`
	LockDelay string `json:"lock_delay"`
	Node      string `json:"node"`
}

// routeSessions matches /sessions, /sessions/{id} and /sessions/{id}/renew.
func (s *Server) routeSessions(segs []string, p pathParams) (*endpoint, pathParams, *apiError) {
	e := &s.eps
	switch {
	case len(segs) == 1:
		return &e.sessions, p, nil
	case len(segs) == 2:
		p.name = segs[1]
		return &e.session, p, nil
	case len(segs) == 3 && segs[2] == "renew":
		p.name = segs[1]
		return &e.sessionRenew, p, nil
	}
	return nil, p, nil
}

// sessionAccess is what the session and txn endpoints need before their
// handler: lists are filtered, the rest check the names they learn.
func (s *Server) sessionAccess(ep *endpoint, level acl.Access) (access, bool) {
	e := &s.eps
	switch ep {
	case &e.sessions:
		if level == acl.Read {
			return access{mode: modeList, resource: registry.ACLResourceSession}, true
		}
		return access{mode: modeIdentity}, true
	case &e.session, &e.sessionRenew, &e.txn:
		return access{mode: modeIdentity}, true
	}
	return access{}, false
}

// POST /sessions → 201 with the session.
func (s *Server) createSession(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	var req sessionRequest
	if body := ctx.PostBody(); len(bytes.TrimSpace(body)) > 0 {
		if e := decodeJSON(body, &req); e != nil {
			s.reject(ctx, e)
			return
		}
	}
	if req.Node == "" {
		req.Node = s.cluster.NodeName()
	}
	id, err := acl.NewSecret()
	if err != nil {
		s.reject(ctx, errInternal("cannot generate a session id: "+err.Error()))
		return
	}
	sess, e := registry.NormalizeSession(registry.Session{ID: id, Name: req.Name, Node: req.Node, TTL: req.TTL,
		Behavior: req.Behavior, LockDelay: req.LockDelay})
	if e != nil {
		s.reject(ctx, fromRegistry(e))
		return
	}
	if e := s.allowedTo(rc, registry.ACLResourceSession, sess.Name, acl.Write); e != nil {
		writeError(ctx, e)
		return
	}
	if e := s.sessionNode(sess.Node); e != nil {
		s.reject(ctx, e)
		return
	}
	s.commit(ctx, rc, command.TypeSessionCreate, &command.SessionCreate{Meta: s.meta(rc), Session: sess}, true)
}

// sessionNode refuses a node gossip does not know, or knows as failed or
// gone: its sessions would never be (or at once be) invalidated.
func (s *Server) sessionNode(node string) *apiError {
	for _, m := range s.cluster.Members() {
		if m.Name != node {
			continue
		}
		if m.Status == "failed" || m.Status == "left" {
			return errInvalid("node", "node %q is %s: a session there would be invalidated at once", node, m.Status)
		}
		return nil
	}
	return errInvalid("node", "%q is not a member of the cluster", node)
}

// GET /sessions?node=N
func (s *Server) listSessions(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	args := ctx.QueryArgs()
	lo, e := parseListOpts(args)
	if e != nil {
		writeError(ctx, e)
		return
	}
	node := string(args.Peek("node"))
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		res := readResult{index: tx.TableIndex(ws, registry.TableSessions)}
		all := tx.Sessions(nil)
		if node != "" {
			all = tx.NodeSessions(nil, node)
		}
		res.body, res.next = page(all, lo, func(s registry.Session) (string, bool) {
			return s.ID, rc.canRead(registry.ACLResourceSession, s.Name)
		})
		return res
	})
}

// page returns one page of items (sorted by cursor) that the caller may
// see, and the cursor of the next page ("" on the last).
func page[T any](items []T, lo listOpts, of func(T) (cursor string, visible bool)) ([]T, string) {
	out := make([]T, 0)
	last := ""
	for _, it := range items {
		cur, ok := of(it)
		if (lo.after != "" && cur <= lo.after) || !ok {
			continue
		}
		if len(out) == lo.limit {
			return out, last
		}
		out, last = append(out, it), cur
	}
	return out, ""
}

// GET /sessions/{id}: a blocking query on a session returns when it is
// invalidated (404 at a higher index).
func (s *Server) getSession(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	id := rc.name
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		sess := tx.Session(ws, id)
		if sess == nil {
			return readResult{index: tx.TableIndex(ws, registry.TableSessions), err: errNotFound(fmt.Sprintf("session %q not found", id))}
		}
		if !rc.canRead(registry.ACLResourceSession, sess.Name) {
			return readResult{err: denialError(acl.Denied(rc.ident, registry.ACLResourceSession, sess.Name, acl.Read))}
		}
		return readResult{index: sess.ModifyIndex, body: sess}
	})
}

// checkSessionName is the fast check of a write on a stored session
// (Apply checks again); a session unknown here passes to Apply.
func (s *Server) checkSessionName(rc *reqCtx, id string) *apiError {
	if rc.authz == nil {
		return nil
	}
	tx := s.reader.Store().ReadTxn()
	sess := tx.Session(nil, id)
	tx.Abort()
	if sess == nil {
		return nil
	}
	return s.allowedTo(rc, registry.ACLResourceSession, sess.Name, acl.Write)
}

// PUT /sessions/{id}/renew → 200 with the session; 404 once it is gone.
func (s *Server) renewSession(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if e := s.checkSessionName(rc, rc.name); e != nil {
		writeError(ctx, e)
		return
	}
	s.commit(ctx, rc, command.TypeSessionRenew, &command.SessionRenew{Meta: s.meta(rc), ID: rc.name}, false)
}

// DELETE /sessions/{id} → 200 {"id","invalidated",...}, also when gone.
func (s *Server) destroySession(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if e := s.checkSessionName(rc, rc.name); e != nil {
		writeError(ctx, e)
		return
	}
	s.commit(ctx, rc, command.TypeSessionInvalidate, &command.SessionInvalidate{Meta: s.meta(rc), ID: rc.name,
		Reason: registry.ReasonDestroy}, false)
}

// PUT /config/{key}?acquire=SESSION or ?release=SESSION; the body, when
// given, is the key's new value.
func (s *Server) putLock(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if e := registry.ValidateConfigKey("key", rc.key); e != nil {
		s.reject(ctx, fromRegistry(e))
		return
	}
	args := ctx.QueryArgs()
	field := "acquire"
	switch {
	case args.Has("acquire") && args.Has("release"):
		s.reject(ctx, errInvalid("release", "give acquire or release, not both"))
		return
	case args.Has("release"):
		field = "release"
	}
	if args.Has("cas") {
		s.reject(ctx, errInvalid("cas", "cannot be combined with %s (a lock decides on its holder, not on modify_index; use POST /txn)", field))
		return
	}
	id := string(args.Peek(field))
	if !registry.ValidSessionID(id) {
		s.reject(ctx, errInvalid(field, "%q is not a session id", id))
		return
	}
	var value []byte
	if len(bytes.TrimSpace(ctx.PostBody())) > 0 {
		v, e := bodyValue(ctx.PostBody())
		if e != nil {
			s.reject(ctx, e)
			return
		}
		value = v
	}
	res := s.propose(ctx, rc, command.TypeConfigLock, &command.ConfigLock{Meta: s.meta(rc), Key: rc.key, Session: id,
		Value: value, Release: field == "release"})
	if res == nil {
		return
	}
	if res.Err != nil {
		e := businessError(res.Err)
		if e.code == registry.CodeNotFound {
			e.field = field
		}
		s.reject(ctx, e)
		return
	}
	s.answerResult(ctx, rc, res, false)
}

// bodyValue checks and compacts a request body that is a config value.
func bodyValue(body []byte) ([]byte, *apiError) {
	if !json.Valid(body) {
		return nil, &apiError{status: fasthttp.StatusBadRequest, code: CodeInvalidJSON,
			message: "malformed JSON: the body must be the JSON value of the key"}
	}
	return compactValue("value", body)
}
