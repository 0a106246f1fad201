package gateway

import (
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

// rawPair returns a rawConn (merge as given) and the plain peer it talks to.
func rawPair(t *testing.T, merge bool) (*rawConn, net.Conn) {
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
	rc, ok := newRawConn(c, merge).(*rawConn)
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
	if c := newRawConn(a, false); c != a {
		t.Fatalf("net.Pipe wrapped: %T", c)
	}
}

// TestRawConnTransfersBothWays sends 8 MiB each way at once, so that
// writes fill the socket buffers (partial writes, EAGAIN, poller waits).
func TestRawConnTransfersBothWays(t *testing.T) {
	rc, peer := rawPair(t, false)
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
	rc, peer := rawPair(t, false)
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
	rc, _ := rawPair(t, false)
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

// TestRawConnMergedDeadlines: on an upstream connection the write
// deadline is applied to reads as well, and setting the read deadline to
// it again is a no-op; any other read deadline still applies.
func TestRawConnMergedDeadlines(t *testing.T) {
	rc, peer := rawPair(t, true)
	d := time.Now().Add(60 * time.Millisecond)
	if err := rc.SetWriteDeadline(d); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := rc.SetReadDeadline(d); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read under the merged deadline: %v", err)
	}
	// A later deadline, then none: the answer arrives and is read.
	if err := rc.SetWriteDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = peer.Write([]byte("pong"))
	}()
	b := make([]byte, 8)
	n, err := rc.Read(b)
	if err != nil || string(b[:n]) != "pong" {
		t.Fatalf("read without deadline: %q, %v", b[:n], err)
	}
	// An expired write deadline fails writes.
	if err := rc.SetDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past the deadline: %v", err)
	}
}

func TestRawConnDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	rc, peer := rawPair(t, true)
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
