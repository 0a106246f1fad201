package gateway

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The gateway's own round trip over the HostClient's connection pool, in
// place of HostClient.DoDeadline. It exists for two reasons:
//   - A small answer (a Content-Length that fits one connection buffer) is
//     read whole and the connection goes back to the pool at once. fasthttp
//     streams every answer when asked to stream, which costs a stream, a
//     closure pair and a locked Read per response (a measurable share of
//     the gateway's CPU per request: docs/gateway.md).
//   - The route's deadline reaches the socket as it is: HostClient.Do turns
//     it into a timeout and back into a deadline, reading the clock each way.
// Larger, chunked and close-delimited answers still stream.

// maxStaleTries bounds the tries of an idempotent request on one upstream
// after reused keep-alive connections failed before any answer (the
// upstream closed them while idle, or restarted). The first such failure
// also closes the pool's other idle connections, which are likely as dead,
// so the next try usually dials. A failure on a fresh connection is never
// tried again here; retries to other instances are proxy.go's.
const maxStaleTries = 3

// exchange says how a request goes to an upstream.
type exchange struct {
	// deadline bounds all tries up to the answer's header, and a body read
	// whole.
	deadline time.Time
	// bodyIdle is how long a streamed body may pause between two reads (the
	// route's timeout, as nginx's proxy_read_timeout and Kong's read_timeout
	// count it), so that a long download is not cut at the deadline.
	bodyIdle time.Duration
	// stream hands an answer larger than the buffer to the response as a
	// body stream that returns the connection to the pool when the server
	// closes it; without, the whole answer is read, up to maxBody bytes.
	stream bool
	// idempotent allows another try after a stale pooled connection.
	idempotent bool
}

// do sends req to the upstream and reads the answer into resp.
func (u *upstream) do(req *fasthttp.Request, resp *fasthttp.Response, x exchange) error {
	// Asked before the first try: writing the request consumes a streamed
	// body and clears it, and a second try would send an empty one.
	bodyStreamed := req.IsBodyStream()
	for stale := 0; ; stale++ {
		staleConn, err := u.roundTrip(req, resp, x)
		if err == nil {
			return nil
		}
		if err == io.EOF {
			err = fasthttp.ErrConnectionClosed
		}
		if !staleConn || !x.idempotent || bodyStreamed || stale >= maxStaleTries || isTimeout(err) {
			return err
		}
		if stale == 0 {
			u.hc.CloseIdleConnections()
		}
	}
}

// roundTrip is one try on one connection. staleConn reports a failure on
// a reused connection before any answer arrived, which a new connection
// may not have.
func (u *upstream) roundTrip(req *fasthttp.Request, resp *fasthttp.Response, x exchange) (staleConn bool, err error) {
	hc, deadline, stream := u.hc, x.deadline, x.stream
	timeout := time.Until(deadline)
	if timeout <= 0 {
		return false, fasthttp.ErrTimeout // a retry after the route's time ran out: no new connection for it
	}
	cc, err := hc.AcquireConn(timeout, req.ConnectionClose())
	if err != nil {
		return false, err
	}
	reused := !cc.LastUseTime().IsZero() // a freshly dialed connection has never been released
	conn := cc.Conn()
	if err := conn.SetWriteDeadline(deadline); err != nil {
		hc.CloseConn(cc)
		return reused, err
	}
	req.URI().DisablePathNormalizing = false // as HostClient does: the path the upstream sees is normalized
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	// An upstream may answer before it has read the whole request (a 413 for
	// an upload too large, a 401) and close, which fails the rest of the
	// write. The answer is still in the socket's receive buffer, even after a
	// reset, so it is read and relayed rather than turned into a 502 (as
	// nginx does, and net/http's client). If none comes, the try failed with
	// the write's error. A failure to read the client's body is not such a
	// case: the upstream still waits for the rest and will not answer.
	writeErr := err
	if writeErr != nil {
		if ne, ok := writeErr.(net.Error); ok && ne.Timeout() {
			hc.CloseConn(cc)
			return false, fasthttp.ErrTimeout
		}
		if !isWriteError(writeErr) {
			hc.CloseConn(cc)
			return reused, writeErr
		}
	}

	if err := conn.SetReadDeadline(deadline); err != nil {
		hc.CloseConn(cc)
		return reused, err
	}
	resp.Reset()
	resp.SkipBody = req.Header.IsHead()
	br := hc.AcquireReader(conn)
	if err := readResponseHeader(br, &resp.Header); err != nil {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		if writeErr != nil {
			return reused, writeErr
		}
		return reused, err
	}
	if resp.Header.StatusCode() == fasthttp.StatusSwitchingProtocols {
		// The gateway strips Upgrade from what it forwards (WebSocket goes
		// through websocket.go on a connection of its own), so this is an
		// upstream switching protocols unasked: the connection no longer
		// speaks HTTP, and the client, which did not ask either, gets a 502.
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return false, errUnaskedUpgrade
	}
	closeConn := writeErr != nil || req.ConnectionClose() || resp.Header.ConnectionClose()
	if resp.SkipBody || hasNoBody(resp.Header.StatusCode()) {
		hc.ReleaseReader(br)
		if closeConn {
			hc.CloseConn(cc)
		} else {
			hc.ReleaseConn(cc)
		}
		return false, nil
	}
	cl := resp.Header.ContentLength()
	// A body without a length ends with the connection. fasthttp's parser
	// says so itself, except when the answer also carries Connection:
	// Upgrade (as Apache's h2c offer does on ordinary answers).
	closeConn = closeConn || cl == -2
	if !stream || cl >= 0 && cl <= u.bufferSize {
		err = resp.ReadBody(br, u.maxBody)
		if err == nil && cl == -1 {
			err = discardTrailer(br)
		}
		hc.ReleaseReader(br)
		if err != nil || closeConn {
			hc.CloseConn(cc)
		} else {
			hc.ReleaseConn(cc)
		}
		return false, err
	}

	// Stream the body. It is read through a response of its own, because
	// the one handed to the server releases its body stream when replaced.
	up := fasthttp.AcquireResponse()
	up.StreamBody = true
	resp.Header.CopyTo(&up.Header)
	if err := up.ReadBody(br, 0); err != nil {
		fasthttp.ReleaseResponse(up)
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return false, err
	}
	body := &upstreamBody{
		r:    up.BodyStream(),
		conn: conn,
		idle: x.bodyIdle,
		release: func(discard bool) {
			_ = up.CloseBodyStream()
			fasthttp.ReleaseResponse(up)
			hc.ReleaseReader(br)
			if discard || closeConn {
				hc.CloseConn(cc)
			} else {
				hc.ReleaseConn(cc)
			}
		},
	}
	if cl < 0 {
		cl = -1 // the client gets chunked encoding whatever framed the upstream's body
	}
	resp.SetBodyStream(body, cl)
	return false, nil
}

// isWriteError reports whether err is a failed write on a connection (as
// opposed to, say, a failed read of the request body being sent).
func isWriteError(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if oe, ok := err.(*net.OpError); ok && oe.Op == "write" {
			return true
		}
	}
	return false
}

// discardTrailer reads the trailer section that ends a chunked body and
// drops it. The gateway does not forward trailers (streamed answers drop
// them with their scratch response), and an answer read whole goes to the
// client with a Content-Length and no trailer section: read into the
// answer's own header, the fields would go out as header fields once the
// hop-by-hop Trailer announcement is removed, which RFC 9110 §6.5.1
// forbids. A pooled scratch response keeps this free of allocations.
func discardTrailer(br *bufio.Reader) error {
	scratch := fasthttp.AcquireResponse()
	err := scratch.Header.ReadTrailer(br)
	fasthttp.ReleaseResponse(scratch)
	if err == io.EOF {
		return io.ErrUnexpectedEOF // the body broke off; not "closed before the first byte"
	}
	return err
}

// readResponseHeader reads the answer's status line and headers, skipping
// interim 1xx answers; it stops at a 101, which roundTrip refuses.
func readResponseHeader(br *bufio.Reader, h *fasthttp.ResponseHeader) error {
	for n := 0; ; n++ {
		if err := h.Read(br); err != nil {
			return err
		}
		s := h.StatusCode()
		if s >= 200 || s == fasthttp.StatusSwitchingProtocols {
			return nil
		}
		if n >= maxInterimResponses {
			return errTooManyInterim
		}
	}
}

// maxInterimResponses bounds the 1xx answers read before the final one.
const maxInterimResponses = 8

var (
	errTooManyInterim = &upstreamProtocolError{"upstream sent too many 1xx interim responses"}
	errUnaskedUpgrade = &upstreamProtocolError{"upstream switched protocols (101) without being asked to"}
)

// upstreamProtocolError is an answer the gateway cannot forward.
type upstreamProtocolError struct{ msg string }

func (e *upstreamProtocolError) Error() string { return e.msg }

// hasNoBody reports the statuses that never carry a body (RFC 9110 §6.4.1).
func hasNoBody(status int) bool {
	return status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified
}

// upstreamBody is a streamed upstream answer. The server reads it while it
// writes to the client and closes it after; the connection goes back to
// the pool only when the body was read to its end without error, and a
// close while a Read is blocked interrupts that Read before anything is
// released, as fasthttp's own client stream does.
type upstreamBody struct {
	r       io.Reader
	conn    net.Conn
	idle    time.Duration // each Read may wait this long; 0: the exchange's deadline stays
	release func(discard bool)
	done    bool // read to io.EOF
	closed  atomic.Bool
	mu      sync.Mutex // held by Read
	once    sync.Once
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	if b.idle > 0 {
		// With the lazy deadlines of a raw connection this only records
		// the time; the poller is re-armed about once per eighth of it.
		if err := b.conn.SetReadDeadline(time.Now().Add(b.idle)); err != nil {
			return 0, err
		}
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.done = true
	}
	return n, err
}

// CloseWithError is called by the server when it is done with the body;
// err is the reason it stopped early, if it did. (No Close method: fasthttp
// would call it first, without the error.)
func (b *upstreamBody) CloseWithError(err error) error {
	b.once.Do(func() {
		b.closed.Store(true)
		locked := b.mu.TryLock()
		discard := err != nil || !locked || !b.done
		if discard {
			_ = b.conn.Close() // unblocks a Read in flight; release closes it again, harmlessly
		}
		if !locked {
			b.mu.Lock()
		}
		defer b.mu.Unlock()
		b.release(discard)
	})
	return nil
}
