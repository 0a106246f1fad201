package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rawPair returns a rawConn and the plain peer it talks to.
func rawPair(t *testing.T) (*rawConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	rc, ok := newRawConn(c).(*rawConn)
	if !ok {
		t.Fatal("a *net.TCPConn was not wrapped")
	}
	t.Cleanup(func() { rc.Close(); peer.Close() })
	return rc, peer
}

func TestRawConnLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if c := newRawConn(a); c != a {
		t.Fatalf("net.Pipe wrapped: %T", c)
	}
}

// TestRawConnTransfersBothWays sends 8 MiB each way at once, so that
// writes fill the socket buffers (partial writes, EAGAIN, poller waits).
func TestRawConnTransfersBothWays(t *testing.T) {
	rc, peer := rawPair(t)
	// Small buffers: the writes fill them many times over.
	_ = rc.SetWriteBuffer(16 << 10)
	_ = rc.SetReadBuffer(16 << 10)
	_ = peer.(*net.TCPConn).SetReadBuffer(16 << 10)
	_ = peer.(*net.TCPConn).SetWriteBuffer(16 << 10)
	const n = 8 << 20
	sum := func(c net.Conn, out chan<- [32]byte) {
		h := sha256.New()
		if _, err := io.CopyN(h, c, n); err != nil {
			t.Error(err)
		}
		var s [32]byte
		copy(s[:], h.Sum(nil))
		out <- s
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	want := sha256.Sum256(data)
	gotPeer, gotRaw := make(chan [32]byte, 1), make(chan [32]byte, 1)
	go sum(peer, gotPeer)
	go sum(rc, gotRaw)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if w, err := rc.Write(data); err != nil || w != n {
			t.Errorf("raw write: %d, %v", w, err)
		}
	}()
	go func() {
		defer wg.Done()
		if w, err := peer.Write(data); err != nil || w != n {
			t.Errorf("peer write: %d, %v", w, err)
		}
	}()
	wg.Wait()
	if <-gotPeer != want || <-gotRaw != want {
		t.Fatal("data corrupted in transit")
	}
}

func TestRawConnEOFAndErrors(t *testing.T) {
	rc, peer := rawPair(t)
	if _, err := peer.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	b, err := io.ReadAll(rc)
	if err != nil || string(b) != "bye" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	if n, err := rc.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("read after EOF = %d, %v", n, err)
	}
	if n, err := rc.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read = %d, %v", n, err)
	}
	// The peer is gone: writing soon fails with EPIPE or ECONNRESET,
	// shaped as net.Conn's errors are.
	var werr error
	for range 100 {
		if _, werr = rc.Write(bytes.Repeat([]byte("x"), 64<<10)); werr != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var oe *net.OpError
	if !errors.As(werr, &oe) || oe.Op != "write" ||
		!(errors.Is(werr, syscall.EPIPE) || errors.Is(werr, syscall.ECONNRESET)) {
		t.Fatalf("write to a closed peer: %#v", werr)
	}
	rc.Close()
	if _, err := rc.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	if _, err := rc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}

func TestRawConnReadDeadlineAndClose(t *testing.T) {
	rc, _ := rawPair(t)
	_ = rc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := rc.Read(make([]byte, 8))
	var ne net.Error
	var oe *net.OpError
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) ||
		!errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("read past the deadline: %#v", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Fatalf("deadline fired after %v", d)
	}
	_ = rc.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := rc.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	rc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked read after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock a read")
	}
}

// Copies that bufio.Writer.ReadFrom and io.Copy make (how fasthttp moves a
// streamed body) go through rawConn's Read and Write, so the deadlines it
// arms lazily hold: a peer that stops reading or writing fails the copy at
// the deadline, and a deadline armed earlier that has since expired does
// not fail a later copy whose own deadline is far off.
func TestRawConnDeadlinesHoldForCopies(t *testing.T) {
	const big = 256 << 20 // more than any socket buffer: the copy must wait
	bufferedWrite := func(rc *rawConn) error {
		_, err := bufio.NewWriterSize(rc, 4<<10).ReadFrom(io.LimitReader(zeroReader{}, big))
		return err
	}
	copyRead := func(rc *rawConn) error {
		_, err := io.Copy(io.Discard, rc)
		return err
	}
	for _, tc := range []struct {
		name string
		set  func(*rawConn, time.Time) error
		copy func(*rawConn) error
	}{
		{"bufio.Writer.ReadFrom to a peer that does not read", (*rawConn).SetWriteDeadline, bufferedWrite},
		{"io.Copy from a peer that does not write", (*rawConn).SetReadDeadline, copyRead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, _ := rawPair(t)
			_ = tc.set(rc, time.Now().Add(100*time.Millisecond))
			start := time.Now()
			err := within(t, 5*time.Second, func() error { return tc.copy(rc) })
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("copy ended with %v, want a timeout", err)
			}
			if d := time.Since(start); d < 80*time.Millisecond {
				t.Fatalf("timed out after %v, before the deadline", d)
			}
		})
	}
	t.Run("an expired armed deadline does not fail a later copy", func(t *testing.T) {
		rc, peer := rawPair(t)
		_ = rc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		if err := within(t, 5*time.Second, func() error { return bufferedWrite(rc) }); err == nil {
			t.Fatal("no timeout with a peer that does not read")
		}
		// The peer reads from now on; the new deadline is far off.
		go func() { _, _ = io.Copy(io.Discard, peer) }()
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		const size = 8 << 20
		err := within(t, 5*time.Second, func() error {
			n, err := bufio.NewWriterSize(rc, 4<<10).ReadFrom(io.LimitReader(zeroReader{}, size))
			if err == nil && n != size {
				err = io.ErrShortWrite
			}
			return err
		})
		if err != nil {
			t.Fatalf("copy under a fresh deadline: %v", err)
		}
	})
}

// within runs f and returns its error, failing the test if f has not
// returned after d (the connection's cleanup then ends it).
func within(t *testing.T, d time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("still blocked after %v: no deadline bounded it", d)
		return nil
	}
}

func TestDeadlineNeedsArm(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name        string
		want, armed time.Time
		slack       time.Duration
		arm         bool
	}{
		{"same", at(100), at(100), 0, false},
		{"none asked, none armed", time.Time{}, time.Time{}, 0, false},
		{"none asked, one armed", time.Time{}, at(100), time.Second, true},
		{"one asked, none armed", at(100), time.Time{}, 0, true},
		{"earlier than armed", at(99), at(100), time.Second, true},
		{"later within slack", at(150), at(100), 50 * time.Millisecond, false},
		{"later past slack", at(151), at(100), 50 * time.Millisecond, true},
	} {
		d := deadline{want: tc.want, armed: tc.armed, slack: tc.slack}
		if got := d.needsArm(); got != tc.arm {
			t.Errorf("%s: needsArm = %v, want %v", tc.name, got, tc.arm)
		}
	}
}

// TestRawConnArmsDeadlinesLazily: request after request with a deadline
// that moves a little later each time (fasthttp's pattern), the runtime
// poller is armed once, not once per Set*Deadline.
func TestRawConnArmsDeadlinesLazily(t *testing.T) {
	rc, peer := rawPair(t)
	msg, buf := []byte("0123456789abcdef"), make([]byte, 64)
	const rounds = 200
	for i := range rounds {
		d := time.Now().Add(time.Hour + time.Duration(i)*time.Millisecond)
		_ = rc.SetWriteDeadline(d)
		if _, err := rc.Write(msg); err != nil {
			t.Fatal(err)
		}
		_ = rc.SetReadDeadline(d)
		go func() {
			if _, err := io.ReadFull(peer, buf[:len(msg)]); err == nil {
				_, _ = peer.Write(msg)
			}
		}()
		var got [16]byte
		if _, err := io.ReadFull(rc, got[:]); err != nil {
			t.Fatal(err)
		}
	}
	rc.dmu.Lock()
	arms := rc.arms
	rc.dmu.Unlock()
	if arms > 2 {
		t.Fatalf("%d deadlines armed in %d round trips (4 set per round trip)", arms, rounds)
	}
}

// TestRawConnDeadlineSemantics: however lazily armed, the deadline in
// force is the one last asked for.
func TestRawConnDeadlineSemantics(t *testing.T) {
	readAfter := func(rc *rawConn, peer net.Conn, after time.Duration) (time.Duration, error) {
		go func() {
			time.Sleep(after)
			_, _ = peer.Write([]byte("x"))
		}()
		start := time.Now()
		_, err := rc.Read(make([]byte, 8))
		return time.Since(start), err
	}
	t.Run("tightened", func(t *testing.T) {
		rc, peer := rawPair(t)
		_ = rc.SetReadDeadline(time.Now().Add(time.Hour))
		if _, err := readAfter(rc, peer, 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		_ = rc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		took, err := readAfter(rc, peer, 3*time.Second)
		if !errors.Is(err, os.ErrDeadlineExceeded) || took > 2*time.Second {
			t.Fatalf("read under a tightened deadline: %v after %v", err, took)
		}
	})
	t.Run("moved later within the slack", func(t *testing.T) {
		rc, peer := rawPair(t)
		t0 := time.Now()
		_ = rc.SetReadDeadline(t0.Add(1600 * time.Millisecond))
		if _, err := readAfter(rc, peer, 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		// 150 ms later: within the slack (~200 ms), so not re-armed
		// until the armed deadline fires; the read then waits on.
		_ = rc.SetReadDeadline(t0.Add(1750 * time.Millisecond))
		if took, err := readAfter(rc, peer, time.Until(t0.Add(1675*time.Millisecond))); err != nil {
			t.Fatalf("read before the moved deadline: %v after %v", err, took)
		}
		rc.dmu.Lock()
		arms := rc.arms
		rc.dmu.Unlock()
		if arms != 2 {
			t.Fatalf("%d arms, want 2 (the first deadline, then the moved one when the first fired)", arms)
		}
	})
	t.Run("cleared", func(t *testing.T) {
		rc, peer := rawPair(t)
		_ = rc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := readAfter(rc, peer, 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		_ = rc.SetReadDeadline(time.Time{})
		if took, err := readAfter(rc, peer, 150*time.Millisecond); err != nil {
			t.Fatalf("read without a deadline: %v after %v", err, took)
		}
	})
	t.Run("past deadline interrupts a waiting read", func(t *testing.T) {
		rc, _ := rawPair(t)
		_ = rc.SetReadDeadline(time.Now().Add(time.Hour))
		done := make(chan error, 1)
		go func() {
			_, err := rc.Read(make([]byte, 8))
			done <- err
		}()
		time.Sleep(30 * time.Millisecond)
		_ = rc.SetReadDeadline(time.Now().Add(-time.Second))
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("interrupted read: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("a past deadline did not interrupt a waiting read")
		}
	})
	t.Run("write", func(t *testing.T) {
		rc, _ := rawPair(t)
		_ = rc.SetWriteBuffer(16 << 10)
		_ = rc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		start := time.Now()
		// The peer never reads: the socket buffers fill and the write waits.
		n, err := rc.Write(make([]byte, 32<<20))
		if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || time.Since(start) > 3*time.Second {
			t.Fatalf("write past the deadline: %d bytes, %v after %v", n, err, time.Since(start))
		}
		_ = rc.SetDeadline(time.Now().Add(-time.Second))
		if _, err := rc.Write(make([]byte, 1<<20)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write past an expired deadline: %v", err)
		}
	})
}

func TestRawConnDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	rc, peer := rawPair(t)
	msg, buf := []byte("0123456789abcdef"), make([]byte, 64)
	d := time.Now().Add(time.Hour)
	allocs := testing.AllocsPerRun(200, func() {
		_ = rc.SetWriteDeadline(d)
		if _, err := rc.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write(msg); err != nil {
			t.Fatal(err)
		}
		_ = rc.SetReadDeadline(d)
		if _, err := io.ReadFull(rc, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per round trip", allocs)
	}
}

// A client connection closed with the client's bytes unread is half-closed
// (the client reads the end of the stream, not a reset) and drained until
// the client stops sending for the linger timeout; one with nothing unread
// closes at once.
func TestRawConnLingeringClose(t *testing.T) {
	l := newLingerer(newMetrics(nil))
	l.timeout, l.total = 200*time.Millisecond, 5*time.Second
	linger := func(t *testing.T) (*rawConn, net.Conn) {
		rc, peer := rawPair(t)
		rc.linger = l
		return rc, peer
	}
	t.Run("unread bytes: half-close, drain, then close", func(t *testing.T) {
		rc, peer := linger(t)
		if _, err := peer.Write(make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the bytes reach rc's socket
		if !hasUnread(rc.tcpConn) {
			t.Fatal("hasUnread: false with 64 KiB waiting")
		}
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
		if len(l.slots) != 1 {
			t.Fatalf("%d connections lingering, want 1", len(l.slots))
		}
		// The client still sends after the answer; no reset comes back.
		for range 10 {
			if _, err := peer.Write(make([]byte, 64<<10)); err != nil {
				t.Fatalf("the client's write after a lingering close: %v", err)
			}
		}
		_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := peer.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("the client read %d, %v: want the end of the stream", n, err)
		}
		// The client goes quiet: the linger ends after its timeout.
		deadline := time.Now().Add(3 * time.Second)
		for len(l.slots) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("still lingering long after the client went quiet")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("nothing unread: closed at once", func(t *testing.T) {
		rc, peer := linger(t)
		if hasUnread(rc.tcpConn) {
			t.Fatal("hasUnread: true with nothing sent")
		}
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
		if len(l.slots) != 0 {
			t.Fatal("lingering with nothing unread")
		}
		_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read after close: %v", err)
		}
	})
}
