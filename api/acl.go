package api

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"

	"github.com/nexus/nexus/internal/tokenbucket"
)

// ACLOptions turn on access control (docs/security.md).
type ACLOptions struct {
	Enabled bool
	// MetricsPublic serves /metrics without a token.
	MetricsPublic bool
	// JWT verifies the JWTs callers present and signs POST /acl/login's;
	// nil or not Enabled: only token secrets are accepted.
	JWT *acl.JWTAuth
	// TokenRateLimit, when > 0, limits each token (or JWT subject) to
	// TokenRateLimit requests/s with bursts of TokenRateBurst (default 2 ×).
	TokenRateLimit float64
	TokenRateBurst int
}

// Credential headers.
const (
	HeaderToken         = "X-Nexus-Token"
	headerAuthorization = "Authorization"
	// resolveTimeout bounds asking the leader about a token this node
	// does not know yet.
	resolveTimeout = 3 * time.Second
)

// Error codes of access control.
const (
	CodeUnauthenticated  = fsm.CodeUnauthenticated
	CodePermissionDenied = fsm.CodePermissionDenied
	CodeACLDisabled      = "acl_disabled"
)

// aclState is the compiled ACLOptions and their metrics.
type aclState struct {
	opts      ACLOptions
	limiter   *tokenbucket.Limiter
	decisions *prometheus.CounterVec
	resolves  *prometheus.CounterVec
}

func newACLState(o ACLOptions, reg prometheus.Registerer) (*aclState, error) {
	st := &aclState{
		opts: o,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_acl_decisions_total",
			Help: "Admin API access decisions: allowed, denied (403), unauthenticated (401), rate_limited.",
		}, []string{"result"}),
		resolves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_acl_token_resolutions_total",
			Help: "Token secrets unknown to this node's replica, resolved through the leader: found, unknown, failed.",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{st.decisions, st.resolves} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	if o.TokenRateLimit > 0 && !math.IsInf(o.TokenRateLimit, 0) {
		burst := o.TokenRateBurst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(2*o.TokenRateLimit)))
		}
		st.limiter = tokenbucket.New(o.TokenRateLimit, burst, 1<<16)
	}
	return st, nil
}

// accessMode says how an endpoint is protected.
type accessMode uint8

const (
	// modeCheck: one resource, name and access, checked before the handler.
	modeCheck accessMode = iota
	// modeOpen: no credential needed (/health, /ready, /cluster/leader,
	// the bootstrap, node-to-node paths authenticated by the cluster secret).
	modeOpen
	// modeIdentity: a resolved caller is enough here; the handler filters
	// what it answers (lists) or checks names it learns from the body
	// (writes; Apply checks them again).
	modeIdentity
	// modeList: a list filtered to what the caller may read; a caller
	// without a token and without any anonymous right on the kind is told
	// to authenticate (401) rather than shown an empty list.
	modeList
)

type access struct {
	mode     accessMode
	resource string
	name     string
	level    acl.Access
}

func check(resource, name string, level acl.Access) access {
	return access{mode: modeCheck, resource: resource, name: name, level: level}
}

// accessOf maps an endpoint and method to what it needs.
func (s *Server) accessOf(ep *endpoint, method []byte, rc *reqCtx) access {
	e := &s.eps
	level := acl.Read
	if !bytes.Equal(method, []byte(fasthttp.MethodGet)) && !bytes.Equal(method, []byte(fasthttp.MethodHead)) {
		level = acl.Write
	}
	if a, ok := s.sessionAccess(ep, level); ok {
		return a
	}
	if a, ok := s.maintenanceAccess(ep, level, rc); ok {
		return a
	}
	switch ep {
	case &e.health, &e.ready, &e.leader, &e.aclBootstrap:
		return access{mode: modeOpen}
	case &e.metrics:
		if s.acl.opts.MetricsPublic {
			return access{mode: modeOpen}
		}
		return check(registry.ACLResourceCluster, "", acl.Read)
	case &e.status, &e.members, &e.raft, &e.leave, &e.peers, &e.keyring:
		return check(registry.ACLResourceCluster, "", level)
	case &e.debug:
		// Profiles: the operator right, whatever the method.
		return check(registry.ACLResourceCluster, "", acl.Write)
	case &e.snapshot:
		// A snapshot holds every token's hash and restores every ACL.
		return check(registry.ACLResourceACL, "", level)
	case &e.service, &e.serviceHealth, &e.instance, &e.heartbeat:
		return check(registry.ACLResourceService, rc.name, level)
	case &e.register:
		if level == acl.Read || bytes.Equal(method, []byte(fasthttp.MethodDelete)) {
			return check(registry.ACLResourceService, rc.name, level)
		}
		return access{mode: modeIdentity}
	case &e.services, &e.discover:
		return access{mode: modeList, resource: registry.ACLResourceService}
	case &e.configList:
		if level == acl.Write {
			return access{mode: modeIdentity}
		}
		return access{mode: modeList, resource: registry.ACLResourceConfig}
	case &e.configKey:
		return check(registry.ACLResourceConfig, rc.key, level)
	case &e.routes:
		if level == acl.Write {
			return access{mode: modeIdentity}
		}
		return access{mode: modeList, resource: registry.ACLResourceRoute}
	case &e.route:
		return check(registry.ACLResourceRoute, rc.name, level)
	case &e.audit, &e.auditSettings:
		return check(registry.ACLResourceAudit, "", level)
	case &e.aclLogin, &e.aclSelf:
		return access{mode: modeIdentity}
	case &e.aclPolicies, &e.aclPolicy, &e.aclRoles, &e.aclRole, &e.aclTokens, &e.aclToken:
		return check(registry.ACLResourceACL, "", level)
	case &e.v1:
		// The mounted API authenticates and checks each request itself
		// (Authenticate, mount.go).
		return access{mode: modeOpen}
	}
	// Unknown to this table: the strictest answer.
	return check(registry.ACLResourceACL, "", acl.Write)
}

// authorizeRequest resolves the caller and checks the endpoint's access.
// It returns the answer of a refused request, or nil.
func (s *Server) authorizeRequest(ctx *fasthttp.RequestCtx, rc *reqCtx, ep *endpoint) *apiError {
	if !s.acl.opts.Enabled {
		return nil
	}
	a := s.accessOf(ep, ctx.Method(), rc)
	if a.mode == modeOpen {
		return nil
	}
	id, authz, e := s.authenticate(ctx, credential(ctx))
	if e != nil {
		return e
	}
	rc.ident, rc.authz = id, authz
	return s.checkAccess(id, authz, a)
}

// checkAccess checks a (modeCheck, modeList) for a resolved caller and
// counts the decision.
func (s *Server) checkAccess(id acl.Identity, authz *acl.Authorizer, a access) *apiError {
	if a.mode == modeCheck && !authz.Allowed(a.resource, a.name, a.level) {
		d := acl.Denied(id, a.resource, a.name, a.level)
		if d.Unauthenticated {
			s.acl.decisions.WithLabelValues("unauthenticated").Inc()
		} else {
			s.acl.decisions.WithLabelValues("denied").Inc()
		}
		return denialError(d)
	}
	if a.mode == modeList && id.Kind == acl.Anonymous && !authz.ReadsAny(a.resource) {
		s.acl.decisions.WithLabelValues("unauthenticated").Inc()
		return denialError(acl.Denied(id, a.resource, "", acl.Read))
	}
	s.acl.decisions.WithLabelValues("allowed").Inc()
	return nil
}

// authenticate resolves the caller presenting cred ("" is anonymous) and
// its rights, under the per-token rate limit.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx, cred string) (acl.Identity, *acl.Authorizer, *apiError) {
	id, e := s.identify(cred)
	if e != nil {
		s.acl.decisions.WithLabelValues("unauthenticated").Inc()
		return id, nil, e
	}
	if s.acl.limiter != nil && id.Kind != acl.Anonymous {
		d := s.acl.limiter.Allow([]byte(id.Actor()), s.now().UnixNano())
		if !d.Allowed {
			s.acl.decisions.WithLabelValues("rate_limited").Inc()
			secs := max(1, int64(math.Ceil(d.RetryAfter.Seconds())))
			ctx.Response.Header.Set("Retry-After", strconv.FormatInt(secs, 10))
			return id, nil, &apiError{status: fasthttp.StatusTooManyRequests, code: "rate_limited",
				message: "too many requests for " + id.Actor() + " (acl.token_rate_limit); retry after " + strconv.FormatInt(secs, 10) + "s"}
		}
	}
	tx := s.reader.Store().ReadTxn()
	authz, d := acl.Authorize(tx, id, s.now().UnixNano())
	tx.Abort()
	if d != nil {
		s.acl.decisions.WithLabelValues("unauthenticated").Inc()
		return id, nil, denialError(d)
	}
	return id, authz, nil
}

func denialError(d *acl.Denial) *apiError {
	if d.Unauthenticated {
		return &apiError{status: fasthttp.StatusUnauthorized, code: CodeUnauthenticated, message: d.Message}
	}
	return &apiError{status: fasthttp.StatusForbidden, code: CodePermissionDenied, message: d.Message}
}

// allowedTo is the check of names a handler learns from the body (the
// answer of a refused access, or nil). Apply checks them again.
func (s *Server) allowedTo(rc *reqCtx, resource, name string, level acl.Access) *apiError {
	if rc.authz == nil || rc.authz.Allowed(resource, name, level) {
		return nil
	}
	s.acl.decisions.WithLabelValues("denied").Inc()
	return denialError(acl.Denied(rc.ident, resource, name, level))
}

// canRead filters list answers; true when ACLs are off.
func (rc *reqCtx) canRead(resource, name string) bool {
	return rc.authz == nil || rc.authz.Allowed(resource, name, acl.Read)
}

// credential returns the bearer credential of a request, or "".
func credential(ctx *fasthttp.RequestCtx) string {
	if v := ctx.Request.Header.Peek(HeaderToken); len(v) > 0 {
		return strings.TrimSpace(string(v))
	}
	v := ctx.Request.Header.Peek(headerAuthorization)
	if len(v) > 7 && strings.EqualFold(string(v[:7]), "bearer ") {
		return strings.TrimSpace(string(v[7:]))
	}
	return ""
}

// identify resolves the caller: nobody, a JWT or a token secret. A secret
// this replica does not know is looked up again after catching up with
// the leader (a token created a moment ago elsewhere), before 401.
func (s *Server) identify(cred string) (acl.Identity, *apiError) {
	if cred == "" {
		return acl.Identity{Kind: acl.Anonymous}, nil
	}
	if acl.LooksLikeJWT(cred) {
		return s.identifyJWT(cred)
	}
	hash := acl.HashSecret(cred)
	if id, ok := s.lookupSecret(hash); ok {
		return id, nil
	}
	if s.consistency == nil {
		return acl.Identity{}, unknownToken()
	}
	cctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	err := s.consistency.ConsistentRead(cctx)
	cancel()
	if err != nil {
		s.acl.resolves.WithLabelValues("failed").Inc()
		return acl.Identity{}, errNoLeader("cannot resolve the token: this node does not know it and no leader confirmed: " + err.Error())
	}
	if id, ok := s.lookupSecret(hash); ok {
		s.acl.resolves.WithLabelValues("found").Inc()
		return id, nil
	}
	s.acl.resolves.WithLabelValues("unknown").Inc()
	return acl.Identity{}, unknownToken()
}

func unknownToken() *apiError {
	return &apiError{status: fasthttp.StatusUnauthorized, code: CodeUnauthenticated, message: "unknown or revoked token"}
}

func (s *Server) lookupSecret(hash string) (acl.Identity, bool) {
	tx := s.reader.Store().ReadTxn()
	defer tx.Abort()
	t := tx.ACLTokenBySecretHash(hash)
	if t == nil || t.AccessorID == registry.AnonymousAccessor {
		return acl.Identity{}, false
	}
	return acl.Identity{Kind: acl.Token, Accessor: t.AccessorID, ExpiresAt: t.ExpirationTime}, true
}

func (s *Server) identifyJWT(raw string) (acl.Identity, *apiError) {
	j := s.acl.opts.JWT
	if j == nil || !j.Enabled() {
		return acl.Identity{}, &apiError{status: fasthttp.StatusUnauthorized, code: CodeUnauthenticated,
			message: "JWTs are not accepted: no acl.jwt_secret or public key is configured"}
	}
	claims, err := j.Verify(raw, s.now())
	if err != nil {
		return acl.Identity{}, &apiError{status: fasthttp.StatusUnauthorized, code: CodeUnauthenticated, message: err.Error()}
	}
	exp := claims.ExpiresAt.UnixNano()
	if claims.Accessor != "" {
		// Issued by /acl/login: the token's rights, while the token lives.
		return acl.Identity{Kind: acl.Token, Accessor: claims.Accessor, Subject: claims.Subject, ExpiresAt: exp}, nil
	}
	return acl.Identity{Kind: acl.External, Subject: claims.Subject, Roles: claims.Roles, ExpiresAt: exp}, nil
}

// authOf is the caller as a write carries it for Apply's check.
func (s *Server) authOf(rc *reqCtx) *command.Auth {
	if !s.acl.opts.Enabled {
		return nil
	}
	id := rc.ident
	return &command.Auth{Enforce: true, Kind: uint8(id.Kind), Accessor: id.Accessor, Subject: id.Subject,
		Roles: id.Roles, Expires: id.ExpiresAt}
}

// ---- the /acl endpoints ----

func (s *Server) aclEnabled(ctx *fasthttp.RequestCtx) bool {
	if s.acl.opts.Enabled {
		return true
	}
	writeError(ctx, &apiError{status: fasthttp.StatusBadRequest, code: CodeACLDisabled,
		message: "ACLs are disabled on this node (set acl.enabled: true or --acl-enabled)"})
	return false
}

type bootstrapAnswer struct {
	AccessorID string   `json:"accessor_id"`
	SecretID   string   `json:"secret_id"`
	Policies   []string `json:"policies"`
}

// POST /acl/bootstrap: the first management token, once per cluster.
func (s *Server) aclBootstrap(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	tx := s.reader.Store().ReadTxn()
	done := tx.ACLMeta() != nil
	tx.Abort()
	if done {
		s.reject(ctx, bootstrappedError())
		return
	}
	accessor, err1 := acl.NewSecret()
	secret, err2 := acl.NewSecret()
	if err := errors.Join(err1, err2); err != nil {
		s.reject(ctx, errInternal("cannot generate a secret: "+err.Error()))
		return
	}
	now := s.now().UnixNano()
	m := s.meta(rc)
	m.Actor = accessor
	cmd := &command.ACLBootstrap{Meta: m, Token: registry.ACLToken{AccessorID: accessor, SecretHash: acl.HashSecret(secret),
		Description: "Bootstrap management token", CreateTime: now}}
	if res := s.apply(ctx, rc, command.TypeACLBootstrap, cmd); res != nil {
		writeJSON(ctx, fasthttp.StatusOK, bootstrapAnswer{AccessorID: accessor, SecretID: secret, Policies: []string{registry.PolicyGlobalManagement}})
	}
}

func bootstrappedError() *apiError {
	return &apiError{status: fasthttp.StatusForbidden, code: registry.CodeACLBootstrapped,
		message: "ACLs were bootstrapped already; use an existing management token"}
}

type loginAnswer struct {
	Token      string `json:"token"`
	ExpiresAt  string `json:"expires_at"`
	AccessorID string `json:"accessor_id"`
}

// POST /acl/login: exchanges a token for a short-lived JWT.
func (s *Server) aclLogin(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	if rc.ident.Kind != acl.Token {
		writeError(ctx, &apiError{status: fasthttp.StatusUnauthorized, code: CodeUnauthenticated,
			message: "login needs a Nexus token (Authorization: Bearer SECRET or X-Nexus-Token)"})
		return
	}
	j := s.acl.opts.JWT
	if j == nil || !j.CanIssue() {
		writeError(ctx, &apiError{status: fasthttp.StatusBadRequest, code: CodeACLDisabled,
			message: "JWT login is not configured on this node (acl.jwt_secret)"})
		return
	}
	tx := s.reader.Store().ReadTxn()
	t := tx.ACLToken(nil, rc.ident.Accessor)
	tx.Abort()
	if t == nil {
		writeError(ctx, unknownToken())
		return
	}
	raw, exp, err := j.Issue(t.AccessorID, t.Roles, s.now())
	if err != nil {
		writeError(ctx, errInternal("cannot sign the JWT: "+err.Error()))
		return
	}
	// A JWT outliving its token stops working with it: every request
	// checks the token behind a login JWT.
	writeJSON(ctx, fasthttp.StatusOK, loginAnswer{Token: raw, ExpiresAt: exp.UTC().Format(time.RFC3339), AccessorID: t.AccessorID})
}

type selfAnswer struct {
	Kind      string   `json:"kind"`
	Subject   string   `json:"subject,omitempty"`
	Roles     []string `json:"roles,omitempty"`
	ExpiresAt string   `json:"expires_at,omitempty"`
}

// GET /acl/token/self: the caller's token, or what its JWT says.
func (s *Server) aclSelf(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	id := rc.ident
	switch id.Kind {
	case acl.Token:
		tx := s.reader.Store().ReadTxn()
		t := tx.ACLToken(nil, id.Accessor)
		tx.Abort()
		if t == nil {
			writeError(ctx, unknownToken())
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, fsm.TokenView(t))
	case acl.External:
		writeJSON(ctx, fasthttp.StatusOK, selfAnswer{Kind: "jwt", Subject: id.Subject, Roles: id.Roles,
			ExpiresAt: time.Unix(0, id.ExpiresAt).UTC().Format(time.RFC3339)})
	default:
		writeError(ctx, &apiError{status: fasthttp.StatusUnauthorized, code: CodeUnauthenticated, message: "no token was given"})
	}
}
