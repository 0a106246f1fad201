package api

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

const tableRoutes = "routes"

// GET /gateway/routes
func (s *Server) listRoutes(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	lo, e := parseListOpts(ctx.QueryArgs())
	if e != nil {
		writeError(ctx, e)
		return
	}
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		res := readResult{index: tx.TableIndex(ws, tableRoutes)}
		out := make([]registry.Route, 0, min(lo.limit, 64))
		tx.EachRoute(lo.after, func(r *registry.Route) bool {
			if !rc.canRead(registry.ACLResourceRoute, r.ID) {
				return true
			}
			if len(out) == lo.limit {
				res.next = out[len(out)-1].ID
				return false
			}
			out = append(out, *r)
			return true
		})
		res.body = out
		return res
	})
}

// GET /gateway/routes/{id}
func (s *Server) getRoute(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	id := rc.name
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		r := tx.Route(ws, id)
		if r == nil {
			return readResult{index: tx.TableIndex(ws, tableRoutes), err: errNotFound(fmt.Sprintf("route %q not found", id))}
		}
		return readResult{index: r.ModifyIndex, body: r}
	})
}

// POST /gateway/routes: create only (409 conflict when the id exists).
func (s *Server) createRoute(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	var r registry.Route
	if e := decodeJSON(ctx.PostBody(), &r); e != nil {
		s.reject(ctx, e)
		return
	}
	s.upsertRoute(ctx, rc, r, true)
}

// PUT /gateway/routes/{id}: upsert; the id of the path wins.
func (s *Server) putRoute(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	var r registry.Route
	if e := decodeJSON(ctx.PostBody(), &r); e != nil {
		s.reject(ctx, e)
		return
	}
	if r.ID != "" && r.ID != rc.name {
		s.reject(ctx, errInvalid("id", "%q differs from the id %q of the path", r.ID, rc.name))
		return
	}
	r.ID = rc.name
	s.upsertRoute(ctx, rc, r, false)
}

func (s *Server) upsertRoute(ctx *fasthttp.RequestCtx, rc *reqCtx, r registry.Route, createOnly bool) {
	if e := s.allowedTo(rc, registry.ACLResourceRoute, r.ID, acl.Write); e != nil {
		writeError(ctx, e)
		return
	}
	r.CreateIndex, r.ModifyIndex = 0, 0
	nr, verr := registry.NormalizeRoute(r)
	if verr != nil {
		s.reject(ctx, fromRegistry(verr))
		return
	}
	s.commit(ctx, rc, command.TypeRouteUpsert, &command.RouteUpsert{Meta: s.meta(rc), Route: nr, CreateOnly: createOnly}, true)
}

// DELETE /gateway/routes/{id}
func (s *Server) deleteRoute(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	s.commit(ctx, rc, command.TypeRouteDelete, &command.RouteDelete{Meta: s.meta(rc), ID: rc.name}, false)
}
