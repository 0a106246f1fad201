package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/gateway/balance"
	"github.com/nexus/nexus/gateway/router"
)

// proxy forwards the request to an instance of the route's service,
// retrying on another instance when allowed. It returns true when an
// upstream answer is in ctx.Response, false when the gateway answered with
// an error.
func (g *Gateway) proxy(ctx *fasthttp.RequestCtx, r *route, m router.Match[*routeSlot], st *reqState) bool {
	req := &ctx.Request
	st.clientClose = prepareRequest(ctx, r, m)
	// A body the server buffered completely can be sent again on a retry; a
	// larger one streams and is retried only when nothing was sent.
	readBody := false // the client's body was read here, which may have taken a while
	if req.IsBodyStream() {
		if cl := req.Header.ContentLength(); cl >= 0 && cl <= g.opts.MaxBufferedBody {
			if err := g.bufferBody(req, cl); err != nil {
				bodyFailed(ctx, st, err)
				return false
			}
			readBody = true
		}
	}
	streamed := req.IsBodyStream()
	idempotent := isIdempotent(ctx)

	var hashKey uint64
	if r.picker.Kind() == balance.ConsistentHash {
		var kb [256]byte
		hashKey = balance.HashBytes(r.hashOn.appendKey(kb[:0], ctx, st))
	}
	deadline := st.start.Add(r.timeout)
	var tried uint64
	var lastErr error
	for attempt := 0; ; attempt++ {
		// One clock read serves the pick (breakers, outlier ejection) and
		// the attempt's upstream duration; the first attempt reuses the
		// request's start (match and plugins take microseconds) unless the
		// body was read since.
		t0 := st.start
		if attempt > 0 || readBody {
			t0 = g.now()
		}
		now := t0.UnixNano()
		i := pick(r, hashKey, &tried, now)
		if i < 0 {
			if attempt == 0 {
				noEndpoint(ctx, r, st)
			} else {
				upstreamFailed(ctx, r, st, lastErr)
			}
			return false
		}
		ep := &r.endpoints[i]
		st.ep = ep
		st.attempts++
		if attempt > 0 {
			r.metrics.retries.Inc()
		}
		if !r.preserveHost {
			req.Header.SetHost(ep.up.addr)
		}
		req.UseHostHeader = true

		ep.up.inflight.Add(1)
		err := ep.up.do(req, &ctx.Response, exchange{deadline: deadline, bodyIdle: r.timeout, stream: r.streamResponse, idempotent: idempotent})
		d := g.now().Sub(t0)
		ep.up.inflight.Add(-1)
		st.upstreamDur += d
		r.metrics.upstream.Observe(d.Seconds())

		if err == nil {
			if s := ctx.Response.StatusCode(); s == 500 || s == 502 || s == 503 || s == 504 {
				ep.failure(now)
			} else {
				ep.success()
			}
			return true
		}
		ep.failure(now)
		lastErr = err
		g.logger.Debug("upstream attempt failed", "route", r.id, "upstream", ep.up.addr, "attempt", attempt+1, "err", err)
		retry := attempt < r.retries && !isTimeout(err) &&
			(isDialError(err) || errors.Is(err, fasthttp.ErrNoFreeConns) || (idempotent && !streamed))
		if !retry {
			upstreamFailed(ctx, r, st, err)
			return false
		}
	}
}

// bufferBody reads a streamed request body of n bytes into the request. An
// incomplete body (the client stalled past ClientReadTimeout, or went away)
// is an error: fasthttp's Request.Body would forward what arrived, or the
// text of the read error in its place.
func (g *Gateway) bufferBody(req *fasthttp.Request, n int) error {
	b, _ := g.bodies.Get().(*bytes.Buffer)
	if b == nil {
		b = new(bytes.Buffer)
	}
	b.Reset()
	b.Grow(n)
	err := req.BodyWriteTo(b) // reads the stream to its end and closes it
	if err == nil && b.Len() != n {
		err = io.ErrUnexpectedEOF // the stream ends early, without an error, when the client half-closes
	}
	if err == nil {
		req.SetBody(b.Bytes())
	}
	if b.Cap() <= 64<<10 {
		g.bodies.Put(b) // bigger ones are left to the collector
	}
	return err
}

// bodyFailed answers a request whose body could not be read, and closes
// the connection: what is left of the body is unknown.
func bodyFailed(ctx *fasthttp.RequestCtx, st *reqState, err error) {
	st.code, st.clientClose = CodeBadRequest, true
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		writeError(ctx, fasthttp.StatusRequestTimeout, CodeBadRequest, "timed out reading the request body")
		return
	}
	writeError(ctx, fasthttp.StatusBadRequest, CodeBadRequest, "the request body ended before its Content-Length")
}

// prepareRequest turns the client's request into the upstream request in
// place: hop-by-hop headers out, X-Forwarded-* in, path rewritten for
// strip_path. It reports whether the client asked to close its connection.
func prepareRequest(ctx *fasthttp.RequestCtx, r *route, m router.Match[*routeSlot]) bool {
	clientClose := stripHopRequest(&ctx.Request.Header)
	setForwarded(ctx)
	upstreamScheme(ctx)
	if r.stripPath {
		rewritePath(ctx.URI(), ctx.Path(), m.Path)
	}
	return clientClose
}

// upstreamScheme makes the reused request plain HTTP for the upstream, whose
// connection is plain: a request that reached the gateway over TLS carries
// scheme https (HostClient.Do refused to send it, and every proxied request
// was a 502, before transport.go; the scheme must not leak into anything
// derived from the URI). X-Forwarded-Proto still says https.
func upstreamScheme(ctx *fasthttp.RequestCtx) {
	if ctx.IsTLS() {
		ctx.URI().SetScheme("http")
	}
}

// pick chooses an endpoint not tried yet whose breaker admits a request.
// Outlier-ejected endpoints are avoided unless every candidate is ejected.
func pick(r *route, key uint64, tried *uint64, now int64) int {
	ignoreEjected := false
	ok := func(i int) bool {
		if i < 64 && *tried&(1<<uint(i)) != 0 {
			return false
		}
		ep := &r.endpoints[i]
		if ep.breaker != nil && !ep.breaker.Available(now) {
			return false
		}
		return ignoreEjected || !ep.up.outlier.Ejected(now)
	}
	load := func(i int) int64 { return r.endpoints[i].up.inflight.Load() }
	for range 2 * len(r.endpoints) {
		i := r.picker.Pick(key, ok, load)
		if i < 0 {
			if ignoreEjected {
				return -1
			}
			ignoreEjected = true
			continue
		}
		if i < 64 {
			*tried |= 1 << uint(i)
		}
		if b := r.endpoints[i].breaker; b != nil && !b.Acquire(now) {
			continue // another request took the half-open trial
		}
		return i
	}
	return -1
}

func (ep *endpoint) failure(now int64) {
	if ep.breaker != nil {
		ep.breaker.Failure(now)
	}
	ep.up.outlier.Failure(now)
}

func (ep *endpoint) success() {
	if ep.breaker != nil {
		ep.breaker.Success()
	}
	ep.up.outlier.Success()
}

func noEndpoint(ctx *fasthttp.RequestCtx, r *route, st *reqState) {
	for i := range r.endpoints {
		if r.endpoints[i].breaker != nil {
			st.code = CodeCircuitOpen
			writeError(ctx, fasthttp.StatusServiceUnavailable, CodeCircuitOpen,
				"every instance of service \""+r.service+"\" has an open circuit breaker")
			setRetryAfter(ctx, 1)
			return
		}
	}
	st.code = CodeNoHealthyUpstream
	writeError(ctx, fasthttp.StatusServiceUnavailable, CodeNoHealthyUpstream,
		"service \""+r.service+"\" has no passing instance")
}

func upstreamFailed(ctx *fasthttp.RequestCtx, r *route, st *reqState, err error) {
	ctx.Response.Reset()
	switch {
	case isTimeout(err):
		st.code = CodeUpstreamTimeout
		writeError(ctx, fasthttp.StatusGatewayTimeout, CodeUpstreamTimeout,
			"service \""+r.service+"\" did not answer within "+r.timeout.String())
	case isDialError(err):
		st.code = CodeUpstreamUnreachable
		writeError(ctx, fasthttp.StatusBadGateway, CodeUpstreamUnreachable,
			"cannot connect to an instance of service \""+r.service+"\"")
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		st.code = CodeUpstreamBusy
		writeError(ctx, fasthttp.StatusServiceUnavailable, CodeUpstreamBusy,
			"every connection to service \""+r.service+"\" is busy")
		setRetryAfter(ctx, 1)
	default:
		st.code = CodeUpstreamError
		writeError(ctx, fasthttp.StatusBadGateway, CodeUpstreamError,
			"the connection to service \""+r.service+"\" failed before a complete answer")
	}
}

func isTimeout(err error) bool {
	return errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) && !isDialError(err)
}

func isIdempotent(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsGet() || ctx.IsHead() || ctx.IsOptions() || ctx.IsPut() || ctx.IsDelete() || ctx.IsTrace()
}
