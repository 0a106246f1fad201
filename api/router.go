package api

import (
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/ui"
)

// endpoint is one path pattern and its handler per method.
type endpoint struct {
	pattern                string
	get, post, put, delete handlerFunc
	allow                  string
	// maxBody, when set, is this endpoint's request body limit instead of
	// the server's (PUT /cluster/snapshot; see headerReceived).
	maxBody int
}

func (e *endpoint) handler(method []byte) handlerFunc {
	switch string(method) {
	case fasthttp.MethodGet:
		return e.get
	case fasthttp.MethodPost:
		return e.post
	case fasthttp.MethodPut:
		return e.put
	case fasthttp.MethodDelete:
		return e.delete
	}
	return nil
}

func (e *endpoint) computeAllow() {
	var m []string
	if e.get != nil {
		m = append(m, fasthttp.MethodGet)
	}
	if e.post != nil {
		m = append(m, fasthttp.MethodPost)
	}
	if e.put != nil {
		m = append(m, fasthttp.MethodPut)
	}
	if e.delete != nil {
		m = append(m, fasthttp.MethodDelete)
	}
	e.allow = strings.Join(m, ", ")
}

// endpoints is the routing table, built once in New.
type endpoints struct {
	health, ready, status, metrics             endpoint
	services, register, service, serviceHealth endpoint
	instance, heartbeat, discover              endpoint
	configList, configKey                      endpoint
	routes, route                              endpoint
	members, leader, raft, leave               endpoint
	peers, snapshot                            endpoint
	audit, auditSettings                       endpoint
	aclBootstrap, aclLogin, aclSelf            endpoint
	aclPolicies, aclPolicy, aclRoles, aclRole  endpoint
	aclTokens, aclToken                        endpoint
	debug                                      endpoint // served before the table (debug.go)
	sessions, session, sessionRenew, txn       endpoint
	maintenance, maintNode, maintService       endpoint
	maintInstance                              endpoint
	// keyring is served before the table (keyring.go); here for its access.
	keyring endpoint
	// v1 is the API mounted under /v1/ (MountV1); no handlers until then.
	v1  endpoint
	all []*endpoint
	// ui is the web console (GET /ui/..., / redirects there): static
	// files served before routing, open without a token.
	ui *ui.Handler
}

func (s *Server) buildEndpoints() endpoints {
	e := endpoints{
		health:        endpoint{pattern: "/health", get: s.getHealth},
		ready:         endpoint{pattern: "/ready", get: s.getReady},
		status:        endpoint{pattern: "/status", get: s.getStatus},
		metrics:       endpoint{pattern: "/metrics", get: s.getMetrics},
		services:      endpoint{pattern: "/services", get: s.listServices},
		register:      endpoint{pattern: "/services/register", post: s.registerInstance, get: s.getService, delete: s.deregisterService},
		service:       endpoint{pattern: "/services/{name}", get: s.getService, delete: s.deregisterService},
		serviceHealth: endpoint{pattern: "/services/{name}/health", get: s.getServiceHealth},
		instance:      endpoint{pattern: "/services/{name}/instances/{id}", delete: s.deregisterInstance},
		heartbeat:     endpoint{pattern: "/services/{name}/instances/{id}/heartbeat", put: s.heartbeat},
		discover:      endpoint{pattern: "/discover/{type}", get: s.discover},
		configList:    endpoint{pattern: "/config", get: s.listConfig, post: s.postConfig},
		configKey:     endpoint{pattern: "/config/{key}", get: s.getConfig, put: s.putConfig, delete: s.deleteConfig},
		routes:        endpoint{pattern: "/gateway/routes", get: s.listRoutes, post: s.createRoute},
		route:         endpoint{pattern: "/gateway/routes/{id}", get: s.getRoute, put: s.putRoute, delete: s.deleteRoute},
		members:       endpoint{pattern: "/cluster/members", get: s.getMembers},
		leader:        endpoint{pattern: "/cluster/leader", get: s.getLeader},
		raft:          endpoint{pattern: "/cluster/raft", get: s.getRaft},
		leave:         endpoint{pattern: "/cluster/leave", post: s.postLeave},
		peers:         endpoint{pattern: "/cluster/peers/{node}", delete: s.deletePeer},
		snapshot:      endpoint{pattern: "/cluster/snapshot", get: s.getSnapshot, put: s.putSnapshot, maxBody: max(MaxSnapshotBytes, s.maxBody)},
		audit:         endpoint{pattern: "/audit", get: s.listAudit},
		auditSettings: endpoint{pattern: "/audit/settings", get: s.getAuditSettings, put: s.putAuditSettings},
		aclBootstrap:  endpoint{pattern: "/acl/bootstrap", post: s.aclBootstrap},
		aclLogin:      endpoint{pattern: "/acl/login", post: s.aclLogin},
		aclSelf:       endpoint{pattern: "/acl/token/self", get: s.aclSelf},
		aclPolicies:   endpoint{pattern: "/acl/policies", get: s.listPolicies, post: s.postPolicy},
		aclPolicy:     endpoint{pattern: "/acl/policies/{name}", get: s.getPolicy, put: s.putPolicy, delete: s.deletePolicy},
		aclRoles:      endpoint{pattern: "/acl/roles", get: s.listRoles, post: s.postRole},
		aclRole:       endpoint{pattern: "/acl/roles/{name}", get: s.getRole, put: s.putRole, delete: s.deleteRole},
		aclTokens:     endpoint{pattern: "/acl/tokens", get: s.listTokens, post: s.postToken},
		aclToken:      endpoint{pattern: "/acl/tokens/{accessor_id}", get: s.getToken, put: s.putToken, delete: s.deleteToken},
		keyring:       endpoint{pattern: pathOperatorKeyring},
		debug:         endpoint{pattern: pathDebugPprof},
		sessions:      endpoint{pattern: "/sessions", get: s.listSessions, post: s.createSession},
		session:       endpoint{pattern: "/sessions/{id}", get: s.getSession, delete: s.destroySession},
		sessionRenew:  endpoint{pattern: "/sessions/{id}/renew", put: s.renewSession},
		txn:           endpoint{pattern: "/txn", post: s.postTxn},
		maintenance:   endpoint{pattern: "/maintenance", get: s.listMaintenance},
		maintNode:     s.maintenanceEndpoint("/maintenance/nodes/{node}", maintNode),
		maintService:  s.maintenanceEndpoint("/maintenance/services/{name}", maintService),
		maintInstance: s.maintenanceEndpoint("/maintenance/services/{name}/instances/{id}", maintInstance),
		v1:            endpoint{pattern: "/v1/"},
		ui:            ui.New(),
	}
	e.all = []*endpoint{&e.health, &e.ready, &e.status, &e.metrics, &e.services, &e.register, &e.service,
		&e.serviceHealth, &e.instance, &e.heartbeat, &e.discover, &e.configList, &e.configKey, &e.routes,
		&e.route, &e.members, &e.leader, &e.raft, &e.leave, &e.audit, &e.auditSettings}
	e.all = append(e.all, &e.peers, &e.snapshot, &e.aclBootstrap, &e.aclLogin, &e.aclSelf,
		&e.aclPolicies, &e.aclPolicy, &e.aclRoles, &e.aclRole, &e.aclTokens, &e.aclToken)
	e.all = append(e.all, &e.sessions, &e.session, &e.sessionRenew, &e.txn)
	e.all = append(e.all, &e.maintenance, &e.maintNode, &e.maintService, &e.maintInstance)
	for _, ep := range e.all {
		ep.computeAllow()
	}
	return e
}

// pathParams are the unescaped parameters of a matched path.
type pathParams struct{ name, instance, key string }

// route matches the raw (still escaped) request path against the table.
// It returns nil for an unknown path, or an error for a bad escape.
func (s *Server) route(ctx *fasthttp.RequestCtx) (*endpoint, pathParams, *apiError) {
	var p pathParams
	raw := string(ctx.URI().PathOriginal())
	if raw == "" || raw[0] != '/' {
		return nil, p, nil
	}
	rest := raw[1:]
	first, tail, _ := strings.Cut(rest, "/")
	e := &s.eps
	switch first {
	case "health", "ready", "status", "metrics":
		if tail != "" || strings.HasSuffix(rest, "/") {
			return nil, p, nil
		}
		switch first {
		case "health":
			return &e.health, p, nil
		case "ready":
			return &e.ready, p, nil
		case "status":
			return &e.status, p, nil
		default:
			return &e.metrics, p, nil
		}
	case "config":
		if rest == "config" {
			return &e.configList, p, nil
		}
		key, err := url.PathUnescape(tail)
		if err != nil {
			return &e.configKey, p, badEscape()
		}
		p.key = key
		return &e.configKey, p, nil
	case "v1":
		if e.v1.get != nil {
			return &e.v1, p, nil // the mounted API routes the rest itself
		}
	}

	segs := strings.Split(rest, "/")
	for i, sg := range segs {
		if sg == "" {
			return nil, p, nil
		}
		if strings.IndexByte(sg, '%') >= 0 {
			u, err := url.PathUnescape(sg)
			if err != nil {
				return nil, p, badEscape()
			}
			segs[i] = u
		}
	}
	switch segs[0] {
	case "services":
		switch {
		case len(segs) == 1:
			return &e.services, p, nil
		case len(segs) == 2:
			p.name = segs[1]
			if segs[1] == "register" {
				return &e.register, p, nil
			}
			return &e.service, p, nil
		case len(segs) == 3 && segs[2] == "health":
			p.name = segs[1]
			return &e.serviceHealth, p, nil
		case len(segs) == 4 && segs[2] == "instances":
			p.name, p.instance = segs[1], segs[3]
			return &e.instance, p, nil
		case len(segs) == 5 && segs[2] == "instances" && segs[4] == "heartbeat":
			p.name, p.instance = segs[1], segs[3]
			return &e.heartbeat, p, nil
		}
	case "discover":
		if len(segs) == 2 {
			p.name = segs[1]
			return &e.discover, p, nil
		}
	case "gateway":
		if len(segs) >= 2 && segs[1] == "routes" {
			switch len(segs) {
			case 2:
				return &e.routes, p, nil
			case 3:
				p.name = segs[2]
				return &e.route, p, nil
			}
		}
	case "cluster":
		if len(segs) == 2 {
			switch segs[1] {
			case "members":
				return &e.members, p, nil
			case "leader":
				return &e.leader, p, nil
			case "raft":
				return &e.raft, p, nil
			case "leave":
				return &e.leave, p, nil
			case "snapshot":
				return &e.snapshot, p, nil
			}
		}
		if len(segs) == 3 && segs[1] == "peers" {
			p.name = segs[2]
			return &e.peers, p, nil
		}
	case "audit":
		switch {
		case len(segs) == 1:
			return &e.audit, p, nil
		case len(segs) == 2 && segs[1] == "settings":
			return &e.auditSettings, p, nil
		}
	case "acl":
		return s.routeACL(segs, p)
	case "sessions":
		return s.routeSessions(segs, p)
	case "maintenance":
		return s.routeMaintenance(segs, p)
	case "txn":
		if len(segs) == 1 {
			return &s.eps.txn, p, nil
		}
	}
	return nil, p, nil
}

func badEscape() *apiError {
	return &apiError{status: fasthttp.StatusBadRequest, code: "invalid", message: "path: invalid URL escape", field: "path"}
}

// dispatch routes a request to its handler.
func (s *Server) dispatch(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if s.eps.ui.Serve(ctx) {
		rc.route = ui.Prefix
		return
	}
	ep, p, perr := s.route(ctx)
	if ep == nil {
		if perr != nil {
			writeError(ctx, perr)
			return
		}
		writeError(ctx, errNotFound("no such endpoint: "+string(ctx.Method())+" "+string(ctx.Path())))
		return
	}
	rc.route = ep.pattern
	h := ep.handler(ctx.Method())
	if h == nil {
		ctx.Response.Header.Set("Allow", ep.allow)
		writeError(ctx, &apiError{status: fasthttp.StatusMethodNotAllowed, code: "method_not_allowed",
			message: "method " + string(ctx.Method()) + " is not allowed on " + ep.pattern + "; allowed: " + ep.allow})
		return
	}
	if perr != nil {
		writeError(ctx, perr)
		return
	}
	rc.name, rc.instance, rc.key = p.name, p.instance, p.key
	rc.isWrite = !ctx.IsGet() && !ctx.IsHead()
	if e := s.authorizeRequest(ctx, rc, ep); e != nil {
		writeError(ctx, e)
		return
	}
	limit := s.maxBody
	if ep.maxBody > 0 {
		limit = ep.maxBody
	}
	if rc.isWrite && len(ctx.PostBody()) > limit {
		// Serve enforces the limit while reading; this covers Handler()
		// used on its own.
		s.metrics.rejected.WithLabelValues("body_too_large").Inc()
		writeError(ctx, errBodyTooLarge(limit))
		return
	}
	h(ctx, rc)
}

// routeACL matches /acl/... paths.
func (s *Server) routeACL(segs []string, p pathParams) (*endpoint, pathParams, *apiError) {
	e := &s.eps
	switch {
	case len(segs) == 2 && segs[1] == "bootstrap":
		return &e.aclBootstrap, p, nil
	case len(segs) == 2 && segs[1] == "login":
		return &e.aclLogin, p, nil
	case len(segs) == 3 && segs[1] == "token" && segs[2] == "self":
		return &e.aclSelf, p, nil
	case len(segs) == 2 && segs[1] == "policies":
		return &e.aclPolicies, p, nil
	case len(segs) == 3 && segs[1] == "policies":
		p.name = segs[2]
		return &e.aclPolicy, p, nil
	case len(segs) == 2 && segs[1] == "roles":
		return &e.aclRoles, p, nil
	case len(segs) == 3 && segs[1] == "roles":
		p.name = segs[2]
		return &e.aclRole, p, nil
	case len(segs) == 2 && segs[1] == "tokens":
		return &e.aclTokens, p, nil
	case len(segs) == 3 && segs[1] == "tokens":
		p.name = segs[2]
		return &e.aclToken, p, nil
	}
	return nil, p, nil
}
