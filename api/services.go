package api

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"

	"github.com/nexus/nexus/cluster/peerproto"
)

const tableServices = "services"

// serviceView is a service as GET /services and GET /services/{name} show it.
// Instances are the stored objects (encoded, never modified): a page of
// services copies none of them.
type serviceView struct {
	Name      string               `json:"name"`
	Type      string               `json:"type"`
	Tags      []string             `json:"tags"`
	Instances []*registry.Instance `json:"instances"`
}

func newServiceView(tx *registry.Tx, svc *registry.Service) serviceView {
	insts := []*registry.Instance{}
	tags := map[string]bool{}
	tx.EachServiceInstance(svc.Name, "", func(in *registry.Instance) bool {
		insts = append(insts, in)
		for _, t := range in.Tags {
			tags[t] = true
		}
		return true
	})
	// Never null in JSON: a service without tags has "tags": [].
	sorted := append([]string{}, slices.Sorted(maps.Keys(tags))...)
	return serviceView{Name: svc.Name, Type: svc.Type, Tags: sorted, Instances: insts}
}

// serviceHealth is GET /services/{name}/health.
type serviceHealth struct {
	Service   string           `json:"service"`
	Status    string           `json:"status"`
	Passing   int              `json:"passing"`
	Warning   int              `json:"warning"`
	Critical  int              `json:"critical"`
	Instances []instanceHealth `json:"instances"`
}

type instanceHealth struct {
	ID     string `json:"id"`
	Node   string `json:"node"`
	Status string `json:"status"`
	Output string `json:"output"`
	// Maintenance is set while the instance is in maintenance.
	Maintenance *registry.InstanceMaintenance `json:"maintenance,omitempty"`
}

// POST /services/register
func (s *Server) registerInstance(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	var req registry.RegisterRequest
	if e := decodeJSON(ctx.PostBody(), &req); e != nil {
		s.reject(ctx, e)
		return
	}
	inst, verr := req.Instance(s.cluster.NodeName())
	if verr != nil {
		s.reject(ctx, fromRegistry(verr))
		return
	}
	if e := s.allowedTo(rc, registry.ACLResourceService, inst.Service, acl.Write); e != nil {
		writeError(ctx, e)
		return
	}
	s.commit(ctx, rc, command.TypeRegisterInstance, &command.RegisterInstance{Meta: s.meta(rc), Instance: inst}, true)
}

// GET /services
func (s *Server) listServices(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	lo, e := parseListOpts(ctx.QueryArgs())
	if e != nil {
		writeError(ctx, e)
		return
	}
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		// The table index moves on every change of a service or instance,
		// so it is the only watch a list needs. The walk starts at the
		// cursor and stops after the page: a page costs the page, not the
		// catalog.
		res := readResult{index: tx.TableIndex(ws, tableServices)}
		out := make([]serviceView, 0, min(lo.limit, 64))
		held := 0 // instances on the page
		tx.EachService(lo.after, func(svc *registry.Service) bool {
			if !rc.canRead(registry.ACLResourceService, svc.Name) {
				return true
			}
			if len(out) == lo.limit || held >= PageInstances {
				res.next = out[len(out)-1].Name
				return false
			}
			v := newServiceView(tx, svc)
			held += len(v.Instances)
			out = append(out, v)
			return true
		})
		res.body = out
		return res
	})
}

// GET /services/{name}
func (s *Server) getService(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	name := rc.name
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		svc := tx.Service(ws, name)
		if svc == nil {
			return readResult{index: tx.TableIndex(ws, tableServices), err: errNotFound(fmt.Sprintf("service %q not found", name))}
		}
		return readResult{index: svc.ModifyIndex, body: newServiceView(tx, svc)}
	})
}

// GET /services/{name}/health
func (s *Server) getServiceHealth(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	name := rc.name
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		svc := tx.Service(ws, name)
		if svc == nil {
			return readResult{index: tx.TableIndex(ws, tableServices), err: errNotFound(fmt.Sprintf("service %q not found", name))}
		}
		insts := tx.ServiceInstances(nil, name)
		h := serviceHealth{Service: name, Status: registry.StatusPassing, Instances: make([]instanceHealth, 0, len(insts))}
		for i := range insts {
			in := &insts[i]
			switch in.Status {
			case registry.StatusPassing:
				h.Passing++
			case registry.StatusWarning:
				h.Warning++
			default:
				h.Critical++
			}
			if statusRank(in.Status) > statusRank(h.Status) {
				h.Status = in.Status
			}
			out := ""
			if len(in.Checks) > 0 {
				out = in.Checks[0].Output
			}
			if in.Maintenance != nil {
				// The maintenance "check": its reason is the output.
				out = "maintenance: " + in.Maintenance.Reason
			}
			h.Instances = append(h.Instances, instanceHealth{ID: in.ID, Node: in.Node, Status: in.Status, Output: out,
				Maintenance: in.Maintenance})
		}
		return readResult{index: svc.ModifyIndex, body: h}
	})
}

// statusRank orders statuses from best to worst; unknown counts as critical.
func statusRank(s string) int {
	switch s {
	case registry.StatusPassing:
		return 0
	case registry.StatusWarning:
		return 1
	}
	return 2
}

// GET /discover/{type}?tag=T&service=S&all=true
func (s *Server) discover(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	args := ctx.QueryArgs()
	lo, e := parseListOpts(args)
	if e != nil {
		writeError(ctx, e)
		return
	}
	all, e := boolArg(args, "all")
	if e != nil {
		writeError(ctx, e)
		return
	}
	var afterSvc, afterID string
	if lo.after != "" {
		var ok bool
		if afterSvc, afterID, ok = strings.Cut(lo.after, "/"); !ok {
			writeError(ctx, errInvalid("after", "%q must be a SERVICE/ID cursor", lo.after))
			return
		}
	}
	var tags []string
	for _, t := range args.PeekMulti("tag") {
		tags = append(tags, string(t))
	}
	service := string(args.Peek("service"))
	typ := rc.name
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		res := readResult{index: discoverIndex(tx, ws, typ, service)}
		out := make([]registry.Instance, 0, min(lo.limit, 64))
		emit := func(in *registry.Instance) bool {
			if !all && in.Status != registry.StatusPassing {
				return true
			}
			if (service != "" && in.Service != service) || !rc.canRead(registry.ACLResourceService, in.Service) || !in.HasTags(tags) {
				return true
			}
			if len(out) == lo.limit {
				last := out[len(out)-1]
				res.next = last.Service + "/" + last.ID
				return false
			}
			out = append(out, *in)
			return true
		}
		// Walk from the cursor: services of the type in name order, then
		// their instances in id order (one service's when ?service=).
		switch {
		case service == "":
			tx.EachInstanceOfType(typ, afterSvc, afterID, emit)
		case lo.after != "" && service < afterSvc:
		default:
			if svc := tx.Service(nil, service); svc != nil && svc.Type == typ {
				after := ""
				if service == afterSvc {
					after = afterID
				}
				tx.EachServiceInstance(service, after, emit)
			}
		}
		res.body = out
		return res
	})
}

// discoverIndex is the X-Nexus-Index of a discovery, and what it watches:
// the service's own index with ?service= (when it exists), else the
// highest index that changed an instance of the type. So a blocking
// discovery wakes on changes of what it covers, not on every write.
func discoverIndex(tx *registry.Tx, ws memdb.WatchSet, typ, service string) uint64 {
	if service != "" {
		if svc := tx.Service(ws, service); svc != nil {
			return svc.ModifyIndex
		}
		return tx.TableIndex(ws, tableServices)
	}
	if idx := tx.TypeIndex(ws, typ); idx > 0 {
		return idx
	}
	// A type never seen: the table's index, so that the answer still
	// carries a position; the watch above fires when the type appears.
	return tx.TableIndex(nil, tableServices)
}

// DELETE /services/{name}
func (s *Server) deregisterService(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !registry.ValidName(rc.name) {
		s.reject(ctx, errInvalid("name", "%q is not a valid service name", rc.name))
		return
	}
	s.commit(ctx, rc, command.TypeDeregisterService, &command.DeregisterService{Meta: s.meta(rc), Service: rc.name}, false)
}

// DELETE /services/{name}/instances/{id}
func (s *Server) deregisterInstance(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !registry.ValidName(rc.name) {
		s.reject(ctx, errInvalid("name", "%q is not a valid service name", rc.name))
		return
	}
	s.commit(ctx, rc, command.TypeDeregisterInstance,
		&command.DeregisterInstance{Meta: s.meta(rc), Service: rc.name, ID: rc.instance}, false)
}

// heartbeatRequest is the optional body of a heartbeat.
type heartbeatRequest struct {
	Status *string `json:"status"`
	Output string  `json:"output"`
}

// maxOutput bounds the check output a heartbeat stores.
const maxOutput = 4 << 10

// PUT /services/{name}/instances/{id}/heartbeat
//
// Minimal until health checks land: an unknown instance is 404; a status in
// the body that differs from the stored one is committed (SetStatus).
func (s *Server) heartbeat(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	var req heartbeatRequest
	if body := ctx.PostBody(); len(strings.TrimSpace(string(body))) > 0 {
		if e := decodeJSON(body, &req); e != nil {
			s.reject(ctx, e)
			return
		}
	}
	if req.Status != nil {
		switch *req.Status {
		case registry.StatusPassing, registry.StatusWarning, registry.StatusCritical:
		default:
			s.reject(ctx, errInvalid("status", "%q must be passing, warning or critical", *req.Status))
			return
		}
	}
	req.Output = truncateOutput(req.Output)
	if s.heartbeats != nil {
		s.heartbeatOwner(ctx, rc, req)
		return
	}
	tx := s.reader.Store().ReadTxn()
	cur := tx.Instance(nil, rc.name, rc.instance)
	var idx uint64
	if cur == nil {
		idx = tx.TableIndex(nil, tableServices)
	}
	tx.Abort()
	if cur == nil {
		rc.index = idx
		s.reject(ctx, errNotFound(fmt.Sprintf("instance %q of service %q not found", rc.instance, rc.name)))
		return
	}
	if req.Status == nil || *req.Status == cur.CheckStatus() {
		rc.index = cur.ModifyIndex
		writeJSON(ctx, fasthttp.StatusOK, cur)
		return
	}
	s.commit(ctx, rc, command.TypeSetStatus, &command.SetStatus{
		Meta: s.meta(rc), Service: rc.name, ID: rc.instance, Status: *req.Status, Output: req.Output,
	}, false)
}

// heartbeatOwner passes the heartbeat to the health runner of the node that
// owns the instance (here or through that node's API).
func (s *Server) heartbeatOwner(ctx *fasthttp.RequestCtx, rc *reqCtx, req heartbeatRequest) {
	status := ""
	if req.Status != nil {
		status = *req.Status
	}
	forwarded := len(ctx.Request.Header.Peek(peerproto.HeaderHeartbeatForwarded)) > 0
	inst, e := s.beat(rc, credential(ctx), rc.name, rc.instance, status, req.Output, forwarded)
	if e != nil {
		s.reject(ctx, e)
		return
	}
	rc.index = inst.ModifyIndex
	writeJSON(ctx, fasthttp.StatusOK, inst)
}

// beat passes a heartbeat with the caller's credential to the health
// runner of the node that owns the instance (Deps.Heartbeats).
func (s *Server) beat(rc *reqCtx, cred, service, id, status, output string, forwarded bool) (*registry.Instance, *apiError) {
	hctx, cancel := context.WithTimeout(acl.WithCredential(context.Background(), cred), s.applyTimeout)
	inst, err := s.heartbeats.Heartbeat(hctx, service, id, status, output, forwarded)
	cancel()
	if err != nil {
		return nil, s.writeErr(rc, command.TypeSetStatus, err)
	}
	return inst, nil
}

// truncateOutput bounds the check output a heartbeat stores (maxOutput).
func truncateOutput(out string) string {
	if len(out) > maxOutput {
		return strings.ToValidUTF8(out[:maxOutput], "")
	}
	return out
}
