package peerproto_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/cluster/peerproto"
	"github.com/nexus/nexus/fsm/command"
)

// echoNode answers each write with the index written in its command, after
// release is closed (if set).
type echoNode struct {
	node
	release chan struct{}
	calls   sync.WaitGroup
}

func (n *echoNode) Forwarded(ctx context.Context, mac, from string, cmd []byte) (*command.Result, error) {
	if !peerproto.Verify(secret, mac, cmd) {
		return nil, peerproto.ErrBadMAC
	}
	n.calls.Done()
	if n.release != nil {
		<-n.release
	}
	idx, err := strconv.ParseUint(string(cmd), 10, 64)
	if err != nil {
		return nil, err
	}
	return &command.Result{Index: idx}, nil
}

func startService(t *testing.T, n peerproto.Node) (string, *peerproto.Service) {
	t.Helper()
	svc := peerproto.NewService(n, 2*time.Second, 0)
	addr := serve(t, func(ctx *fasthttp.RequestCtx) { svc.Serve(ctx) })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		svc.Close(ctx)
	})
	return addr, svc
}

// Concurrent writes share one stream and each gets its own answer.
func TestForwardStreamConcurrent(t *testing.T) {
	n := &echoNode{}
	addr, _ := startService(t, n)
	c := peerproto.NewClient(peerproto.Config{})
	defer c.Close()
	const writers = 64
	n.calls.Add(writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Forward(context.Background(), addr, secret, "n2", []byte(strconv.Itoa(i+1)), 2*time.Second)
			if err == nil && res.Index != uint64(i+1) {
				err = fmt.Errorf("write %d answered with index %d", i+1, res.Index)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := c.ForwardStats()
	if st.Stream != writers || st.HTTP != 0 || st.Opened != 1 || st.Open != 1 {
		t.Fatalf("stats %+v: want %d writes on one stream", st, writers)
	}
}

// A leader without streams (an older build answers 404 on the path) gets
// the write over PathForward, and the client does not ask again at once.
func TestForwardStreamFallback(t *testing.T) {
	n := &node{forwardRes: &command.Result{Index: 9}}
	svc := peerproto.NewService(n, 2*time.Second, 0)
	upgrades := 0
	addr := serve(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == peerproto.PathForwardStream {
			upgrades++
			ctx.SetStatusCode(404)
			return
		}
		svc.Serve(ctx)
	})
	c := peerproto.NewClient(peerproto.Config{})
	defer c.Close()
	for range 3 {
		if res, err := c.Forward(context.Background(), addr, secret, "n2", []byte("cmd"), time.Second); err != nil || res.Index != 9 {
			t.Fatalf("Forward = %+v, %v", res, err)
		}
	}
	if st := c.ForwardStats(); st.HTTP != 3 || st.Stream != 0 || upgrades != 1 {
		t.Fatalf("stats %+v after %d upgrade requests: want 3 writes over HTTP after one refusal", st, upgrades)
	}
}

// A stream that breaks with writes in flight: each may have been applied
// (outcome unknown, never no_leader); the next write opens a new stream.
func TestForwardStreamBrokenInFlight(t *testing.T) {
	n := &echoNode{release: make(chan struct{})}
	addr, svc := startService(t, n)
	var logs syncBuffer
	c := peerproto.NewClient(peerproto.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer c.Close()
	const writers = 4
	n.calls.Add(writers)
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			_, err := c.Forward(context.Background(), addr, secret, "n2", []byte(strconv.Itoa(i+1)), 5*time.Second)
			errs <- err
		}()
	}
	n.calls.Wait() // all four are being applied on the leader
	cut, cancel := context.WithCancel(context.Background())
	cancel()
	svc.Close(cut) // the connection closes under them
	for range writers {
		if err := <-errs; !errors.Is(err, command.ErrOutcomeUnknown) || errors.Is(err, command.ErrNoLeader) {
			t.Fatalf("a write in flight on a broken stream: %v, want outcome unknown", err)
		}
	}
	close(n.release)
	for _, want := range []string{`msg="forwarding stream opened"`, `msg="forwarding stream lost with writes in flight"`, "in_flight=4"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("the log lacks %s:\n%s", want, logs.String())
		}
	}
	// A new service at another address (the next leader) takes writes.
	n2 := &echoNode{}
	addr2, _ := startService(t, n2)
	n2.calls.Add(1)
	if res, err := c.Forward(context.Background(), addr2, secret, "n2", []byte("7"), time.Second); err != nil || res.Index != 7 {
		t.Fatalf("Forward to the next leader = %+v, %v", res, err)
	}
}

// syncBuffer is a log destination for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A write whose answer does not come in time may still be applied: outcome
// unknown.
func TestForwardStreamTimeout(t *testing.T) {
	n := &echoNode{release: make(chan struct{})}
	defer close(n.release)
	addr, _ := startService(t, n)
	c := peerproto.NewClient(peerproto.Config{})
	defer c.Close()
	n.calls.Add(1)
	if _, err := c.Forward(context.Background(), addr, secret, "n2", []byte("1"), 200*time.Millisecond); !errors.Is(err, command.ErrOutcomeUnknown) {
		t.Fatalf("a write without an answer: %v, want outcome unknown", err)
	}
}

// What the leader does with bad frames: a write not signed with the
// cluster secret is refused (403, the follower's no_leader) and the stream
// goes on; a frame above the size limit or cut short closes the stream
// without applying anything.
func TestForwardStreamBadFrames(t *testing.T) {
	n := &echoNode{}
	addr, _ := startService(t, n)
	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: %s\r\nContent-Length: 0\r\n\r\n", peerproto.PathForwardStream, peerproto.StreamProtocol)
		br := bufio.NewReader(conn)
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 101 Switching Protocols\r\n" {
			t.Fatalf("upgrade answer %q, %v", line, err)
		}
		for line != "\r\n" {
			if line, err = br.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		return conn, br
	}
	frame := func(id uint64, mac string, cmd []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(9+len(mac)+len(cmd)))
		b = binary.BigEndian.AppendUint64(b, id)
		b = append(b, byte(len(mac)))
		return append(append(b, mac...), cmd...)
	}
	readAnswer := func(br *bufio.Reader) (uint64, int, error) {
		var h [14]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return 0, 0, err
		}
		body := make([]byte, binary.BigEndian.Uint32(h[:])-10)
		_, err := io.ReadFull(br, body)
		return binary.BigEndian.Uint64(h[4:]), int(binary.BigEndian.Uint16(h[12:])), err
	}
	t.Run("bad mac, then a good write", func(t *testing.T) {
		conn, br := dial(t)
		n.calls.Add(1)
		conn.Write(frame(1, "wrong", []byte("5")))
		conn.Write(frame(2, peerproto.Sign(secret, []byte("6")), []byte("6")))
		got := map[uint64]int{}
		for range 2 {
			id, status, err := readAnswer(br)
			if err != nil {
				t.Fatal(err)
			}
			got[id] = status
		}
		if got[1] != 403 || got[2] != 200 {
			t.Fatalf("answers %v, want 1: 403, 2: 200", got)
		}
	})
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"too large", binary.BigEndian.AppendUint32(nil, 64<<20)},
		{"shorter than its header", binary.BigEndian.AppendUint32(nil, 3)},
		{"mac longer than the frame", append(binary.BigEndian.AppendUint32(nil, 10), 0, 0, 0, 0, 0, 0, 0, 1, 200, 'x')},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, br := dial(t)
			conn.Write(tc.raw)
			if _, _, err := readAnswer(br); err == nil {
				t.Fatal("the leader answered a malformed frame")
			}
		})
	}
}
