package gateway

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/gateway/plugin/compress"
	"github.com/nexus/nexus/gateway/plugin/cors"
	"github.com/nexus/nexus/gateway/router"
)

// serve is the fasthttp handler: one request from match to metrics.
func (g *Gateway) serve(ctx *fasthttp.RequestCtx) {
	var st reqState
	st.start = g.now()
	t := g.table.Load()

	var idbuf [maxRequestIDLen]byte
	rid := ctx.Request.Header.Peek(HeaderRequestID)
	if validRequestID(rid) {
		rid = append(idbuf[:0], rid...)
	} else {
		rid = g.ids.appendID(idbuf[:0])
		ctx.Request.Header.SetCanonical([]byte(canonicalRequestID), rid)
	}

	if g.access != nil {
		st.host, st.path = string(ctx.Host()), string(ctx.Path())
	}
	m, ok := t.router.Match(ctx.Host(), ctx.Path(), ctx.Method())
	if !ok {
		st.code = CodeRouteNotFound
		writeError(ctx, fasthttp.StatusNotFound, CodeRouteNotFound, "no route matches this host, path and method")
		g.finish(ctx, t.none, &st, rid)
		return
	}
	r := m.Value.Load()
	st.route = r
	g.handleRoute(ctx, r, m, &st)
	g.finish(ctx, r.metrics, &st, rid)
}

// handleRoute runs the plugins in the order api.md pins: CORS preflight,
// auth, rate limit, cache, proxy, compression (and CORS headers).
func (g *Gateway) handleRoute(ctx *fasthttp.RequestCtx, r *route, m router.Match[*routeSlot], st *reqState) {
	if r.cors != nil && cors.IsPreflight(ctx) {
		if !r.cors.Preflight(ctx) {
			st.code = CodeCORSDenied
			writeError(ctx, fasthttp.StatusForbidden, CodeCORSDenied, "origin is not allowed by the route's CORS policy")
		}
		return
	}
	if r.auth != nil {
		res := r.auth.authenticate(ctx, r, st.start)
		if res.status != 0 {
			st.code = res.code
			writeError(ctx, res.status, res.code, res.message)
			g.decorate(ctx, r)
			return
		}
		st.claims, st.consumer = res.claims, res.consumer
	}
	if r.limiter != nil {
		var kb [256]byte
		st.rl = r.limiter.Allow(r.limitKey.appendKey(kb[:0], ctx, st), st.start.UnixNano())
		st.hasRL = true
		if !st.rl.Allowed {
			st.code, st.limited = CodeRateLimited, true
			r.metrics.limited.Inc()
			setRetryAfter(ctx, int64((st.rl.RetryAfter+999_999_999)/1_000_000_000))
			writeError(ctx, fasthttp.StatusTooManyRequests, CodeRateLimited, "rate limit exceeded")
			g.decorate(ctx, r)
			return
		}
	}
	if isWebSocket(ctx) {
		g.proxyWebSocket(ctx, r, m, st)
		return
	}
	if r.cache != nil {
		if r.cache.Lookup(ctx, r.id) {
			st.cache = cacheHit
			r.metrics.cacheHit.Inc()
			if r.compress {
				compress.Apply(ctx)
			}
			g.decorate(ctx, r)
			return
		}
		st.cache = cacheMiss
		r.metrics.cacheMiss.Inc()
	}
	if !g.proxy(ctx, r, m, st) {
		g.decorate(ctx, r)
		return
	}
	stripHopResponse(&ctx.Response.Header)
	if r.cache != nil {
		r.cache.Store(ctx, r.id, r.cacheTTL)
	}
	if r.compress {
		compress.Apply(ctx)
	}
	g.decorate(ctx, r)
}

// decorate adds the CORS headers of an actual request.
func (g *Gateway) decorate(ctx *fasthttp.RequestCtx, r *route) {
	if r.cors != nil {
		r.cors.Decorate(ctx)
	}
}

// finish sets the headers every answer carries, counts the request and
// writes the access log line.
func (g *Gateway) finish(ctx *fasthttp.RequestCtx, rm *routeMetrics, st *reqState, rid []byte) {
	h := &ctx.Response.Header
	h.SetCanonical([]byte(canonicalRequestID), rid)
	if st.hasRL {
		var b [20]byte
		h.SetBytesV("X-RateLimit-Limit", strconv.AppendInt(b[:0], st.rl.Limit, 10))
		h.SetBytesV("X-RateLimit-Remaining", strconv.AppendInt(b[:0], st.rl.Remaining, 10))
		h.SetBytesV("X-RateLimit-Reset", strconv.AppendInt(b[:0], int64((st.rl.Reset+999_999_999)/1_000_000_000), 10))
	}
	if st.clientClose {
		ctx.SetConnectionClose()
	}
	rm.count(ctx.Response.StatusCode())
	if g.access != nil {
		g.logAccess(ctx, st, rid)
	}
}
