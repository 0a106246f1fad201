package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/gateway/router"
)

// maxUpgradeHead bounds the upstream's answer head to an upgrade request.
const maxUpgradeHead = 16 << 10

// isWebSocket reports a WebSocket upgrade request.
func isWebSocket(ctx *fasthttp.RequestCtx) bool {
	return ctx.Request.Header.ConnectionUpgrade() && bytes.EqualFold(ctx.Request.Header.Peek("Upgrade"), []byte("websocket"))
}

// proxyWebSocket passes an upgrade through: the request goes to an instance
// over a fresh connection; a 101 answer is relayed raw and both connections
// are then spliced (the client's is hijacked from fasthttp). Any other
// answer is returned as a normal response.
func (g *Gateway) proxyWebSocket(ctx *fasthttp.RequestCtx, r *route, m router.Match[*routeSlot], st *reqState) {
	req := &ctx.Request
	for _, k := range hopHeaders {
		if k != "Upgrade" {
			req.Header.Del(k)
		}
	}
	setForwarded(ctx)
	upstreamScheme(ctx)
	if r.stripPath {
		rewritePath(ctx.URI(), ctx.Path(), m.Path)
	}
	deadline := st.start.Add(r.timeout)
	var tried uint64
	var conn net.Conn
	var lastErr error
	for attempt := 0; attempt <= r.retries; attempt++ {
		now := g.now().UnixNano()
		i := pick(r, 0, &tried, now)
		if i < 0 {
			break
		}
		ep := &r.endpoints[i]
		st.ep = ep
		st.attempts++
		c, err := net.DialTimeout("tcp", ep.up.addr, min(time.Until(deadline), g.opts.ConnectTimeout))
		if err != nil {
			ep.failure(now)
			lastErr = &dialError{err: err}
			continue
		}
		ep.success()
		conn = c
		if !r.preserveHost {
			req.Header.SetHost(ep.up.addr)
		}
		req.UseHostHeader = true
		break
	}
	if conn == nil {
		if lastErr == nil {
			noEndpoint(ctx, r, st)
		} else {
			upstreamFailed(ctx, r, st, lastErr)
		}
		return
	}
	_ = conn.SetDeadline(deadline)
	bw := bufio.NewWriter(conn)
	if err := req.Write(bw); err != nil || bw.Flush() != nil {
		conn.Close()
		upstreamFailed(ctx, r, st, errors2(err))
		return
	}
	br := bufio.NewReaderSize(conn, 4096)
	head, status, err := readHead(br)
	if err != nil {
		conn.Close()
		upstreamFailed(ctx, r, st, err)
		return
	}
	if status != fasthttp.StatusSwitchingProtocols {
		// Not upgraded: relay the answer like any other.
		defer conn.Close()
		ctx.Response.Reset()
		if err := ctx.Response.Read(bufio.NewReader(io.MultiReader(bytes.NewReader(head), br))); err != nil {
			upstreamFailed(ctx, r, st, err)
			return
		}
		stripHopResponse(&ctx.Response.Header)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	ctx.Response.SetStatusCode(fasthttp.StatusSwitchingProtocols)
	ctx.HijackSetNoResponse(true)
	g.wsConns.Add(1)
	ctx.Hijack(func(client net.Conn) {
		defer g.wsConns.Add(-1)
		g.track(conn, true)
		defer g.track(conn, false)
		if _, err := client.Write(head); err != nil {
			conn.Close()
			return
		}
		splice(client, conn, br)
	})
}

// errors2 turns a nil write error (a failed Flush) into a generic one.
func errors2(err error) error {
	if err == nil {
		return io.ErrShortWrite
	}
	return err
}

// readHead reads an HTTP response head up to and including the blank line.
func readHead(br *bufio.Reader) ([]byte, int, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, 0, err
		}
		head = append(head, line...)
		if len(head) > maxUpgradeHead {
			return nil, 0, fasthttp.ErrBodyTooLarge
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
	}
	// "HTTP/1.1 101 Switching Protocols"
	first := head[:bytes.IndexByte(head, '\n')]
	parts := bytes.SplitN(first, []byte(" "), 3)
	if len(parts) < 2 {
		return nil, 0, io.ErrUnexpectedEOF
	}
	status, err := strconv.Atoi(string(parts[1]))
	if err != nil {
		return nil, 0, io.ErrUnexpectedEOF
	}
	return head, status, nil
}

// splice copies both ways until either side ends, then closes both.
func splice(client, upstream net.Conn, upstreamBuf *bufio.Reader) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			upstream.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(upstream, client)
		closeBoth()
		close(done)
	}()
	_, _ = io.Copy(client, upstreamBuf)
	closeBoth()
	<-done
}
