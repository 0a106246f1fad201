// Package api is the admin REST API of a Nexus node, on fasthttp: routing,
// JSON encoding and the error shape, blocking and consistent reads, writes
// through Raft (Deps.Writer), and /metrics. The contract is
// docs/api.md.
//
// The package never imports hashicorp/raft: it consumes the small interfaces
// of deps.go, which the cluster package implements and package agent wires.
package api

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/cluster/peerproto"
	"github.com/nexus/nexus/fsm/command"
)

// Defaults of Deps.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultApplyTimeout = 10 * time.Second
	defaultReadTimeout  = 30 * time.Second
	defaultWriteTimeout = 30 * time.Second
	defaultIdleTimeout  = 2 * time.Minute
	readBufferSize      = 8 << 10
	leaveTimeout        = 2 * time.Minute
)

// Header names.
const (
	HeaderIndex       = peerproto.HeaderIndex
	HeaderRequestID   = "X-Request-ID"
	HeaderKnownLeader = "X-Nexus-Known-Leader"
	HeaderLastContact = "X-Nexus-Last-Contact"
	HeaderNext        = "X-Nexus-Next"
)

// Server is the admin API of one node.
type Server struct {
	writer       Writer
	reader       Reader
	cluster      Cluster
	consistency  ConsistentReader
	auditArchive AuditArchive
	heartbeats   Heartbeats
	codec        *command.Codec
	log          *slog.Logger
	version      string
	maxBody      int
	now          func() time.Time
	applyTimeout time.Duration

	metrics *metrics
	eps     endpoints
	srv     *fasthttp.Server
	guard   *guard
	keyring Keyring
	acl     *aclState
	debug   *debugHandlers // nil: no /debug/pprof/ (debug.go)
	peers   PeerService

	// base is the parent of the contexts of blocking reads; Shutdown cancels
	// it so that they answer at once. (A *fasthttp.RequestCtx is never used
	// as a parent context: it is recycled after the handler returns while
	// context's watcher goroutine may still read it.)
	base       context.Context
	cancelBase context.CancelFunc
}

// New builds the admin API. Writer, Reader and Cluster are required.
func New(deps Deps) (*Server, error) {
	if deps.Writer == nil || deps.Reader == nil || deps.Cluster == nil {
		return nil, errors.New("api: Writer, Reader and Cluster are required")
	}
	s := &Server{
		writer:       deps.Writer,
		reader:       deps.Reader,
		cluster:      deps.Cluster,
		consistency:  deps.Consistency,
		auditArchive: deps.AuditArchive,
		heartbeats:   deps.Heartbeats,
		codec:        deps.Codec,
		log:          deps.Logger,
		version:      deps.Version,
		maxBody:      deps.MaxBodyBytes,
		now:          deps.Now,
		applyTimeout: deps.ApplyTimeout,
	}
	if s.codec == nil {
		s.codec = command.NewCodec()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.applyTimeout <= 0 {
		s.applyTimeout = DefaultApplyTimeout
	}
	reg, gath := deps.Registry, deps.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg = r
		if gath == nil {
			gath = r
		}
	}
	if gath == nil {
		g, ok := reg.(prometheus.Gatherer)
		if !ok {
			return nil, errors.New("api: Gatherer is required when Registry is not a prometheus.Gatherer")
		}
		gath = g
	}
	m, err := newMetrics(reg, gath, s.reader, s.cluster)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.eps = s.buildEndpoints()
	s.guard = newGuard(deps.Guard)
	if s.acl, err = newACLState(deps.ACL, reg); err != nil {
		return nil, err
	}
	s.keyring = deps.Keyring
	if deps.EnableDebug || deps.ACL.Enabled {
		s.debug = newDebugHandlers()
	}
	s.peers = deps.Peers
	s.base, s.cancelBase = context.WithCancel(context.Background())

	s.srv = &fasthttp.Server{
		Handler:                      s.handle,
		ErrorHandler:                 s.handleServerError,
		ReadTimeout:                  orDefault(deps.ReadTimeout, defaultReadTimeout),
		WriteTimeout:                 orDefault(deps.WriteTimeout, defaultWriteTimeout),
		IdleTimeout:                  orDefault(deps.IdleTimeout, defaultIdleTimeout),
		MaxRequestBodySize:           s.maxBody,
		HeaderReceived:               s.headerReceived, // PUT /cluster/snapshot takes up to MaxSnapshotBytes
		ReadBufferSize:               readBufferSize,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{s.log},
	}
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Handler returns the request handler (without the server's body limit,
// which Serve enforces while reading; the handler checks it again).
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Serve serves the API on ln until Shutdown: TLS only when Deps.Guard.TLS
// is set.
func (s *Server) Serve(ln net.Listener) error {
	if s.guard.tls != nil {
		ln = tls.NewListener(ln, s.guard.tls)
	}
	return s.srv.Serve(ln)
}

// Shutdown stops accepting connections, wakes blocking queries (they answer
// their current data) and waits for in-flight requests until ctx ends. Writes
// in flight run to their own deadline. A Server is not reused after Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancelBase()
	return s.srv.ShutdownWithContext(ctx)
}

// reqCtx is the per-request state the handlers share.
type reqCtx struct {
	id      string // X-Request-ID
	route   string // pattern, for metrics and logs
	index   uint64 // X-Nexus-Index
	isWrite bool
	// path parameters, already unescaped
	name, instance, key string
	// ident is the caller and authz its rights (nil: ACLs off, or an
	// open endpoint).
	ident acl.Identity
	authz *acl.Authorizer
}

type handlerFunc func(ctx *fasthttp.RequestCtx, rc *reqCtx)

// handle is the entry point of every request: request id, routing, panic
// recovery, common headers, metrics and the request log.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	rc := &reqCtx{id: requestID(ctx), route: "unmatched"}
	s.dispatchSafely(ctx, rc)
	s.finish(ctx, rc, start)
}

func (s *Server) dispatchSafely(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in api handler", "request_id", rc.id, "route", rc.route,
				"method", string(ctx.Method()), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			ctx.Response.Reset()
			writeError(ctx, errInternal("internal error"))
		}
	}()
	if e := s.guardRequest(ctx); e != nil {
		writeError(ctx, e)
		return
	}
	if peerproto.IsInternal(string(ctx.Path())) {
		s.serveInternal(ctx, rc)
		return
	}
	if s.keyringRoute(ctx, rc) {
		return
	}
	if s.debugRoute(ctx, rc) {
		return
	}
	s.dispatch(ctx, rc)
}

// serveInternal hands the node-to-node paths (/internal/...) to the peer
// protocol's handlers (Deps.Peers). They are not subject to ACLs: what
// only members may send is authenticated by the cluster secret's MAC.
func (s *Server) serveInternal(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if s.peers == nil {
		rc.route = peerproto.Prefix
		writeError(ctx, errNotFound("no such endpoint: "+string(ctx.Method())+" "+string(ctx.Path())))
		return
	}
	if len(ctx.PostBody()) > s.maxBody {
		rc.route = peerproto.Prefix
		s.metrics.rejected.WithLabelValues("body_too_large").Inc()
		writeError(ctx, errBodyTooLarge(s.maxBody))
		return
	}
	rc.route, rc.index = s.peers.Serve(ctx)
}

// finish sets the headers every answer carries, then records the request.
func (s *Server) finish(ctx *fasthttp.RequestCtx, rc *reqCtx, start time.Time) {
	h := &ctx.Response.Header
	h.Set(HeaderRequestID, rc.id)
	h.Set(HeaderIndex, strconv.FormatUint(rc.index, 10))
	s.clusterHeaders(ctx, rc)

	code := ctx.Response.StatusCode()
	method := methodLabel(ctx.Method())
	elapsed := time.Since(start)
	s.metrics.observe(rc.route, method, code, elapsed)
	if code >= 500 {
		s.log.Warn("api request", "request_id", rc.id, "method", method, "path", string(ctx.Path()),
			"route", rc.route, "status", code, "duration", elapsed, "remote", remoteAddr(ctx))
	} else if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("api request", "request_id", rc.id, "method", method, "path", string(ctx.Path()),
			"route", rc.route, "status", code, "duration", elapsed, "remote", remoteAddr(ctx))
	}
}

// clusterHeaders sets X-Nexus-Known-Leader and X-Nexus-Last-Contact; a
// failing Cluster must not turn an answer into a crash.
func (s *Server) clusterHeaders(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic reading cluster state", "request_id", rc.id, "panic", fmt.Sprint(p))
		}
	}()
	h := &ctx.Response.Header
	known, lastContact := s.cluster.Contact()
	h.Set(HeaderKnownLeader, strconv.FormatBool(known))
	h.Set(HeaderLastContact, strconv.FormatInt(lastContact.Milliseconds(), 10))
}

func remoteAddr(ctx *fasthttp.RequestCtx) string {
	if a := ctx.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// methodLabel bounds the cardinality of the method label.
func methodLabel(m []byte) string {
	switch string(m) {
	case fasthttp.MethodGet:
		return fasthttp.MethodGet
	case fasthttp.MethodPost:
		return fasthttp.MethodPost
	case fasthttp.MethodPut:
		return fasthttp.MethodPut
	case fasthttp.MethodDelete:
		return fasthttp.MethodDelete
	case fasthttp.MethodHead:
		return fasthttp.MethodHead
	case fasthttp.MethodPatch:
		return fasthttp.MethodPatch
	case fasthttp.MethodOptions:
		return fasthttp.MethodOptions
	}
	return "OTHER"
}

// requestID echoes a sane X-Request-ID or generates 16 hex characters.
func requestID(ctx *fasthttp.RequestCtx) string {
	if v := ctx.Request.Header.Peek(HeaderRequestID); len(v) > 0 && len(v) <= 128 && printable(v) {
		return string(v)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// handleServerError answers the errors fasthttp meets while reading a
// request (body too large, header too large, timeouts) in the JSON shape.
func (s *Server) handleServerError(ctx *fasthttp.RequestCtx, err error) {
	start := time.Now()
	rc := &reqCtx{id: requestID(ctx), route: "unmatched"}
	limit := s.maxBody
	if ep, _, perr := s.route(ctx); ep != nil && perr == nil {
		rc.route = ep.pattern
		if ep.maxBody > 0 {
			limit = ep.maxBody
		}
	}
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.metrics.rejected.WithLabelValues("body_too_large").Inc()
		writeError(ctx, errBodyTooLarge(limit))
	case errors.As(err, &small):
		writeError(ctx, &apiError{status: fasthttp.StatusRequestHeaderFieldsTooLarge, code: "header_too_large",
			message: "request headers are too large"})
	case errors.As(err, &netErr) && netErr.Timeout():
		writeError(ctx, &apiError{status: fasthttp.StatusRequestTimeout, code: "request_timeout",
			message: "timed out reading the request"})
	default:
		writeError(ctx, &apiError{status: fasthttp.StatusBadRequest, code: "bad_request",
			message: "cannot parse the request: " + err.Error()})
	}
	s.finish(ctx, rc, start)
}

// fasthttpLogger sends fasthttp's own messages to slog.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Warn("fasthttp: " + fmt.Sprintf(format, args...))
}
