package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/registry"
)

// pattern is a deterministic reader of n bytes.
func pattern(n int) io.Reader {
	return io.LimitReader(&patternReader{}, int64(n))
}

type patternReader struct{ i byte }

func (p *patternReader) Read(b []byte) (int, error) {
	for k := range b {
		b[k] = p.i
		p.i = p.i*31 + 7
	}
	return len(b), nil
}

func TestStreamingBodies(t *testing.T) {
	e := newEnv(t, Options{MaxBufferedBody: 64 << 10, MaxBufferedResponse: 1 << 20})
	up := startUpstream(t, "a")
	up.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				w.WriteHeader(500)
				return
			}
			_, _ = io.WriteString(w, hex.EncodeToString(h.Sum(nil))+" "+itoa(n))
			return
		}
		_, _ = io.Copy(w, pattern(32<<20))
	})
	e.instance("web", "a", up.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web"})

	const size = 8 << 20
	want := sha256.New()
	_, _ = io.Copy(want, pattern(size))
	wantStr := hex.EncodeToString(want.Sum(nil)) + " " + itoa(size)
	// Known length and chunked (unknown length) uploads, both far above the
	// in-memory limit.
	for _, body := range []io.Reader{bytes.NewReader(mustRead(pattern(size))), io.MultiReader(pattern(size))} {
		r := e.do("POST", "", "/upload", nil, body)
		if r.status != 200 || string(r.body) != wantStr {
			t.Fatalf("upload: %d %q, want %q", r.status, r.body, wantStr)
		}
	}
	// A download far above MaxBufferedResponse streams through.
	res, err := e.client.Get("http://" + e.addr + "/download")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got := sha256.New()
	n, err := io.Copy(got, res.Body)
	if err != nil || n != 32<<20 {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	exp := sha256.New()
	_, _ = io.Copy(exp, pattern(32<<20))
	if !bytes.Equal(got.Sum(nil), exp.Sum(nil)) {
		t.Fatal("download corrupted")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func mustRead(r io.Reader) []byte {
	b, err := io.ReadAll(r)
	if err != nil {
		panic(err)
	}
	return b
}

func TestWebSocketPassThrough(t *testing.T) {
	e := newEnv(t, Options{})
	up := startUpstream(t, "ws")
	up.handle(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, "upgrade required")
			return
		}
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, "no")
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Path: " + r.URL.Path + "\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(c, brw) // echo
	})
	e.instance("ws", "ws", up.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/ws/"}, Service: "ws", StripPath: true})

	dial := func(path string) (net.Conn, *bufio.Reader, *http.Response) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: chat.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		br := bufio.NewReader(c)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c, br, res
	}
	c, br, res := dial("/ws/room")
	defer c.Close()
	if res.StatusCode != 101 || res.Header.Get("X-Path") != "/room" || !strings.EqualFold(res.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("upgrade answer: %d %v", res.StatusCode, res.Header)
	}
	for _, msg := range []string{"ping", "second message"} {
		_, _ = io.WriteString(c, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo: %q %v", buf, err)
		}
	}
	c2, _, res2 := dial("/ws/refuse")
	defer c2.Close()
	if res2.StatusCode != 403 {
		t.Fatalf("refused upgrade: %d", res2.StatusCode)
	}
}
