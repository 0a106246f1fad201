package gateway

import (
	"net"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Lingering close, as nginx's lingering_close. The gateway answers some
// requests before it has read their bodies: an upload refused with a 401,
// 404 or 429, or one an upstream answered early with a 413. Closing such a
// connection while the client's bytes sit unread makes the kernel send a
// reset, which can destroy the answer at the client before it is read (Go's
// net/http client then reports its failed write instead). So when unread
// bytes are waiting, the gateway first shuts down its sending side — the
// client gets the answer and the end of the stream — and reads and drops
// what still arrives, for up to lingerTimeout between two reads and
// lingerTime in all (nginx's lingering_timeout and lingering_time), before
// it closes.
const (
	lingerTimeout = 5 * time.Second
	lingerTime    = 30 * time.Second
	// maxLingering bounds the connections lingering at once (each holds a
	// socket and a goroutine); beyond it they close at once, as before.
	maxLingering = 1024
)

// lingerable is a connection that can be half-closed and asked for unread bytes.
type lingerable interface {
	net.Conn
	CloseWrite() error
	SyscallConn() (syscall.RawConn, error)
}

// lingerer closes client connections, lingering when the client's bytes
// are waiting unread.
type lingerer struct {
	slots   chan struct{}
	timeout time.Duration // between two reads
	total   time.Duration // in all
	started prometheus.Counter
	full    prometheus.Counter
}

func newLingerer(m *metrics) *lingerer {
	return &lingerer{
		slots: make(chan struct{}, maxLingering), timeout: lingerTimeout, total: lingerTime,
		started: m.lingering.WithLabelValues("lingered"), full: m.lingering.WithLabelValues("too_many"),
	}
}

// close closes c, lingering first if unread bytes are waiting.
func (l *lingerer) close(c lingerable) error {
	if !hasUnread(c) {
		return c.Close()
	}
	select {
	case l.slots <- struct{}{}:
	default:
		l.full.Inc()
		return c.Close()
	}
	if err := c.CloseWrite(); err != nil {
		<-l.slots
		return c.Close()
	}
	l.started.Inc()
	go l.drain(c)
	return nil
}

// drain reads and drops what the client still sends, then closes c.
func (l *lingerer) drain(c lingerable) {
	defer func() { <-l.slots }()
	defer c.Close()
	end := time.Now().Add(l.total)
	buf := make([]byte, 16<<10)
	for {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		deadline := now.Add(l.timeout)
		if deadline.After(end) {
			deadline = end
		}
		if c.SetReadDeadline(deadline) != nil {
			return
		}
		if _, err := c.Read(buf); err != nil {
			return // the client's end, a reset, or the timeout
		}
	}
}

// lingerConn is a plain client connection (Options.PlainSocketIO) whose
// Close lingers; rawConn does the same itself.
type lingerConn struct {
	*net.TCPConn
	linger *lingerer
}

func (c lingerConn) Close() error { return c.linger.close(c.TCPConn) }

// lingerListener hands out client connections that close lingering. On
// Linux they are rawConns (socket calls with syscall.RawSyscall, see
// rawconn_linux.go) unless plain (Options.PlainSocketIO) is set; elsewhere
// plain ones.
type lingerListener struct {
	net.Listener
	linger *lingerer
	plain  bool
}

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	if l.plain {
		return lingerConn{TCPConn: tc, linger: l.linger}, nil
	}
	return newRawConnLingering(tc, l.linger), nil
}
