package api

import (
	"net/http/pprof"
	rtpprof "runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Profiling (docs/api.md, "Debugging"): Go's pprof handlers on the admin
// listener,
//
//	GET /debug/pprof/                  index
//	GET /debug/pprof/profile?seconds=N CPU profile (default 30s)
//	GET /debug/pprof/trace?seconds=N   execution trace (default 1s)
//	GET /debug/pprof/{heap,goroutine,allocs,block,mutex,threadcreate}
//	GET /debug/pprof/symbol
//
// served when ACLs are on (behind cluster:write, the operator right that
// also guards the keyring and the Raft peers) or when Deps.EnableDebug is
// set; otherwise the paths do not exist (404). /debug/pprof/cmdline is
// never served: the command line can carry secrets (--acl-jwt-secret).
// These paths are served before the routing table (debugRoute).
const (
	pathDebugPprof = "/debug/pprof/"
	// maxProfileSeconds bounds ?seconds= of profiles and traces.
	maxProfileSeconds = 300
)

// debugHandlers are the pprof handlers adapted to fasthttp; nil on a
// server without debugging.
type debugHandlers struct {
	index, profile, trace, symbol fasthttp.RequestHandler
	// The runtime runs one CPU profile and one trace at a time: a second
	// caller is told so (409) instead of pprof's 500.
	cpuBusy, traceBusy atomic.Bool
}

func newDebugHandlers() *debugHandlers {
	return &debugHandlers{
		index:   fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Index),
		profile: fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Profile),
		trace:   fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Trace),
		symbol:  fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Symbol),
	}
}

// debugRoute serves the pprof paths and reports whether it did.
func (s *Server) debugRoute(ctx *fasthttp.RequestCtx, rc *reqCtx) bool {
	if s.debug == nil {
		return false
	}
	path := string(ctx.Path())
	if path != strings.TrimSuffix(pathDebugPprof, "/") && !strings.HasPrefix(path, pathDebugPprof) {
		return false
	}
	rc.route = pathDebugPprof
	if !ctx.IsGet() {
		ctx.Response.Header.Set("Allow", fasthttp.MethodGet)
		writeError(ctx, &apiError{status: fasthttp.StatusMethodNotAllowed, code: "method_not_allowed",
			message: "method " + string(ctx.Method()) + " is not allowed on " + path + "; allowed: GET"})
		return true
	}
	if e := s.authorizeRequest(ctx, rc, &s.eps.debug); e != nil {
		writeError(ctx, e)
		return true
	}
	args := ctx.QueryArgs()
	for _, p := range []struct {
		name     string
		min, max int
	}{{"seconds", 1, maxProfileSeconds}, {"debug", 0, 2}, {"gc", 0, 1}} {
		if !args.Has(p.name) {
			continue
		}
		v, err := strconv.Atoi(string(args.Peek(p.name)))
		if err != nil || v < p.min || v > p.max {
			writeError(ctx, errInvalid(p.name, "%q is not an integer in %d..%d", args.Peek(p.name), p.min, p.max))
			return true
		}
	}
	name := strings.TrimPrefix(strings.TrimPrefix(path, strings.TrimSuffix(pathDebugPprof, "/")), "/")
	d := s.debug
	switch name {
	case "":
		d.index(ctx)
	case "profile":
		if !d.cpuBusy.CompareAndSwap(false, true) {
			writeError(ctx, profileBusy("CPU profile"))
			return true
		}
		defer d.cpuBusy.Store(false)
		d.profile(ctx)
	case "trace":
		if !d.traceBusy.CompareAndSwap(false, true) {
			writeError(ctx, profileBusy("trace"))
			return true
		}
		defer d.traceBusy.Store(false)
		d.trace(ctx)
	case "symbol":
		d.symbol(ctx)
	case "cmdline":
		writeError(ctx, errNotFound("/debug/pprof/cmdline is not served: the command line can carry secrets"))
		return true
	default:
		if rtpprof.Lookup(name) == nil {
			writeError(ctx, errNotFound("no such profile: "+strconv.Quote(name)+"; known: "+strings.Join(profileNames(), ", ")))
			return true
		}
		fasthttpadaptor.NewFastHTTPHandler(pprof.Handler(name))(ctx)
	}
	s.log.Info("pprof served", "request_id", rc.id, "profile", name, "query", string(ctx.QueryArgs().QueryString()),
		"actor", rc.ident.Actor(), "status", ctx.Response.StatusCode())
	return true
}

func profileBusy(what string) *apiError {
	return &apiError{status: fasthttp.StatusConflict, code: "profile_in_progress",
		message: "another " + what + " is being taken on this node; retry when it ends", retryAfter: true}
}

// profileNames lists the runtime's named profiles and the special ones.
func profileNames() []string {
	names := []string{"profile", "trace", "symbol"}
	for _, p := range rtpprof.Profiles() {
		names = append(names, p.Name())
	}
	slices.Sort(names)
	return names
}
