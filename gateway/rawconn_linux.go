package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// rawConn is a TCP connection whose reads and writes enter the kernel with
// syscall.RawSyscall rather than syscall.Syscall. The socket is
// non-blocking and a call that would block returns EAGAIN, after which the
// runtime's network poller waits for readiness exactly as for net.Conn
// (syscall.RawConn), deadlines included. Such calls never block, so they
// need not tell the scheduler they might: with Syscall, a thread that the
// kernel deschedules inside a write (a loopback write runs the receiver's
// TCP stack and wakes it, which often preempts the writer on its way out)
// looks like a thread blocked in a system call, sysmon takes its P away
// and wakes another thread to run it, and the scheduler churns: sysmon
// polling every 20 µs, futex wake-ups, extra context switches. Measured on
// the 2-vCPU benchmark machine (docs/gateway.md#measured): per proxied
// request, nanosleep + futex + epoll_pwait calls went from 1.1–1.7 to
// 0.1–0.2, context switches from 1.2–1.7 to 1.0–1.1, CPU time -9%. The
// price: a thread preempted inside a write keeps its P, which lengthens
// the latency tail when the CPUs are oversubscribed (Options.PlainSocketIO
// turns this off).
//
// Everything but Read, Write and (for upstream connections) the deadline
// setters is the embedded *net.TCPConn's.
type rawConn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu  sync.Mutex // one Read at a time owns rbuf, rn, rerr
	rbuf []byte
	rn   int
	rerr syscall.Errno
	rfn  func(uintptr) bool // c.read1, bound once: no allocation per call

	wmu  sync.Mutex
	wbuf []byte
	wn   int
	werr syscall.Errno
	wfn  func(uintptr) bool

	// merge: see SetWriteDeadline.
	merge  bool
	dmu    sync.Mutex
	known  bool // rd and wd are the deadlines in force
	rd, wd time.Time
}

// maxRawIO bounds one read or write call, so that a large body is copied
// in steps between which the goroutine can be preempted.
const maxRawIO = 1 << 20

// newRawConn wraps a *net.TCPConn; any other connection is returned as is.
// merge is for a connection used by one request at a time that writes the
// request, then reads the answer under the same deadline: the upstream
// connections of a fasthttp.HostClient.
func newRawConn(c net.Conn, merge bool) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawConn{TCPConn: tc, rc: rc, merge: merge}
	r.rfn, r.wfn = r.read1, r.write1
	return r
}

// Read behaves as net.Conn's: io.EOF at the end of the stream, errors
// wrapped in a *net.OpError with Op "read".
func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerr = p[:min(len(p), maxRawIO)], 0, 0
	err := c.rc.Read(c.rfn)
	n, errno := c.rn, c.rerr
	c.rbuf = nil
	c.rmu.Unlock()
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	raceRead()
	return n, nil
}

// read1 makes one read(2); false asks the poller to wait for readability.
// The first read(2) after a write usually returns EAGAIN (the peer has not
// answered yet), but it cannot be skipped: RawRead clears the poller's
// readiness flag before calling read1, so an answer that arrived before
// Read would never wake a wait that did not try read(2) first.
func (c *rawConn) read1(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case 0:
			c.rn = int(n)
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.rerr = e
			return true
		}
	}
}

// Write writes all of p unless an error occurs, as net.Conn's does.
func (c *rawConn) Write(p []byte) (int, error) {
	raceWrote()
	c.wmu.Lock()
	c.wbuf, c.wn, c.werr = p, 0, 0
	var err error
	if len(p) > 0 {
		err = c.rc.Write(c.wfn)
	}
	n, errno := c.wn, c.werr
	c.wbuf = nil
	c.wmu.Unlock()
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// write1 writes until done, an error, or a full socket buffer (false:
// the poller waits for writability).
func (c *rawConn) write1(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		b := c.wbuf[c.wn:]
		b = b[:min(len(b), maxRawIO)]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// opError shapes an error as net.Conn's own: a *net.OpError with op "read"
// or "write" (syscall.RawConn's say "raw-read" and "raw-write").
func (c *rawConn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		oe.Op = op
		return oe
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// SetWriteDeadline on a merging connection sets the read deadline too:
// fasthttp's client sets the write deadline, writes the request, then sets
// the read deadline to the same time, which is then already in force. One
// runtime timer update per request instead of two, and one timer serves
// both directions while their deadlines are equal.
func (c *rawConn) SetWriteDeadline(t time.Time) error {
	if !c.merge {
		return c.TCPConn.SetWriteDeadline(t)
	}
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if c.known && t.Equal(c.wd) && t.Equal(c.rd) {
		return nil
	}
	return c.setBoth(t)
}

// SetReadDeadline on a merging connection skips the update when t is the
// deadline already in force.
func (c *rawConn) SetReadDeadline(t time.Time) error {
	if !c.merge {
		return c.TCPConn.SetReadDeadline(t)
	}
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if c.known && t.Equal(c.rd) {
		return nil
	}
	if err := c.TCPConn.SetReadDeadline(t); err != nil {
		c.known = false
		return err
	}
	c.rd = t
	return nil
}

func (c *rawConn) SetDeadline(t time.Time) error {
	if !c.merge {
		return c.TCPConn.SetDeadline(t)
	}
	c.dmu.Lock()
	defer c.dmu.Unlock()
	return c.setBoth(t)
}

// setBoth sets both deadlines; c.dmu is held.
func (c *rawConn) setBoth(t time.Time) error {
	if err := c.TCPConn.SetDeadline(t); err != nil {
		c.known = false
		return err
	}
	c.known, c.rd, c.wd = true, t, t
	return nil
}
