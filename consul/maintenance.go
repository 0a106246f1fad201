package consul

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Consul's maintenance calls (what `consul maint` and the Go client's
// Agent().Enable/DisableNodeMaintenance and Enable/DisableServiceMaintenance
// send), mapped onto Nexus maintenance records (docs/operations.md):
// the agent's node is the node that received the request.

// PUT /v1/agent/maintenance?enable=true|false&reason=
func (s *Server) agentMaintenance(r *request) {
	enable, ok := r.enableParam()
	if !ok {
		return
	}
	if !r.check(registry.ACLResourceCluster, "", acl.Write) {
		return
	}
	r.maintenance(registry.Maintenance{Scope: registry.MaintNode, Node: s.cluster.NodeName()}, enable)
}

// PUT /v1/agent/service/maintenance/:service_id?enable=true|false&reason=
func (s *Server) serviceMaintenance(r *request) {
	enable, ok := r.enableParam()
	if !ok {
		return
	}
	in, a := s.instanceByID(r.param)
	if a != nil {
		r.fail(a)
		return
	}
	if !r.check(registry.ACLResourceService, in.Service, acl.Write) {
		return
	}
	r.maintenance(registry.Maintenance{Scope: registry.MaintInstance, Service: in.Service, ID: in.ID}, enable)
}

// enableParam is the required ?enable= of the maintenance calls.
func (r *request) enableParam() (bool, bool) {
	v := string(r.ctx.QueryArgs().Peek("enable"))
	if v == "" {
		r.fail(errInvalid("enable", "is required (true or false)"))
		return false, false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(errInvalid("enable", "%q is not true or false", v))
		return false, false
	}
	return b, true
}

func (r *request) maintenance(rec registry.Maintenance, enable bool) {
	if enable {
		rec.Reason = string(r.ctx.QueryArgs().Peek("reason"))
	}
	rec, e := registry.NormalizeMaintenance(rec)
	if e != nil {
		r.fail(&answer{status: fasthttp.StatusBadRequest, code: e.Code, field: e.Field, message: e.Message})
		return
	}
	r.applyEmpty(command.TypeMaintenance, func(m command.Meta) any {
		return &command.Maintenance{Meta: m, Record: rec, Enable: enable}
	})
}
