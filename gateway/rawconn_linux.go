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

	"github.com/nexus/nexus/internal/sockpeek"
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
// polling, futex wake-ups, extra context switches; raw calls make fewer of
// them and cost less CPU per proxied request (docs/gateway.md#measured
// has the figures). The price: a thread preempted inside a write keeps its
// P, which lengthens
// the latency tail when the CPUs are oversubscribed (Options.PlainSocketIO
// turns this off).
//
// Deadlines are armed in the runtime lazily (see deadline below).
// Everything but Read, Write and the deadline setters is the wrapped
// *net.TCPConn's, except ReadFrom and WriteTo (see tcpConn).
type rawConn struct {
	tcpConn
	rc syscall.RawConn

	rmu      sync.Mutex // one Read at a time owns rbuf, rn, rerr, rblocked
	rbuf     []byte
	rn       int
	rerr     syscall.Errno
	rblocked bool               // read1 found nothing to read and armed rd
	rfn      func(uintptr) bool // c.read1, bound once: no allocation per call

	wmu      sync.Mutex
	wbuf     []byte
	wn       int
	werr     syscall.Errno
	wblocked bool
	wfn      func(uintptr) bool

	linger *lingerer // a client connection's: Close lingers (nil: upstream)

	dmu    sync.Mutex // guards rd, wd and arms
	rd, wd deadline
	arms   int // deadlines armed in the runtime poller (for tests)
}

// deadline is one direction's deadline, as asked for and as armed in the
// runtime's poller. Arming (net.Conn's SetReadDeadline) costs two clock
// reads and a runtime timer update, and fasthttp asks for three to five
// deadlines per proxied request, nearly all of which only move later and
// never bound a wait, because the data is already there. So a deadline is
// only recorded when set, and armed when an operation is about to wait
// (or is waiting) if the armed one is later than asked, or earlier by more
// than a slack of an eighth of the armed timeout. An armed deadline that
// fires before the one asked for is re-armed and the wait resumed, so the
// deadline in force is always exactly the one asked for; what differs from
// net.Conn is only that an operation that need not wait succeeds even past
// its deadline ("fail instead of blocking", as net.Conn documents it).
// Under load a keep-alive connection re-arms about once per eighth of its
// timeout instead of several times per request.
type deadline struct {
	mode        byte      // 'r' or 'w': which of the poller's deadlines
	want, armed time.Time // zero: none (a new connection has none armed)
	waiting     bool      // an operation is waiting, or about to, on armed
	slack       time.Duration
}

// tcpConn is the part of *net.TCPConn that rawConn passes through. It
// leaves out ReadFrom and WriteTo: promoted, they let bufio.Writer.ReadFrom
// (how fasthttp copies a streamed body) and io.Copy move the bytes with the
// TCPConn's own read and write, around rawConn's Read and Write and the
// deadlines they arm lazily, so a streamed answer to a client that stopped
// reading, or an upload to an upstream that did, waited past its deadline
// for ever (TestRawConnDeadlinesHoldForCopies). rawConn has a ReadFrom of
// its own that writes through Write.
type tcpConn interface {
	net.Conn
	CloseRead() error
	CloseWrite() error
	SetKeepAlive(keepalive bool) error
	SetKeepAlivePeriod(d time.Duration) error
	SetLinger(sec int) error
	SetNoDelay(noDelay bool) error
	SetReadBuffer(bytes int) error
	SetWriteBuffer(bytes int) error
	SyscallConn() (syscall.RawConn, error)
}

// slackDivisor: an armed deadline up to timeout/slackDivisor earlier than
// the one asked for is left in place.
const slackDivisor = 8

// needsArm reports whether an operation about to wait must re-arm d.
func (d *deadline) needsArm() bool {
	switch {
	case d.want.IsZero():
		return !d.armed.IsZero()
	case d.armed.IsZero(), d.want.Before(d.armed):
		return true
	default:
		return d.want.Sub(d.armed) > d.slack
	}
}

// maxRawIO bounds one read or write call, so that a large body is copied
// in steps between which the goroutine can be preempted.
const maxRawIO = 1 << 20

// newRawConn wraps a *net.TCPConn; any other connection is returned as is.
func newRawConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawConn{tcpConn: tc, rc: rc}
	r.rfn, r.wfn = r.read1, r.write1
	r.rd.mode, r.wd.mode = 'r', 'w'
	return r
}

// newRawConnLingering wraps a client connection whose Close lingers (see
// lingerer).
func newRawConnLingering(tc *net.TCPConn, l *lingerer) net.Conn {
	c := newRawConn(tc)
	if r, ok := c.(*rawConn); ok {
		r.linger = l
		return r
	}
	return lingerConn{TCPConn: tc, linger: l}
}

// Close closes the connection, lingering first if it is a client's and the
// client's bytes are waiting unread.
func (c *rawConn) Close() error {
	if c.linger != nil {
		return c.linger.close(c.tcpConn)
	}
	return c.tcpConn.Close()
}

// hasUnread reports whether bytes the peer sent are waiting to be read.
func hasUnread(c lingerable) bool { return sockpeek.Peek(c) == sockpeek.Data }

// Read behaves as net.Conn's: io.EOF at the end of the stream, errors
// wrapped in a *net.OpError with Op "read".
func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerr = p[:min(len(p), maxRawIO)], 0, 0
	err := c.pollIO(&c.rd, &c.rblocked)
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
			c.rblocked = true
			c.aboutToWait(&c.rd)
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
		err = c.pollIO(&c.wd, &c.wblocked)
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

// copyStep is the step in which ReadFrom copies a body: bufio.Writer hands
// a streamed body to ReadFrom once its own 16 KiB buffer is empty, and
// larger steps mean fewer system calls per megabyte; 64 KiB was the
// fastest step measured, 128 KiB no better (docs/gateway.md).
const copyStep = 64 << 10

// ReadFrom copies r to the connection through Write, so that the deadlines
// hold (see tcpConn), in steps of copyStep; a reader that can write itself
// out (io.WriterTo) does so. One buffer per copy, as net.TCPConn's ReadFrom
// allocated for such readers.
func (c *rawConn) ReadFrom(r io.Reader) (int64, error) {
	if wt, ok := r.(io.WriterTo); ok {
		return wt.WriteTo(writerOnly{c})
	}
	return io.CopyBuffer(writerOnly{c}, r, make([]byte, copyStep))
}

// writerOnly hides ReadFrom, so that the copies above do not call it back.
type writerOnly struct{ io.Writer }

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
			c.wblocked = true
			c.aboutToWait(&c.wd)
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

// pollIO makes one Read (d is c.rd) or Write (c.wd) through the runtime
// poller with c.rfn or c.wfn, and resumes the wait when a deadline armed
// within the slack fired before the one asked for. blocked is c.rblocked
// or c.wblocked, owned by the caller's c.rmu or c.wmu.
func (c *rawConn) pollIO(d *deadline, blocked *bool) error {
	for {
		var err error
		if d.mode == 'r' {
			err = c.rc.Read(c.rfn)
		} else {
			err = c.rc.Write(c.wfn)
		}
		if *blocked {
			*blocked = false
			c.doneWaiting(d)
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || !c.firedEarly(d) {
			return err
		}
	}
}

func (c *rawConn) SetReadDeadline(t time.Time) error  { return c.setDeadline(&c.rd, t) }
func (c *rawConn) SetWriteDeadline(t time.Time) error { return c.setDeadline(&c.wd, t) }

func (c *rawConn) SetDeadline(t time.Time) error {
	err := c.setDeadline(&c.rd, t)
	if werr := c.setDeadline(&c.wd, t); err == nil {
		err = werr
	}
	return err
}

// setDeadline records t; it arms it only for an operation already waiting
// (another goroutine may set a past deadline to interrupt a blocked Read).
func (c *rawConn) setDeadline(d *deadline, t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	d.want = t
	if d.waiting && d.needsArm() {
		return c.arm(d)
	}
	return nil
}

// aboutToWait is called by read1/write1 when the poller is to wait: from
// here until doneWaiting, setDeadline arms at once.
func (c *rawConn) aboutToWait(d *deadline) {
	c.dmu.Lock()
	d.waiting = true
	if d.needsArm() {
		// An error (a closed connection) surfaces from the wait itself.
		_ = c.arm(d)
	}
	c.dmu.Unlock()
}

func (c *rawConn) doneWaiting(d *deadline) {
	c.dmu.Lock()
	d.waiting = false
	c.dmu.Unlock()
}

// firedEarly is called after a wait ended with a timeout: if the deadline
// asked for is still ahead, the armed one was an earlier one within the
// slack; it arms the right one and reports that the wait should resume.
func (c *rawConn) firedEarly(d *deadline) bool {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if !d.want.IsZero() && !time.Now().Before(d.want) {
		return false
	}
	if d.armed.Equal(d.want) {
		return false // the deadline in force expired: a true timeout
	}
	return c.arm(d) == nil
}

// arm hands d.want to the runtime poller; c.dmu is held. A failed arm
// (a closed connection) left the poller's deadline as it was.
func (c *rawConn) arm(d *deadline) error {
	var err error
	if d.mode == 'r' {
		err = c.tcpConn.SetReadDeadline(d.want)
	} else {
		err = c.tcpConn.SetWriteDeadline(d.want)
	}
	c.arms++
	if err != nil {
		return err
	}
	d.armed = d.want
	d.slack = 0
	if !d.want.IsZero() {
		d.slack = max(time.Until(d.want), 0) / slackDivisor
	}
	return nil
}
