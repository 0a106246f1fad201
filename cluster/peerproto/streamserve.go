package peerproto

import (
	"bufio"
	"context"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// streamInFlight bounds the writes of one forwarding stream that the
// leader applies at once; the stream's reader waits beyond it.
const streamInFlight = 1024

// forwardStream upgrades PathForwardStream's connection to a forwarding
// stream (stream.go) and serves it until the follower closes it or the
// service closes.
func (s *Service) forwardStream(ctx *fasthttp.RequestCtx) {
	if !ctx.Request.Header.ConnectionUpgrade() || string(ctx.Request.Header.Peek("Upgrade")) != StreamProtocol {
		writeError(ctx, &Error{Status: fasthttp.StatusBadRequest, Code: "bad_request",
			Message: "Upgrade: " + StreamProtocol + " (with Connection: Upgrade) is required on " + PathForwardStream})
		return
	}
	from := string(ctx.Request.Header.Peek(HeaderForwardFrom))
	ctx.Response.Header.Set("Connection", "Upgrade")
	ctx.Response.Header.Set("Upgrade", StreamProtocol)
	ctx.SetStatusCode(fasthttp.StatusSwitchingProtocols)
	ctx.Hijack(func(c net.Conn) { s.serveStream(c, from) })
}

// serveStream reads the follower's write frames and answers each once the
// write is applied (Node.Forwarded, as over PathForward), in the order
// they finish.
func (s *Service) serveStream(conn net.Conn, from string) {
	// fasthttp's hijacked connection reads what its reader buffered, then
	// the connection; its Close does nothing (fasthttp closes the
	// connection once this returns). Writes, deadlines and Close go to the
	// connection itself, so that Close ends the stream at once.
	raw := conn
	if u, ok := conn.(interface{ UnsafeConn() net.Conn }); ok {
		raw = u.UnsafeConn()
	}
	_ = raw.SetDeadline(time.Time{}) // the admin listener's timeouts were for HTTP
	if !s.track(raw, true) {
		_ = raw.Close()
		return
	}
	defer s.track(raw, false)
	w := &frameWriter{conn: raw, timeout: s.timeout}
	br := bufio.NewReaderSize(conn, 64<<10)
	slots := make(chan struct{}, streamInFlight)
	var wg sync.WaitGroup
	for {
		p, err := readFrame(br, reqHeadSize, s.maxFrame)
		var id uint64
		var mac string
		var cmd []byte
		if err == nil {
			id, mac, cmd, err = parseRequest(p)
		}
		if err != nil {
			// The follower closed the stream, or Close stopped the
			// reading: the writes in flight are answered (if the
			// connection still takes it) before it closes.
			wg.Wait()
			w.fail(err)
			return
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			status, body, _ := s.applyForwarded(mac, from, cmd)
			// A write that fails means the connection is gone; the
			// follower has the outcome as unknown.
			_ = w.add(func(b []byte, _ uint64) []byte { return appendAnswer(b, id, status, body) })
		}()
	}
}

// track adds (or removes) a stream's connection to those Close stops. It
// refuses a new one once the service is closed.
func (s *Service) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		s.streams.Done()
		return true
	}
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.streams.Add(1)
	return true
}

// Close ends the forwarding streams (the admin listener's shutdown does not
// see hijacked connections): it stops reading them, lets the writes in
// flight be answered until ctx is done, then closes them.
func (s *Service) Close(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.streams.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
	}
}

// applyForwarded applies one forwarded write and returns the answer that
// PathForward would give: its status, body and the index.
func (s *Service) applyForwarded(mac, from string, cmd []byte) (int, []byte, uint64) {
	fctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	res, err := s.node.Forwarded(fctx, mac, from, cmd)
	cancel()
	return forwardAnswerOf(res, err)
}
