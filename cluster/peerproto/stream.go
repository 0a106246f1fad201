package peerproto

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nexus/nexus/internal/sockpeek"
)

// A follower forwards its writes to the leader over one connection, the
// forwarding stream: the HTTP request POST PathForwardStream with
// "Upgrade: StreamProtocol" turns the connection into a stream of frames
// (frame.go) once the leader answers 101. Any number of writes are in
// flight at once and a write(2) carries every frame gathered while the
// previous one was being written, on both sides. Against one HTTP request
// per write it saves the HTTP parsing and the syscalls of each write on
// the follower and on the leader. A leader that does not know the path (an
// older build, during a rolling upgrade) answers 404: the follower then
// forwards over PathForward for streamRetryAfter before it asks again.
//
// What a caller is told is what PathForward tells it: a write that surely
// never reached the leader is ErrNotSent (so command.ErrNoLeader: it may
// go to the next leader), one that may have (its frame was handed to the
// connection, and the connection failed or the answer did not come in
// time) is ErrNoAnswer (outcome unknown).

// StreamProtocol is the Upgrade token of the forwarding stream.
const StreamProtocol = "nexus-forward/1"

const (
	// streamRetryAfter: how long a follower forwards over HTTP to a leader
	// that answered 404 to the upgrade before it asks again.
	streamRetryAfter = time.Minute
	// streamIdle: a stream with nothing in flight for this long, to a
	// node the follower no longer forwards to, is closed.
	streamIdle = 30 * time.Second
	// streamHandshake bounds the dial, TLS handshake and upgrade.
	streamHandshake = 2 * time.Second
	// maxAnswerFrame bounds an answer from the leader.
	maxAnswerFrame = 64 << 20
)

// errStreamIdle closes an idle stream.
var errStreamIdle = errors.New("forwarding stream idle")

// stream is one forwarding connection to a leader's admin listener.
type stream struct {
	addr string
	w    *frameWriter
	br   *bufio.Reader
	log  *slog.Logger

	mu      sync.Mutex
	pending map[uint64]*call // nil once the stream failed
	nextID  uint64
	lastUse time.Time
}

// call is one write in flight on a stream.
type call struct {
	id    uint64
	batch atomic.Uint64 // the frameWriter batch of its frame; 0 before
	done  chan streamAnswer
}

type streamAnswer struct {
	status int
	body   []byte
	err    error
}

// openStream dials addr and upgrades the connection. A dial that fails is
// a *net.OpError; unsupported reports a leader that does not know
// PathForwardStream.
func openStream(ctx context.Context, addr, from string, tlsCfg *tls.Config, timeout time.Duration, log *slog.Logger) (s *stream, unsupported bool, err error) {
	deadline := time.Now().Add(min(timeout, streamHandshake))
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	d := net.Dialer{Deadline: deadline, KeepAlive: 15 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	if tlsCfg != nil {
		cfg := tlsCfg.Clone()
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			cfg.ServerName = host
		}
		conn = tls.Client(conn, cfg)
	}
	_ = conn.SetDeadline(deadline)
	req := "POST " + PathForwardStream + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade\r\nUpgrade: " + StreamProtocol +
		"\r\n" + HeaderForwardFrom + ": " + from + "\r\nContent-Length: 0\r\n\r\n"
	br := bufio.NewReaderSize(conn, 64<<10)
	if _, err := conn.Write([]byte(req)); err != nil {
		_ = conn.Close()
		return nil, false, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		_ = conn.Close()
		return nil, false, err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_ = conn.Close()
		nf := resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed
		return nil, nf, fmt.Errorf("the leader at %s answered %d to the forwarding stream", addr, resp.StatusCode)
	}
	_ = conn.SetDeadline(time.Time{})
	s = &stream{
		addr:    addr,
		w:       &frameWriter{conn: conn, timeout: timeout},
		br:      br,
		log:     log,
		pending: map[uint64]*call{},
		lastUse: time.Now(),
	}
	go s.read()
	return s, false, nil
}

// read delivers the answers until the connection fails.
func (s *stream) read() {
	for {
		p, err := readFrame(s.br, ansHeadSize, maxAnswerFrame)
		if err == nil {
			var id uint64
			var a streamAnswer
			id, a.status, a.body, err = parseAnswer(p)
			if err == nil {
				s.mu.Lock()
				c := s.pending[id]
				delete(s.pending, id)
				s.mu.Unlock()
				if c != nil {
					c.done <- a
				}
				continue
			}
		}
		s.fail(err)
		return
	}
}

// fail closes the stream and answers every write in flight: ErrNoAnswer if
// its frame may have reached the leader, ErrNotSent if it surely did not.
func (s *stream) fail(err error) {
	started := s.w.fail(err)
	s.mu.Lock()
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	if pending == nil {
		return // failed before
	}
	switch {
	case errors.Is(err, errStreamIdle):
		s.log.Debug("forwarding stream closed: idle", "leader", s.addr)
	case len(pending) > 0:
		s.log.Warn("forwarding stream lost with writes in flight", "leader", s.addr, "in_flight", len(pending), "error", err)
	default:
		s.log.Info("forwarding stream closed", "leader", s.addr, "error", err)
	}
	for _, c := range pending {
		if b := c.batch.Load(); b != 0 && b <= started {
			c.done <- streamAnswer{err: fmt.Errorf("%w: forwarding stream to %s: %v", ErrNoAnswer, s.addr, err)}
		} else {
			c.done <- streamAnswer{err: fmt.Errorf("%w: forwarding stream to %s: %v", ErrNotSent, s.addr, err)}
		}
	}
}

// peerClosed reports whether the leader closed the connection.
func (s *stream) peerClosed() bool {
	c := s.w.conn
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	return ok && sockpeek.Peek(sc) == sockpeek.Closed
}

// alive reports whether the stream can take writes.
func (s *stream) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending != nil
}

// closeIfIdle closes the stream when nothing is in flight and it was last
// used before idleSince.
func (s *stream) closeIfIdle(idleSince time.Time) bool {
	s.mu.Lock()
	idle := s.pending != nil && len(s.pending) == 0 && s.lastUse.Before(idleSince)
	s.mu.Unlock()
	if idle {
		s.fail(errStreamIdle)
	}
	return idle
}

// do sends one write (its MAC and command) and waits for the answer, at
// most timeout or until ctx is done.
func (s *stream) do(ctx context.Context, mac string, cmd []byte, timeout time.Duration) streamAnswer {
	c := &call{done: make(chan streamAnswer, 1)}
	s.mu.Lock()
	if s.pending == nil {
		s.mu.Unlock()
		return streamAnswer{err: fmt.Errorf("%w: forwarding stream to %s closed", ErrNotSent, s.addr)}
	}
	idle := len(s.pending) == 0
	s.nextID++
	c.id = s.nextID
	s.pending[c.id] = c
	s.lastUse = time.Now()
	s.mu.Unlock()
	// A stream with nothing in flight may have been closed by a leader
	// that was killed (and restarted at the same address) since its last
	// answer, the reader not having seen it yet: a frame written now would
	// be lost, its outcome unknown. Like the HTTP client's pooled
	// connections (conn.go), look first: such a write was not sent and
	// goes out on a new stream (Client.Forward).
	if idle && s.peerClosed() {
		s.mu.Lock()
		if s.pending != nil {
			delete(s.pending, c.id)
		}
		s.mu.Unlock()
		s.fail(errStaleConn)
		return streamAnswer{err: fmt.Errorf("%w: forwarding stream to %s: %w", ErrNotSent, s.addr, errStaleConn)}
	}
	err := s.w.add(func(b []byte, batch uint64) []byte {
		c.batch.Store(batch)
		return appendRequest(b, c.id, mac, cmd)
	})
	if err != nil {
		// The stream failed before the frame was added: unless fail took
		// the call over (then its answer is on the way), it was not sent.
		s.mu.Lock()
		_, mine := s.pending[c.id]
		delete(s.pending, c.id)
		s.mu.Unlock()
		if mine {
			return streamAnswer{err: fmt.Errorf("%w: forwarding stream to %s: %v", ErrNotSent, s.addr, err)}
		}
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	var why error
	select {
	case a := <-c.done:
		return a
	case <-t.C:
		why = errors.New("no answer within " + timeout.String())
	case <-ctx.Done():
		why = ctx.Err()
	}
	s.mu.Lock()
	if s.pending != nil {
		delete(s.pending, c.id)
	}
	s.mu.Unlock()
	// Sent or not (a frame may still be waiting for a write that is stuck),
	// it may reach the leader: the outcome is unknown.
	return streamAnswer{err: fmt.Errorf("%w: forwarding stream to %s: %v", ErrNoAnswer, s.addr, why)}
}

// streams holds a client's forwarding streams, one per leader address.
type streams struct {
	tls *tls.Config

	mu    sync.Mutex
	slots map[string]*streamSlot
	// http: leaders that answered 404 to the upgrade, and when.
	http map[string]time.Time

	log      *slog.Logger
	opened   atomic.Uint64
	viaHTTP  atomic.Uint64
	viaFrame atomic.Uint64
}

// streamSlot is the stream to one address, or its dial in progress.
type streamSlot struct {
	ready chan struct{} // closed once the dial is over
	s     *stream
	err   error
	// useHTTP: the leader does not take streams (404), or the upgrade
	// failed after the dial: forward over PathForward.
	useHTTP bool
}

// get returns the stream to addr, dialing it if needed. useHTTP (with no
// stream and no error) means: forward this write over PathForward.
func (ss *streams) get(ctx context.Context, addr, from string, timeout time.Duration) (s *stream, useHTTP bool, err error) {
	now := time.Now()
	ss.mu.Lock()
	if t, ok := ss.http[addr]; ok && now.Sub(t) < streamRetryAfter {
		ss.mu.Unlock()
		return nil, true, nil
	}
	for a, sl := range ss.slots {
		if a != addr && sl.s != nil && sl.s.closeIfIdle(now.Add(-streamIdle)) {
			delete(ss.slots, a)
		}
	}
	sl := ss.slots[addr]
	if sl != nil {
		select {
		case <-sl.ready:
			if sl.s == nil || !sl.s.alive() {
				sl = nil // failed dial or failed stream: dial again
			}
		default: // a dial in progress
		}
	}
	dial := sl == nil
	if dial {
		sl = &streamSlot{ready: make(chan struct{})}
		ss.slots[addr] = sl
	}
	ss.mu.Unlock()
	if dial {
		s, unsupported, err := openStream(ctx, addr, from, ss.tls, timeout, ss.log)
		var op *net.OpError
		switch {
		case err == nil:
			ss.opened.Add(1)
			sl.s = s
			ss.log.Info("forwarding stream opened", "leader", addr)
		case unsupported:
			ss.mu.Lock()
			ss.http[addr] = time.Now()
			ss.mu.Unlock()
			sl.useHTTP = true
			ss.log.Info("the leader takes no forwarding stream (an older build): forwarding over HTTP", "leader", addr, "retry_after", streamRetryAfter)
		case errors.As(err, &op) && op.Op == "dial":
			sl.err = err // unreachable: nothing was sent
		default:
			sl.useHTTP = true // the upgrade failed: this write goes over HTTP
			ss.log.Warn("forwarding stream not opened: this write goes over HTTP", "leader", addr, "error", err)
		}
		close(sl.ready)
	}
	select {
	case <-sl.ready:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	if sl.useHTTP || sl.err != nil {
		return nil, sl.useHTTP, sl.err
	}
	return sl.s, false, nil
}

// close closes every stream.
func (ss *streams) close() {
	ss.mu.Lock()
	slots := ss.slots
	ss.slots = map[string]*streamSlot{}
	ss.mu.Unlock()
	for _, sl := range slots {
		select {
		case <-sl.ready:
			if sl.s != nil {
				sl.s.fail(errors.New("client closed"))
			}
		default:
		}
	}
}

// open is the number of streams this client holds open.
func (ss *streams) open() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n := 0
	for _, sl := range ss.slots {
		select {
		case <-sl.ready:
			if sl.s != nil && sl.s.alive() {
				n++
			}
		default:
		}
	}
	return n
}
