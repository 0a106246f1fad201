// Package consul serves the Consul-compatible HTTP API under /v1/ of the
// admin listener, so that tools wired to Consul (the Go client
// github.com/hashicorp/consul/api, Prometheus consul_sd_configs,
// consul-template, Traefik's consulcatalog) work against Nexus unchanged.
//
// It is a mapping and keeps no state of its own: reads come from the
// node's replica of the registry, configuration store and sessions, writes
// are the native commands (fsm/command: Consul sessions are Nexus sessions,
// acquire, release and /v1/txn native transactions) committed through the
// admin API's own write path, with the caller's identity in the audit
// record and the same ACL checks (Native, implemented by *api.Server). Consul's shapes, status
// codes, headers and blocking queries are reproduced field for field for
// the endpoints it covers (docs/consul-compat.md); any other endpoint or
// parameter is answered 404/400 naming it, never with a different
// behaviour.
package consul

import (
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Native is the admin API's machinery the mapping uses (*api.Server).
// Errors carry their answer: StatusCode() and ErrorCode() (answerError).
type Native interface {
	// Authenticate resolves the caller presenting cred ("" is anonymous);
	// a nil Authorizer means ACLs are off.
	Authenticate(ctx *fasthttp.RequestCtx, cred string) (acl.Identity, *acl.Authorizer, error)
	// Check refuses (401/403) an access the caller lacks.
	Check(id acl.Identity, authz *acl.Authorizer, resource, name string, level acl.Access) error
	// CheckList refuses (401) an anonymous list the caller cannot read at all.
	CheckList(id acl.Identity, authz *acl.Authorizer, resource string) error
	// ApplyAs commits a command for the caller.
	ApplyAs(id acl.Identity, requestID string, t command.Type, build func(command.Meta) any) (*command.Result, error)
	// SessionNode refuses (400) a node a session cannot be tied to.
	SessionNode(node string) error
	// Heartbeat refreshes a TTL check on the instance's owner node.
	Heartbeat(requestID, cred, service, id, status, output string) (*registry.Instance, error)
	// Read runs fn on the replica, blocking while its index is at most
	// minIndex (when blocking) up to wait.
	Read(consistent, blocking bool, minIndex uint64, wait time.Duration, fn func(tx *registry.Tx, ws memdb.WatchSet) uint64) error
	// WriteError answers an error in the admin API's shape {"error":{...}}.
	WriteError(ctx *fasthttp.RequestCtx, err error)
}

// Member is one node of the cluster as the Consul API shows it.
type Member struct {
	Name string
	// Addr is the node's address (IP) and Port its gossip port.
	Addr string
	Port int
	// Status is alive, suspect, failed or left.
	Status string
}

// Cluster is what the mapping needs to know about the cluster.
type Cluster interface {
	NodeName() string
	// Contact reports whether a leader is known and how long ago this
	// node heard from it (X-Consul-KnownLeader, X-Consul-LastContact).
	Contact() (knownLeader bool, lastContact time.Duration)
	// LeaderRaftAddr is the leader's Raft address, "" when none is known.
	LeaderRaftAddr() string
	// RaftPeers are the Raft addresses of the voters.
	RaftPeers() []string
	// Members are the cluster's nodes, this one included.
	Members() []Member
}

// Deps wires the mapping.
type Deps struct {
	Native  Native
	Cluster Cluster
	// Datacenter is the cluster's datacenter name (--datacenter); a request
	// naming another answers 400.
	Datacenter string
	Version    string
	Logger     *slog.Logger
	Registry   prometheus.Registerer
}

// Server answers /v1/ requests; it implements api.Mounted.
type Server struct {
	native  Native
	cluster Cluster
	dc      string
	version string
	log     *slog.Logger
	m       *metrics
	routes  []route
}

// New builds the mapping.
func New(deps Deps) (*Server, error) {
	s := &Server{native: deps.Native, cluster: deps.Cluster, dc: deps.Datacenter, version: deps.Version, log: deps.Logger}
	if s.dc == "" {
		s.dc = "dc1"
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s.m = m
	s.routes = s.table()
	return s, nil
}

// route is one endpoint: a path of literal segments, then optionally one
// parameter (the rest of the path: a key, a name, an id).
type route struct {
	prefix  string // after /v1/, e.g. "kv/" or "agent/self"
	param   bool   // prefix is followed by a parameter
	pattern string // metrics label, e.g. "/v1/kv/{key}"
	methods map[string]handler
	// params are the query parameters it takes beside the common ones.
	params []string
}

type handler func(r *request)

func (s *Server) table() []route {
	get := func(h handler) map[string]handler { return map[string]handler{fasthttp.MethodGet: h} }
	put := func(h handler) map[string]handler { return map[string]handler{fasthttp.MethodPut: h} }
	blocking := []string{"index", "wait", "stale", "consistent", "cached"}
	return []route{
		{prefix: "agent/self", pattern: "/v1/agent/self", methods: get(s.agentSelf)},
		{prefix: "agent/service/register", pattern: "/v1/agent/service/register", methods: put(s.registerService),
			params: []string{"replace-existing-checks"}},
		{prefix: "agent/service/deregister/", param: true, pattern: "/v1/agent/service/deregister/{id}", methods: put(s.deregisterService)},
		{prefix: "agent/maintenance", pattern: "/v1/agent/maintenance", methods: put(s.agentMaintenance), params: []string{"enable", "reason"}},
		{prefix: "agent/service/maintenance/", param: true, pattern: "/v1/agent/service/maintenance/{id}", methods: put(s.serviceMaintenance),
			params: []string{"enable", "reason"}},
		{prefix: "agent/check/pass/", param: true, pattern: "/v1/agent/check/pass/{id}", methods: put(s.checkPass), params: []string{"note"}},
		{prefix: "agent/check/warn/", param: true, pattern: "/v1/agent/check/warn/{id}", methods: put(s.checkWarn), params: []string{"note"}},
		{prefix: "agent/check/fail/", param: true, pattern: "/v1/agent/check/fail/{id}", methods: put(s.checkFail), params: []string{"note"}},
		{prefix: "agent/check/update/", param: true, pattern: "/v1/agent/check/update/{id}", methods: put(s.checkUpdate)},
		{prefix: "catalog/services", pattern: "/v1/catalog/services", methods: get(s.catalogServices), params: blocking},
		{prefix: "catalog/service/", param: true, pattern: "/v1/catalog/service/{name}", methods: get(s.catalogService),
			params: append([]string{"tag"}, blocking...)},
		{prefix: "catalog/nodes", pattern: "/v1/catalog/nodes", methods: get(s.catalogNodes), params: blocking},
		{prefix: "catalog/datacenters", pattern: "/v1/catalog/datacenters", methods: get(s.catalogDatacenters)},
		{prefix: "health/service/", param: true, pattern: "/v1/health/service/{name}", methods: get(s.healthService),
			params: append([]string{"tag", "passing"}, blocking...)},
		{prefix: "health/checks/", param: true, pattern: "/v1/health/checks/{name}", methods: get(s.healthChecks), params: blocking},
		{prefix: "health/state/", param: true, pattern: "/v1/health/state/{state}", methods: get(s.healthState), params: blocking},
		{prefix: "kv/", param: true, pattern: "/v1/kv/{key}", methods: map[string]handler{
			fasthttp.MethodGet: s.kvGet, fasthttp.MethodPut: s.kvPut, fasthttp.MethodDelete: s.kvDelete},
			params: append([]string{"recurse", "keys", "separator", "raw", "cas", "flags", "acquire", "release"}, blocking...)},
		{prefix: "session/create", pattern: "/v1/session/create", methods: put(s.sessionCreate)},
		{prefix: "session/destroy/", param: true, pattern: "/v1/session/destroy/{uuid}", methods: put(s.sessionDestroy)},
		{prefix: "session/renew/", param: true, pattern: "/v1/session/renew/{uuid}", methods: put(s.sessionRenew)},
		{prefix: "session/info/", param: true, pattern: "/v1/session/info/{uuid}", methods: get(s.sessionInfo), params: blocking},
		{prefix: "session/list", pattern: "/v1/session/list", methods: get(s.sessionList), params: blocking},
		{prefix: "session/node/", param: true, pattern: "/v1/session/node/{node}", methods: get(s.sessionNodeList), params: blocking},
		{prefix: "txn", pattern: "/v1/txn", methods: put(s.txn), params: []string{"consistent"}},
		{prefix: "status/leader", pattern: "/v1/status/leader", methods: get(s.statusLeader)},
		{prefix: "status/peers", pattern: "/v1/status/peers", methods: get(s.statusPeers)},
	}
}

// match finds the route of a path after /v1/ and its raw parameter.
func (s *Server) match(rest string) (*route, string) {
	for i := range s.routes {
		rt := &s.routes[i]
		if rt.param {
			if p, ok := strings.CutPrefix(rest, rt.prefix); ok {
				return rt, p
			}
		} else if rest == rt.prefix {
			return rt, ""
		}
	}
	return nil, ""
}

// ServeMounted answers one /v1/ request (api.Mounted).
func (s *Server) ServeMounted(ctx *fasthttp.RequestCtx, requestID string) (string, uint64) {
	r := &request{s: s, ctx: ctx, id: requestID, route: "/v1/unmatched"}
	s.serve(r)
	s.finish(r)
	return r.route, r.index
}

func (s *Server) serve(r *request) {
	raw := string(r.ctx.URI().PathOriginal())
	rest, _ := strings.CutPrefix(raw, "/v1/")
	rt, param := s.match(rest)
	method := string(r.ctx.Method())
	if rt == nil {
		s.m.unsupported.WithLabelValues("endpoint").Inc()
		r.fail(errNotFound("unsupported Consul endpoint: " + method + " " + raw + " (docs/consul-compat.md lists what Nexus serves)"))
		return
	}
	r.route = rt.pattern
	h := rt.methods[method]
	if h == nil {
		allow := make([]string, 0, len(rt.methods))
		for _, m := range []string{fasthttp.MethodGet, fasthttp.MethodPut, fasthttp.MethodDelete} {
			if rt.methods[m] != nil {
				allow = append(allow, m)
			}
		}
		r.ctx.Response.Header.Set("Allow", strings.Join(allow, ", "))
		r.fail(&answer{status: fasthttp.StatusMethodNotAllowed, code: "method_not_allowed",
			message: "method " + method + " is not allowed on " + rt.pattern + "; allowed: " + strings.Join(allow, ", ")})
		return
	}
	p, err := url.PathUnescape(param)
	if err != nil {
		r.fail(errInvalid("path", "invalid URL escape in %q", param))
		return
	}
	r.param = p
	if e := s.parseQuery(r, rt); e != nil {
		s.m.unsupported.WithLabelValues("param").Inc()
		r.fail(e)
		return
	}
	r.cred = credential(r.ctx)
	id, authz, aerr := s.native.Authenticate(r.ctx, r.cred)
	if aerr != nil {
		r.fail(aerr)
		return
	}
	r.ident, r.authz = id, authz
	h(r)
}
