package consul

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// GET /v1/agent/self: this node as a Consul agent (Config, Member).
func (s *Server) agentSelf(r *request) {
	if !r.check(registry.ACLResourceCluster, "", acl.Read) {
		return
	}
	name := s.cluster.NodeName()
	self := s.self()
	r.json(map[string]any{
		"Config": map[string]any{"Datacenter": s.dc, "PrimaryDatacenter": s.dc, "NodeName": name, "NodeID": "",
			"Server": true, "Revision": "", "Version": s.version, "Product": "nexus"},
		"Member": map[string]any{"Name": name, "Addr": self.Addr, "Port": self.Port, "Tags": map[string]string{"dc": s.dc},
			"Status": 1, "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2, "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4},
		"Meta":  map[string]string{},
		"Stats": map[string]any{},
		"Coord": nil,
	})
}

// self is this node's member entry.
func (s *Server) self() Member {
	name := s.cluster.NodeName()
	for _, m := range s.cluster.Members() {
		if m.Name == name {
			return m
		}
	}
	return Member{Name: name}
}

// serviceDefinition is the body of PUT /v1/agent/service/register, the
// fields Nexus maps (others must be absent or zero: fieldsOK).
type serviceDefinition struct {
	ID      string
	Name    string
	Tags    []string
	Port    int
	Address string
	Meta    map[string]string
	Weights *weights
	Check   *checkDefinitionIn
	Checks  []*checkDefinitionIn
}

// checkDefinitionIn is a check of a service definition.
type checkDefinitionIn struct {
	CheckID                        string
	Name                           string
	TTL                            string
	HTTP                           string
	TCP                            string
	Interval                       string
	Timeout                        string
	Status                         string
	DeregisterCriticalServiceAfter string
	Method                         string
}

// Fields of the definitions that Nexus maps; any other must be absent or
// zero (a Consul feature Nexus does not have: refused, naming it).
var (
	serviceFields = []string{"id", "name", "tags", "port", "address", "meta", "weights", "check", "checks",
		"namespace", "partition"}
	checkFields = []string{"checkid", "name", "ttl", "http", "tcp", "interval", "timeout", "status",
		"deregistercriticalserviceafter", "method"}
)

// fieldsOK refuses a JSON object with a non-zero field outside known
// (case-insensitive, as Consul's decoder).
func fieldsOK(prefix string, raw json.RawMessage, known []string) *answer {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil // the typed decode reports it
	}
	var bad []string
	for k, v := range m {
		if !slices.Contains(known, strings.ToLower(k)) && !zeroJSON(v) {
			bad = append(bad, prefix+k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return errInvalid(bad[0], "%s not supported by Nexus (docs/consul-compat.md)", strings.Join(bad, ", "))
}

// onlyDefault refuses a namespace or partition other than default.
func onlyDefault(k string, v json.RawMessage) *answer {
	var str string
	if json.Unmarshal(v, &str) == nil && str != "" && str != "default" {
		return errInvalid(k, "%q: Nexus has only the default %s", str, strings.ToLower(k))
	}
	return nil
}

func zeroJSON(v json.RawMessage) bool {
	switch string(bytes.TrimSpace(v)) {
	case "null", `""`, "0", "false", "[]", "{}":
		return true
	}
	return false
}

// fieldNames maps the registry's field names to Consul's.
var fieldNames = map[string]string{
	"name": "Name", "type": "Name", "address": "Address", "port": "Port", "id": "ID", "tags": "Tags", "metadata": "Meta",
	"check": "Check", "check.ttl": "Check.TTL", "check.http": "Check.HTTP", "check.tcp": "Check.TCP",
	"check.interval": "Check.Interval", "check.timeout": "Check.Timeout",
	"deregister_critical_after": "Check.DeregisterCriticalServiceAfter",
}

// PUT /v1/agent/service/register: registers (or replaces) an instance
// owned by this node.
func (s *Server) registerService(r *request) {
	body := r.ctx.PostBody()
	var def serviceDefinition
	if err := json.Unmarshal(body, &def); err != nil {
		r.fail(&answer{status: fasthttp.StatusBadRequest, code: "invalid_json", message: "request body: " + err.Error()})
		return
	}
	if a := s.unsupportedService(body); a != nil {
		s.m.unsupported.WithLabelValues("field").Inc()
		r.fail(a)
		return
	}
	in, a := s.instanceOf(&def)
	if a != nil {
		r.fail(a)
		return
	}
	if !r.check(registry.ACLResourceService, in.Service, acl.Write) {
		return
	}
	r.applyEmpty(command.TypeRegisterInstance, func(m command.Meta) any {
		return &command.RegisterInstance{Meta: m, Instance: in}
	})
}

// applyEmpty commits a command and answers 200 with an empty body, as
// Consul's agent endpoints do.
func (r *request) applyEmpty(t command.Type, build func(command.Meta) any) {
	if err := r.apply(t, build); err != nil {
		r.fail(err)
		return
	}
	r.ctx.SetStatusCode(fasthttp.StatusOK)
}

// unsupportedService refuses fields of the definition and its checks that
// Nexus does not map, and values of mapped ones it cannot keep.
func (s *Server) unsupportedService(body []byte) *answer {
	if a := fieldsOK("", body, serviceFields); a != nil {
		return a
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(body, &m)
	for k, v := range m {
		switch strings.ToLower(k) {
		case "check":
			if a := fieldsOK(k+".", v, checkFields); a != nil {
				return a
			}
		case "checks":
			var list []json.RawMessage
			_ = json.Unmarshal(v, &list)
			for i, c := range list {
				if a := fieldsOK(fmt.Sprintf("%s[%d].", k, i), c, checkFields); a != nil {
					return a
				}
			}
		case "namespace", "partition":
			if a := onlyDefault(k, v); a != nil {
				return a
			}
		}
	}
	return nil
}

// instanceOf validates a definition and maps it onto an instance owned by
// this node. Its type is the service's when it exists, else its name.
func (s *Server) instanceOf(def *serviceDefinition) (registry.Instance, *answer) {
	checks := def.Checks
	if def.Check != nil {
		checks = append([]*checkDefinitionIn{def.Check}, checks...)
	}
	checks = slices.DeleteFunc(checks, func(c *checkDefinitionIn) bool { return c == nil })
	if len(checks) > 1 {
		return registry.Instance{}, errInvalid("Checks", "%d checks: Nexus keeps one check per service instance (docs/consul-compat.md)", len(checks))
	}
	id := def.ID
	if id == "" {
		id = def.Name
	}
	addr := def.Address
	if addr == "" {
		addr = s.self().Addr
	}
	typ := def.Name
	_ = s.native.Read(false, false, 0, 0, func(tx *registry.Tx, _ memdb.WatchSet) uint64 {
		if svc := tx.Service(nil, def.Name); svc != nil {
			typ = svc.Type
		}
		return 0
	})
	req := registry.RegisterRequest{Name: def.Name, Type: typ, Address: addr, Port: def.Port, ID: id,
		Tags: def.Tags, Metadata: def.Meta}
	var c *checkDefinitionIn
	if len(checks) == 1 {
		c = checks[0]
		if want := checkID(id, 0, 1); c.CheckID != "" && c.CheckID != want {
			return registry.Instance{}, errInvalid("Check.CheckID", "%q: Nexus names a service's check %q", c.CheckID, want)
		}
		if c.Method != "" && !strings.EqualFold(c.Method, fasthttp.MethodGet) {
			return registry.Instance{}, errInvalid("Check.Method", "%q: Nexus HTTP checks use GET", c.Method)
		}
		req.Check = &registry.CheckRequest{TTL: c.TTL, HTTP: c.HTTP, TCP: c.TCP, Interval: c.Interval, Timeout: c.Timeout}
		req.DeregisterCriticalAfter = c.DeregisterCriticalServiceAfter
	}
	in, e := req.Instance(s.cluster.NodeName())
	if e != nil {
		field := e.Field
		if f, ok := fieldNames[field]; ok {
			field = f
		}
		msg := strings.TrimPrefix(e.Message, e.Field+": ")
		return in, &answer{status: fasthttp.StatusBadRequest, code: e.Code, field: field, message: field + ": " + msg}
	}
	if w := def.Weights; w != nil {
		if w.Passing < 1 || w.Warning < 0 {
			return in, errInvalid("Weights", "Passing must be at least 1 and Warning at least 0")
		}
		in.Weights = &registry.Weights{Passing: w.Passing, Warning: w.Warning}
	}
	if c != nil {
		in.Checks[0].Name = c.Name
		switch c.Status {
		case "":
		case registry.StatusPassing, registry.StatusWarning, registry.StatusCritical:
			// The check's first status, as Consul's Status field.
			in.Checks[0].Status, in.Checks[0].Output, in.Status = c.Status, "", c.Status
		default:
			return in, errInvalid("Check.Status", "%q must be passing, warning or critical", c.Status)
		}
	}
	return in, nil
}

// PUT /v1/agent/service/deregister/:id
func (s *Server) deregisterService(r *request) {
	in, a := s.instanceByID(r.param)
	if a != nil {
		r.fail(a)
		return
	}
	if !r.check(registry.ACLResourceService, in.Service, acl.Write) {
		return
	}
	r.applyEmpty(command.TypeDeregisterInstance, func(m command.Meta) any {
		return &command.DeregisterInstance{Meta: m, Service: in.Service, ID: in.ID}
	})
}

// instanceByID finds the instance a Consul service id names: ids are
// unique within a service only, so one owned by this node wins, then the
// only one.
func (s *Server) instanceByID(id string) (registry.Instance, *answer) {
	if id == "" {
		return registry.Instance{}, errInvalid("id", "is required")
	}
	var found []registry.Instance
	_ = s.native.Read(false, false, 0, 0, func(tx *registry.Tx, _ memdb.WatchSet) uint64 {
		found = tx.InstancesByID(nil, id)
		return 0
	})
	self := s.cluster.NodeName()
	var owned []registry.Instance
	for _, in := range found {
		if in.Node == self {
			owned = append(owned, in)
		}
	}
	switch {
	case len(owned) == 1:
		return owned[0], nil
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0:
		return registry.Instance{}, errNotFound(fmt.Sprintf("unknown service ID %q", id))
	}
	names := make([]string, len(found))
	for i := range found {
		names[i] = found[i].Service
	}
	return registry.Instance{}, &answer{status: fasthttp.StatusConflict, code: registry.CodeConflict,
		message: fmt.Sprintf("service ID %q is ambiguous: services %s have it; use DELETE /services/{name}/instances/{id}", id, strings.Join(names, ", "))}
}

// PUT /v1/agent/check/pass/:check_id?note=
func (s *Server) checkPass(r *request) {
	s.updateCheck(r, registry.StatusPassing, string(r.ctx.QueryArgs().Peek("note")))
}

// PUT /v1/agent/check/warn/:check_id?note=
func (s *Server) checkWarn(r *request) {
	s.updateCheck(r, registry.StatusWarning, string(r.ctx.QueryArgs().Peek("note")))
}

// PUT /v1/agent/check/fail/:check_id?note=
func (s *Server) checkFail(r *request) {
	s.updateCheck(r, registry.StatusCritical, string(r.ctx.QueryArgs().Peek("note")))
}

// PUT /v1/agent/check/update/:check_id body {"Status","Output"}
func (s *Server) checkUpdate(r *request) {
	var body struct {
		Status string
		Output string
	}
	if err := json.Unmarshal(r.ctx.PostBody(), &body); err != nil {
		r.fail(&answer{status: fasthttp.StatusBadRequest, code: "invalid_json", message: "request body: " + err.Error()})
		return
	}
	switch body.Status {
	case registry.StatusPassing, registry.StatusWarning, registry.StatusCritical:
	default:
		r.fail(errInvalid("Status", "%q must be passing, warning or critical", body.Status))
		return
	}
	s.updateCheck(r, body.Status, body.Output)
}

// updateCheck sets a TTL check's status on the node that owns it.
func (s *Server) updateCheck(r *request, status, output string) {
	in, a := s.instanceOfCheck(r.param)
	if a != nil {
		r.fail(a)
		return
	}
	if !r.check(registry.ACLResourceService, in.Service, acl.Write) {
		return
	}
	got, err := s.native.Heartbeat(r.id, r.cred, in.Service, in.ID, status, output)
	if err != nil {
		r.fail(err)
		return
	}
	r.index = got.ModifyIndex
	r.ctx.SetStatusCode(fasthttp.StatusOK)
}

// instanceOfCheck finds the instance of a check id service:<id> (or
// service:<id>:<n> of an instance with several checks).
func (s *Server) instanceOfCheck(checkIDArg string) (registry.Instance, *answer) {
	rest, ok := strings.CutPrefix(checkIDArg, "service:")
	if !ok || rest == "" {
		return registry.Instance{}, errNotFound(fmt.Sprintf("unknown check ID %q: Nexus checks are service:SERVICE_ID", checkIDArg))
	}
	in, a := s.instanceByID(rest)
	if a == nil && len(in.Checks) <= 1 {
		return in, nil
	}
	if a != nil && a.status != fasthttp.StatusNotFound {
		return in, a
	}
	if i := strings.LastIndexByte(rest, ':'); i > 0 {
		if cand, ca := s.instanceByID(rest[:i]); ca == nil {
			for n := range cand.Checks {
				if checkID(cand.ID, n, len(cand.Checks)) == checkIDArg {
					return cand, nil
				}
			}
		}
	}
	return registry.Instance{}, errNotFound(fmt.Sprintf("unknown check ID %q", checkIDArg))
}
