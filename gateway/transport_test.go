package gateway

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// scriptedUpstream answers each request with raw bytes from answer, so
// that the test controls framing exactly. It counts accepted connections.
type scriptedUpstream struct {
	ln       net.Listener
	accepted atomic.Int64
	requests atomic.Int64
	// answer writes the reply to the n-th request (from 1) and reports
	// whether to close the connection after it.
	answer func(n int64, r *http.Request, w *bufio.Writer) (closeConn bool)
}

func startScripted(t *testing.T, answer func(n int64, r *http.Request, w *bufio.Writer) bool) *scriptedUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptedUpstream{ln: ln, answer: answer}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			go s.serve(c)
		}
	}()
	return s
}

func (s *scriptedUpstream) serve(c net.Conn) {
	defer c.Close()
	br, bw := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		closeConn := s.answer(s.requests.Add(1), r, bw)
		if bw.Flush() != nil || closeConn {
			return
		}
	}
}

// testUpstream is the gateway's upstream for addr with a 4 KiB buffer and
// 64 KiB limit for answers read whole.
func testUpstream(t *testing.T, addr string) *upstream {
	t.Helper()
	o := Options{BufferSize: 4 << 10, MaxBufferedResponse: 64 << 10}
	o.setDefaults()
	p := newUpstreamPool(&o, newMetrics(prometheus.NewRegistry()))
	t.Cleanup(p.closeAll)
	return p.get(addr)
}

// roundTrip sends one request through u and returns the answer with its
// body read to the end (which returns a streamed connection to the pool).
func roundTrip(t *testing.T, u *upstream, method string, stream bool, timeout time.Duration) (status int, body string, streamed bool, err error) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://" + u.addr + "/x")
	req.UseHostHeader = true
	req.Header.SetHost(u.addr)
	if method == "POST" {
		req.SetBodyString("payload")
	}
	err = u.do(req, resp, exchange{deadline: time.Now().Add(timeout), stream: stream, idempotent: method != "POST"})
	if err != nil {
		return 0, "", false, err
	}
	streamed = resp.IsBodyStream()
	return resp.StatusCode(), string(resp.Body()), streamed, nil
}

func TestTransportFraming(t *testing.T) {
	big := strings.Repeat("b", 5000) // above the 4 KiB buffer
	chunked := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
		"5\r\nhello\r\n6\r\n world\r\n0\r\n\x00X-Sum: 11\r\n\r\n" // \x00: the trailer comes in a later segment
	cases := []struct {
		name      string
		method    string
		reply     string
		closeConn bool
		stream    bool
		status    int
		body      string
		streamed  bool
		reused    bool // the second request goes over the first's connection
	}{
		{"small length, streaming route", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, true, 200, "hello", false, true},
		{"big length streams", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + big, false, true, 200, big, true, true},
		{"big length read whole", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + big, false, false, 200, big, false, true},
		{"chunked streams", "GET", chunked, false, true, 200, "hello world", true, true},
		{"chunked read whole, trailer consumed", "GET", chunked, false, false, 200, "hello world", false, true},
		{"close-delimited streams", "GET", "HTTP/1.1 200 OK\r\n\r\nuntil close", true, true, 200, "until close", true, false},
		{"close-delimited read whole", "GET", "HTTP/1.1 200 OK\r\n\r\nuntil close", true, false, 200, "until close", false, false},
		{"close-delimited POST streams", "POST", "HTTP/1.1 200 OK\r\n\r\nuntil close", true, true, 200, "until close", true, false},
		{"close-delimited POST read whole", "POST", "HTTP/1.1 200 OK\r\n\r\nuntil close", true, false, 200, "until close", false, false},
		{"close-delimited with Connection: Upgrade streams", "POST", "HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nuntil close", true, true, 200, "until close", true, false},
		{"close-delimited with Connection: Upgrade read whole", "POST", "HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nuntil close", true, false, 200, "until close", false, false},
		{"204 has no body", "GET", "HTTP/1.1 204 No Content\r\n\r\n", false, true, 204, "", false, true},
		{"304 has no body despite length", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, true, 304, "", false, true},
		{"HEAD skips the announced body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", false, true, 200, "", false, true},
		{"interim 100 skipped", "GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, true, 200, "ok", false, true},
		{"HTTP/1.0 answer ends the connection", "POST", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", true, true, 200, "ok", false, false},
		{"upstream asks to close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true, true, 200, "ok", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := startScripted(t, func(n int64, r *http.Request, w *bufio.Writer) bool {
				for i, part := range strings.Split(tc.reply, "\x00") {
					if i > 0 {
						_ = w.Flush()
						time.Sleep(20 * time.Millisecond)
					}
					_, _ = w.WriteString(part)
				}
				return tc.closeConn
			})
			u := testUpstream(t, up.ln.Addr().String())
			for i := 0; i < 2; i++ {
				status, body, streamed, err := roundTrip(t, u, tc.method, tc.stream, 5*time.Second)
				if err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
				if status != tc.status || body != tc.body || streamed != tc.streamed {
					t.Fatalf("request %d: status %d body %q streamed %v, want %d %q %v",
						i+1, status, body, streamed, tc.status, tc.body, tc.streamed)
				}
			}
			want := int64(2)
			if tc.reused {
				want = 1
			}
			if got := up.accepted.Load(); got != want {
				t.Fatalf("%d connections for 2 requests, want %d", got, want)
			}
		})
	}
}

func TestTransportErrors(t *testing.T) {
	cases := []struct {
		name    string
		reply   string
		stream  bool
		timeout time.Duration
		isErr   func(error) bool
	}{
		{"answer above the limit for a whole read", "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n" + strings.Repeat("x", 70000),
			false, 5 * time.Second, func(err error) bool { return errors.Is(err, fasthttp.ErrBodyTooLarge) }},
		{"truncated body read whole", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
			false, 5 * time.Second, func(err error) bool { return err != nil }},
		{"no answer within the deadline", "",
			true, 200 * time.Millisecond, isTimeout},
		{"101 nobody asked for", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
			true, 5 * time.Second, func(err error) bool { return errors.Is(err, errUnaskedUpgrade) }},
		{"deadline already past", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			true, -time.Millisecond, isTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := startScripted(t, func(n int64, r *http.Request, w *bufio.Writer) bool {
				if tc.reply == "" {
					time.Sleep(time.Second)
				}
				_, _ = w.WriteString(tc.reply)
				return true
			})
			u := testUpstream(t, up.ln.Addr().String())
			_, _, _, err := roundTrip(t, u, "GET", tc.stream, tc.timeout)
			if !tc.isErr(err) {
				t.Fatalf("err %v", err)
			}
			want := int64(1)
			if tc.timeout < 0 {
				want = 0
			}
			if got := up.requests.Load(); got != want {
				t.Fatalf("%d tries on the upstream, want %d", got, want)
			}
			if tc.timeout < 0 {
				time.Sleep(50 * time.Millisecond) // an accept would have been counted by now
			}
			if tc.timeout < 0 && up.accepted.Load() != 0 {
				t.Fatal("a connection was opened for a request whose time had run out")
			}
		})
	}
}

// streamedGet starts a GET through u whose answer streams; the test reads
// and closes the body.
func streamedGet(t *testing.T, u *upstream) *fasthttp.Response {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	t.Cleanup(func() { fasthttp.ReleaseRequest(req); fasthttp.ReleaseResponse(resp) })
	req.SetRequestURI("http://" + u.addr + "/x")
	if err := u.do(req, resp, exchange{deadline: time.Now().Add(5 * time.Second), stream: true, idempotent: true}); err != nil {
		t.Fatal(err)
	}
	if !resp.IsBodyStream() {
		t.Fatal("answer was read whole, want a stream")
	}
	return resp
}

// A streamed body that fails midway (the upstream closed before its
// Content-Length) is an error to the reader, and its connection is not
// reused.
func TestTransportTruncatedStream(t *testing.T) {
	up := startScripted(t, func(n int64, r *http.Request, w *bufio.Writer) bool {
		if n == 1 {
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n" + strings.Repeat("x", 6000))
			return true
		}
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false
	})
	u := testUpstream(t, up.ln.Addr().String())
	resp := streamedGet(t, u)
	n, err := io.Copy(io.Discard, resp.BodyStream())
	if err == nil || n != 6000 {
		t.Fatalf("read %d bytes, err %v; want 6000 and an error", n, err)
	}
	_ = resp.CloseBodyStream()
	if _, body, _, err := roundTrip(t, u, "GET", true, 5*time.Second); err != nil || body != "ok" {
		t.Fatalf("next request: %q %v", body, err)
	}
	if got := up.accepted.Load(); got != 2 {
		t.Fatalf("%d connections, want 2", got)
	}
}

// A streamed body the server abandons (the client went away) closes the
// upstream connection: what is left of the body is still on it.
func TestTransportAbandonedStream(t *testing.T) {
	up := startScripted(t, func(n int64, r *http.Request, w *bufio.Writer) bool {
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n" + strings.Repeat("x", 9000))
		return false
	})
	u := testUpstream(t, up.ln.Addr().String())
	resp := streamedGet(t, u)
	buf := make([]byte, 100)
	if _, err := resp.BodyStream().Read(buf); err != nil {
		t.Fatal(err)
	}
	body := resp.BodyStream().(*upstreamBody)
	_ = body.CloseWithError(errors.New("client went away"))
	if _, err := body.Read(buf); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("read after close: %v", err)
	}
	if _, _, _, err := roundTrip(t, u, "GET", true, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, tries := up.accepted.Load(), up.requests.Load(); got != 2 || tries != 2 {
		t.Fatalf("%d connections and %d requests, want 2 and 2 (the abandoned connection closed, not tried)", got, tries)
	}
}

// A keep-alive connection the upstream closed while idle is tried again
// on a new connection for idempotent methods only; a failure on a fresh
// connection is not tried again on the same instance (proxy.go moves on
// to another).
func TestTransportStaleConnectionRetry(t *testing.T) {
	cases := []struct {
		method  string
		wantErr bool
	}{
		{"GET", false},
		{"PUT", false},
		{"POST", true},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			up := startScripted(t, func(n int64, r *http.Request, w *bufio.Writer) bool {
				_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				// The first connection closes after its answer without
				// saying so: the pooled connection goes stale.
				return n == 1
			})
			u := testUpstream(t, up.ln.Addr().String())
			if _, _, _, err := roundTrip(t, u, tc.method, true, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond) // the close reaches the gateway's side
			_, body, _, err := roundTrip(t, u, tc.method, true, 5*time.Second)
			if tc.wantErr != (err != nil) {
				t.Fatalf("second %s: %q %v, want error %v", tc.method, body, err, tc.wantErr)
			}
			if tc.wantErr && !errors.Is(err, fasthttp.ErrConnectionClosed) {
				t.Fatalf("second %s: %v, want ErrConnectionClosed", tc.method, err)
			}
		})
	}
	// A streamed body is consumed by the first try: a PUT on a stale
	// connection is not tried again (it would go out with an empty body).
	t.Run("streamed PUT body", func(t *testing.T) {
		var bodies []int64
		var mu sync.Mutex
		up := startScripted(t, func(n int64, r *http.Request, w *bufio.Writer) bool {
			mu.Lock()
			bodies = append(bodies, r.ContentLength)
			mu.Unlock()
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return n == 1
		})
		u := testUpstream(t, up.ln.Addr().String())
		if _, _, _, err := roundTrip(t, u, "GET", true, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod("PUT")
		req.SetRequestURI("http://" + u.addr + "/x")
		req.SetBodyStream(strings.NewReader(strings.Repeat("p", 100<<10)), 100<<10)
		if err := u.do(req, resp, exchange{deadline: time.Now().Add(5 * time.Second), stream: true, idempotent: true}); err == nil {
			t.Fatal("a streamed PUT on a stale connection succeeded: it was sent again")
		}
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if len(bodies) != 1 {
			t.Fatalf("the upstream saw requests with bodies %v, want only the first GET", bodies)
		}
	})
	// An upstream restart leaves every pooled connection dead: a GET still
	// gets through.
	t.Run("every pooled connection stale", func(t *testing.T) {
		up := startScripted(t, func(n int64, r *http.Request, w *bufio.Writer) bool {
			if n <= 3 {
				time.Sleep(100 * time.Millisecond) // the three first requests overlap: three connections
			}
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return n <= 3 // and each closes after its answer without saying so
		})
		u := testUpstream(t, up.ln.Addr().String())
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, _, err := roundTrip(t, u, "GET", true, 5*time.Second); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := u.hc.IdleConnsCount(); n != 3 {
			t.Fatalf("%d pooled connections, want 3", n)
		}
		time.Sleep(50 * time.Millisecond)
		if _, body, _, err := roundTrip(t, u, "GET", true, 5*time.Second); err != nil || body != "ok" {
			t.Fatalf("GET after the upstream closed every pooled connection: %q %v", body, err)
		}
	})
	t.Run("fresh connection", func(t *testing.T) {
		up := startScripted(t, func(n int64, r *http.Request, w *bufio.Writer) bool { return true })
		u := testUpstream(t, up.ln.Addr().String())
		if _, _, _, err := roundTrip(t, u, "GET", true, 5*time.Second); err == nil {
			t.Fatal("no error from an upstream that closes without answering")
		}
		if got := up.requests.Load(); got != 1 {
			t.Fatalf("%d tries, want 1", got)
		}
	})
}

// Closing a streamed body while another goroutine's Read waits on a
// stalled upstream interrupts that Read and releases the connection (closed,
// not pooled) instead of waiting for the upstream.
func TestTransportCloseInterruptsBlockedRead(t *testing.T) {
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })
	up := startScripted(t, func(n int64, r *http.Request, w *bufio.Writer) bool {
		if n > 1 {
			_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return false
		}
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n" + strings.Repeat("x", 100))
		_ = w.Flush()
		<-stall // the rest of the body never comes
		return true
	})
	u := testUpstream(t, up.ln.Addr().String())
	body := streamedGet(t, u).BodyStream().(*upstreamBody)
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, body)
		read <- err
	}()
	time.Sleep(50 * time.Millisecond) // the Read is waiting on the socket
	closed := make(chan struct{})
	go func() { _ = body.CloseWithError(nil); close(closed) }()
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("the interrupted Read reported a complete body")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not interrupt the blocked Read")
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, body, _, err := roundTrip(t, u, "GET", true, 5*time.Second); err != nil || body != "ok" {
		t.Fatalf("next request: %q %v", body, err)
	}
	if got := up.accepted.Load(); got != 2 {
		t.Fatalf("%d connections, want 2 (the interrupted one closed)", got)
	}
}

// A streamed body may take longer than the exchange's deadline as long as
// it keeps coming: each read may wait bodyIdle. A pause longer than that
// fails the read.
func TestTransportStreamedBodyIdleTimeout(t *testing.T) {
	cases := []struct {
		name   string
		pause  time.Duration // between the body's five parts
		wantOK bool
	}{
		{"slow but steady body outlives the deadline", 120 * time.Millisecond, true},
		{"a pause longer than bodyIdle fails", 700 * time.Millisecond, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := startScripted(t, func(n int64, r *http.Request, w *bufio.Writer) bool {
				_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n")
				for i := 0; i < 5; i++ {
					_, _ = w.WriteString(strings.Repeat("s", 2000))
					if w.Flush() != nil {
						return true
					}
					time.Sleep(tc.pause)
				}
				return true
			})
			u := testUpstream(t, up.ln.Addr().String())
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + u.addr + "/x")
			x := exchange{deadline: time.Now().Add(300 * time.Millisecond), bodyIdle: 300 * time.Millisecond, stream: true, idempotent: true}
			if err := u.do(req, resp, x); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			n, err := io.Copy(io.Discard, resp.BodyStream())
			_ = resp.CloseBodyStream()
			if tc.wantOK && (err != nil || n != 10000) {
				t.Fatalf("read %d bytes in %v: %v", n, time.Since(start), err)
			}
			if !tc.wantOK && (err == nil || !isTimeout(err)) {
				t.Fatalf("read %d bytes in %v: %v, want a timeout", n, time.Since(start), err)
			}
		})
	}
}

// An upstream that answers before reading the whole upload (a 413) and
// closes fails the rest of the gateway's write; its answer is still relayed,
// not turned into an error, and the connection is not pooled. One that
// closes without answering leaves the write's error.
func TestTransportEarlyAnswerDuringUpload(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer string // "" closes without answering
	}{
		{"413 before the body is read", "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!"},
		{"413 without Connection: close", "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!"},
		{"no answer", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close() // with the body unread: the kernel resets the connection
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(c, tc.answer)
			}()
			u := testUpstream(t, ln.Addr().String())
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod("POST")
			req.SetRequestURI("http://" + u.addr + "/upload")
			const size = 32 << 20 // more than the loopback socket buffers hold
			req.SetBodyStream(io.LimitReader(zeroReader{}, size), size)
			err = u.do(req, resp, exchange{deadline: time.Now().Add(5 * time.Second), stream: true})
			if tc.answer == "" {
				if err == nil {
					t.Fatalf("no error from an upstream that reset the upload unanswered (status %d)", resp.StatusCode())
				}
				return
			}
			if err != nil {
				t.Fatalf("the upstream's early answer became an error: %v", err)
			}
			if resp.StatusCode() != 413 || string(resp.Body()) != "too big!" {
				t.Fatalf("got %d %q", resp.StatusCode(), resp.Body())
			}
			if n := u.hc.IdleConnsCount(); n != 0 {
				t.Fatalf("%d pooled connections after a failed write, want 0", n)
			}
		})
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// A request body that fails while it is being sent (the client's upload
// broke off) ends the try at once: the upstream still waits for the rest
// and will not answer, so waiting for its answer would hold the connection
// until the deadline.
func TestTransportBrokenRequestBodyFailsAtOnce(t *testing.T) {
	up := startScripted(t, func(n int64, r *http.Request, w *bufio.Writer) bool {
		_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false
	})
	u := testUpstream(t, up.ln.Addr().String())
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://" + u.addr + "/upload")
	const size = 1 << 20
	req.SetBodyStream(io.MultiReader(io.LimitReader(zeroReader{}, size/2), iotest.ErrReader(io.ErrUnexpectedEOF)), size)
	start := time.Now()
	err := u.do(req, resp, exchange{deadline: time.Now().Add(5 * time.Second), stream: true})
	if err == nil {
		t.Fatalf("a broken request body gave %d", resp.StatusCode())
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the try ended after %v (%v): it waited for an answer that could not come", d, err)
	}
}
