package peerproto

import (
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/internal/sockpeek"
)

// errStaleConn: a pooled connection was closed by the peer while it sat
// idle (the peer process was killed or restarted); nothing was written on
// it, so the request may go out again on another connection.
var errStaleConn = errors.New("pooled connection closed by the peer")

// checkedConn is a connection to a peer that, before the first write of a
// request on a connection that was used before, checks that the peer has
// not closed it. Without that, a write forwarded on a connection to a
// leader that was killed and restarted at the same address is sent into
// a dead socket: the answer never comes, and the write's outcome is
// unknown although the leader never saw it.
type checkedConn struct {
	net.Conn
	// used: a read happened since the last write, so the next write
	// starts a new request on a connection that may have sat idle.
	used bool
}

func (c *checkedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.used = true
	}
	return n, err
}

func (c *checkedConn) Write(p []byte) (int, error) {
	if c.used {
		c.used = false
		if sc, ok := c.Conn.(syscall.Conn); ok && sockpeek.Peek(sc) == sockpeek.Closed {
			return 0, errStaleConn
		}
	}
	return c.Conn.Write(p)
}

// dial is the client's dialer: fasthttp's, with the check above.
func dial(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := fasthttp.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &checkedConn{Conn: c}, nil
}

// retryStale lets the client send a request again only when it was never
// written: on a pooled connection the peer had closed.
func retryStale(_ *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
	return false, errors.Is(err, errStaleConn)
}
