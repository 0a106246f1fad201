package api

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Maintenance mode (docs/operations.md, "Maintenance"): records for a
// node, a service or an instance, replicated through Raft; the registry
// turns every instance they cover critical.

// maintenanceRequest is the optional body of a PUT.
type maintenanceRequest struct {
	Reason string `json:"reason"`
}

// routeMaintenance matches /maintenance, /maintenance/nodes/{node},
// /maintenance/services/{name} and /maintenance/services/{name}/instances/{id}.
func (s *Server) routeMaintenance(segs []string, p pathParams) (*endpoint, pathParams, *apiError) {
	e := &s.eps
	switch {
	case len(segs) == 1:
		return &e.maintenance, p, nil
	case len(segs) == 3 && segs[1] == "nodes":
		p.name = segs[2]
		return &e.maintNode, p, nil
	case len(segs) == 3 && segs[1] == "services":
		p.name = segs[2]
		return &e.maintService, p, nil
	case len(segs) == 5 && segs[1] == "services" && segs[3] == "instances":
		p.name, p.instance = segs[2], segs[4]
		return &e.maintInstance, p, nil
	}
	return nil, p, nil
}

// maintenanceAccess: a node's maintenance is the cluster's (the operator
// right), a service's or an instance's is its service's; the list is
// filtered to what the caller may read.
func (s *Server) maintenanceAccess(ep *endpoint, level acl.Access, rc *reqCtx) (access, bool) {
	e := &s.eps
	switch ep {
	case &e.maintenance:
		return access{mode: modeIdentity}, true
	case &e.maintNode:
		return check(registry.ACLResourceCluster, "", level), true
	case &e.maintService, &e.maintInstance:
		return check(registry.ACLResourceService, rc.name, level), true
	}
	return access{}, false
}

// maintenanceRecord is the record a maintenance path of scope names.
func maintenanceRecord(scope string, rc *reqCtx) registry.Maintenance {
	switch scope {
	case registry.MaintNode:
		return registry.Maintenance{Scope: scope, Node: rc.name}
	case registry.MaintService:
		return registry.Maintenance{Scope: scope, Service: rc.name}
	}
	return registry.Maintenance{Scope: registry.MaintInstance, Service: rc.name, ID: rc.instance}
}

// maintenanceEndpoint is the endpoint of one scope's record path.
func (s *Server) maintenanceEndpoint(pattern, scope string) endpoint {
	return endpoint{pattern: pattern,
		get:    func(ctx *fasthttp.RequestCtx, rc *reqCtx) { s.getMaintenance(ctx, rc, scope) },
		put:    func(ctx *fasthttp.RequestCtx, rc *reqCtx) { s.enableMaintenance(ctx, rc, scope) },
		delete: func(ctx *fasthttp.RequestCtx, rc *reqCtx) { s.disableMaintenance(ctx, rc, scope) },
	}
}

// GET /maintenance → every record the caller may read, in key order.
func (s *Server) listMaintenance(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		res := readResult{index: tx.TableIndex(ws, registry.TableMaintenance)}
		out := make([]registry.Maintenance, 0)
		for _, m := range tx.Maintenances(nil) {
			if maintenanceReadable(rc, &m) {
				out = append(out, m)
			}
		}
		res.body = out
		return res
	})
}

func maintenanceReadable(rc *reqCtx, m *registry.Maintenance) bool {
	if m.Scope == registry.MaintNode {
		return rc.canRead(registry.ACLResourceCluster, "")
	}
	return rc.canRead(registry.ACLResourceService, m.Service)
}

// GET on a record's path → the record, 404 when there is none.
func (s *Server) getMaintenance(ctx *fasthttp.RequestCtx, rc *reqCtx, scope string) {
	rec, e := registry.NormalizeMaintenance(maintenanceRecord(scope, rc))
	if e != nil {
		writeError(ctx, fromRegistry(e))
		return
	}
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		m := tx.MaintenanceOf(ws, rec.Key)
		if m == nil {
			return readResult{index: tx.TableIndex(ws, registry.TableMaintenance),
				err: errNotFound(fmt.Sprintf("%s is not in maintenance", rec.Key))}
		}
		return readResult{index: m.ModifyIndex, body: m}
	})
}

// PUT on a record's path (body {"reason"} optional) → 200 with the record.
func (s *Server) enableMaintenance(ctx *fasthttp.RequestCtx, rc *reqCtx, scope string) {
	var req maintenanceRequest
	if body := ctx.PostBody(); len(bytes.TrimSpace(body)) > 0 {
		if e := decodeJSON(body, &req); e != nil {
			s.reject(ctx, e)
			return
		}
	}
	rec := maintenanceRecord(scope, rc)
	rec.Reason = req.Reason
	s.commitMaintenance(ctx, rc, rec, true)
}

// DELETE on a record's path → 200 {"ended":true|false,"instances":N}.
func (s *Server) disableMaintenance(ctx *fasthttp.RequestCtx, rc *reqCtx, scope string) {
	s.commitMaintenance(ctx, rc, maintenanceRecord(scope, rc), false)
}

func (s *Server) commitMaintenance(ctx *fasthttp.RequestCtx, rc *reqCtx, rec registry.Maintenance, enable bool) {
	rec, e := registry.NormalizeMaintenance(rec)
	if e != nil {
		s.reject(ctx, fromRegistry(e))
		return
	}
	if rec.Scope == registry.MaintNode && !s.knownNode(rec.Node) {
		s.reject(ctx, &apiError{status: fasthttp.StatusNotFound, code: registry.CodeNotFound, field: "node",
			message: fmt.Sprintf("node %q is not a member of the cluster", rec.Node)})
		return
	}
	if e := s.maintenanceTarget(rec); e != nil {
		s.reject(ctx, e)
		return
	}
	meta := s.meta(rc)
	res := s.apply(ctx, rc, command.TypeMaintenance, &command.Maintenance{Meta: meta, Record: rec, Enable: enable})
	if res == nil {
		return
	}
	what := "maintenance ended"
	if enable {
		what = "maintenance started"
	}
	s.log.Info(what, "request_id", rc.id, "target", rec.Key, "reason", rec.Reason, "actor", meta.Actor, "index", res.Index)
	s.answerResult(ctx, rc, res, false)
}

// maintenanceTarget is the fast check that a service or instance exists
// on this replica, naming the field (Apply checks again).
func (s *Server) maintenanceTarget(rec registry.Maintenance) *apiError {
	tx := s.reader.Store().ReadTxn()
	defer tx.Abort()
	switch rec.Scope {
	case registry.MaintService:
		if tx.Service(nil, rec.Service) == nil {
			return &apiError{status: fasthttp.StatusNotFound, code: registry.CodeNotFound, field: "service",
				message: fmt.Sprintf("service %q not found", rec.Service)}
		}
	case registry.MaintInstance:
		if tx.Instance(nil, rec.Service, rec.ID) == nil {
			return &apiError{status: fasthttp.StatusNotFound, code: registry.CodeNotFound, field: "id",
				message: fmt.Sprintf("instance %q of service %q not found", rec.ID, rec.Service)}
		}
	}
	return nil
}

// knownNode reports whether gossip knows node, in any state: a failed
// node can be put in maintenance while it is repaired.
func (s *Server) knownNode(node string) bool {
	for _, m := range s.cluster.Members() {
		if m.Name == node {
			return true
		}
	}
	return false
}

// The scopes, as the router names them.
const (
	maintNode     = registry.MaintNode
	maintService  = registry.MaintService
	maintInstance = registry.MaintInstance
)
