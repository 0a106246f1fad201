package consul

import (
	"strconv"

	"github.com/hashicorp/go-memdb"

	"github.com/nexus/nexus/registry"
)

// GET /v1/health/service/:name?passing&tag=: Node, Service and Checks of
// every instance; an unknown service is [] (200).
func (s *Server) healthService(r *request) {
	tags := r.tags()
	// ?passing (or passing=true): every check passes.
	onlyPassing := r.ctx.QueryArgs().Has("passing")
	if v := string(r.ctx.QueryArgs().Peek("passing")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			r.fail(errInvalid("passing", "%q is not true or false", v))
			return
		}
		onlyPassing = b
	}
	var out []serviceEntry
	ok := r.serviceRead(r.param, func(_ *registry.Tx, insts []registry.Instance) {
		n := s.nodes()
		out = make([]serviceEntry, 0, len(insts))
		for i := range insts {
			in := &insts[i]
			if !in.HasTags(tags) || (onlyPassing && !passing(in)) {
				continue
			}
			out = append(out, serviceEntry{Node: n.node(in.Node), Service: toAgentService(in), Checks: toChecks(in)})
		}
	})
	if ok {
		r.json(out)
	}
}

// GET /v1/health/checks/:name: the checks of a service's instances.
func (s *Server) healthChecks(r *request) {
	var out []healthCheck
	ok := r.serviceRead(r.param, func(_ *registry.Tx, insts []registry.Instance) {
		out = make([]healthCheck, 0, len(insts))
		for i := range insts {
			out = append(out, toChecks(&insts[i])...)
		}
	})
	if ok {
		r.json(out)
	}
}

// GET /v1/health/state/:state: every check in a state (any, passing,
// warning, critical), of the services the caller may read.
func (s *Server) healthState(r *request) {
	state := r.param
	switch state {
	case "any", registry.StatusPassing, registry.StatusWarning, registry.StatusCritical:
	default:
		r.fail(errInvalid("state", "%q must be any, passing, warning or critical", state))
		return
	}
	if !r.checkList(registry.ACLResourceService) {
		return
	}
	var out []healthCheck
	ok := r.read(func(tx *registry.Tx, ws memdb.WatchSet) uint64 {
		out = []healthCheck{}
		for _, svc := range tx.Services(nil) {
			if !r.canRead(registry.ACLResourceService, svc.Name) {
				continue
			}
			for _, in := range tx.ServiceInstances(nil, svc.Name) {
				for _, c := range toChecks(&in) {
					if state == "any" || c.Status == state {
						out = append(out, c)
					}
				}
			}
		}
		return tx.TableIndex(ws, tableServices)
	})
	if ok {
		r.json(out)
	}
}
