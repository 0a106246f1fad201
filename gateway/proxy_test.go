package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/registry"
)

func TestProxyHeadersAndPath(t *testing.T) {
	e := newEnv(t, Options{})
	up := startUpstream(t, "a")
	e.instance("web", "a", up.addr(), nil)
	e.route(registry.Route{ID: "r-echo", Paths: []string{"/echo/"}, Service: "web", StripPath: true})
	e.route(registry.Route{ID: "r-keep", Paths: []string{"/keep/"}, Service: "web", PreserveHost: true})

	r := e.do("GET", "api.example", "/echo/hello?x=1", map[string]string{
		"X-Forwarded-For": "10.9.9.9", "Connection": "X-Secret", "X-Secret": "s", "Keep-Alive": "timeout=5",
	}, nil)
	if r.status != 200 || string(r.body) != "hello from a path=/hello" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	got := up.last.Load()
	checks := []struct{ name, got, want string }{
		{"query", got.URL.RawQuery, "x=1"},
		{"host", got.Host, up.addr()},
		{"x-forwarded-for", got.Header.Get("X-Forwarded-For"), "10.9.9.9, 127.0.0.1"},
		{"x-forwarded-proto", got.Header.Get("X-Forwarded-Proto"), "http"},
		{"x-forwarded-host", got.Header.Get("X-Forwarded-Host"), "api.example"},
		{"connection-listed header dropped", got.Header.Get("X-Secret"), ""},
		{"keep-alive dropped", got.Header.Get("Keep-Alive"), ""},
		{"request id to upstream", got.Header.Get("X-Request-ID"), r.header.Get("X-Request-ID")},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if len(r.header.Get("X-Request-ID")) != 32 {
		t.Errorf("generated request id %q", r.header.Get("X-Request-ID"))
	}

	r = e.do("GET", "api.example", "/keep/x", map[string]string{"X-Request-ID": "abc-123"}, nil)
	if got := up.last.Load(); got.Host != "api.example" || got.URL.Path != "/keep/x" || got.Header.Get("X-Request-ID") != "abc-123" {
		t.Errorf("preserve_host: upstream saw host %q path %q id %q", got.Host, got.URL.Path, got.Header.Get("X-Request-ID"))
	}
	if r.header.Get("X-Request-ID") != "abc-123" {
		t.Errorf("request id not echoed: %q", r.header.Get("X-Request-ID"))
	}
}

func TestStripPathCases(t *testing.T) {
	e := newEnv(t, Options{})
	up := startUpstream(t, "a")
	e.instance("web", "a", up.addr(), nil)
	e.route(registry.Route{ID: "slash", Paths: []string{"/s/"}, Service: "web", StripPath: true})
	e.route(registry.Route{ID: "noslash", Paths: []string{"/n"}, Service: "web", StripPath: true})
	e.route(registry.Route{ID: "exact", Paths: []string{"/exact"}, Match: "exact", Service: "web", StripPath: true})
	cases := []struct{ path, want string }{
		{"/s/hello", "/hello"},
		{"/s/", "/"},
		{"/s/a/b", "/a/b"},
		{"/n/x", "/x"},
		{"/nx", "/x"},
		{"/n", "/"},
		{"/exact", "/"},
		{"/s/a%20b", "/a b"},
		{"/s/a%252F", "/a%2F"},
		{"/s/../s/dot", "/dot"},
	}
	for _, c := range cases {
		r := e.do("GET", "", c.path, nil, nil)
		if r.status != 200 {
			t.Errorf("%s: status %d %s", c.path, r.status, r.body)
			continue
		}
		if got := up.last.Load().URL.Path; got != c.want {
			t.Errorf("%s: upstream path %q, want %q", c.path, got, c.want)
		}
	}
}

func TestGatewayErrors(t *testing.T) {
	e := newEnv(t, Options{})
	slow := startUpstream(t, "slow")
	slow.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-make(chan struct{}):
		}
	})
	e.instance("dead", "d1", deadAddr(t), nil)
	e.instance("dead", "d2", deadAddr(t), nil)
	e.instance("slow", "s1", slow.addr(), nil)
	e.route(registry.Route{ID: "empty", Paths: []string{"/empty/"}, Service: "nothing"})
	e.route(registry.Route{ID: "dead", Paths: []string{"/dead/"}, Service: "dead"})
	e.route(registry.Route{ID: "slow", Paths: []string{"/slow/"}, Service: "slow", Timeout: "200ms"})
	e.route(registry.Route{ID: "get-only", Paths: []string{"/get/"}, Service: "slow", Methods: []string{"GET"}})
	cases := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"no route", "GET", "/nowhere", 404, CodeRouteNotFound},
		{"method not routed", "POST", "/get/x", 404, CodeRouteNotFound},
		{"no instance", "GET", "/empty/x", 503, CodeNoHealthyUpstream},
		{"unreachable", "GET", "/dead/x", 502, CodeUpstreamUnreachable},
		{"unreachable post", "POST", "/dead/x", 502, CodeUpstreamUnreachable},
		{"timeout", "GET", "/slow/x", 504, CodeUpstreamTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, "", c.path, nil, nil)
			if r.status != c.status || r.errorCode() != c.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, c.status, c.code)
			}
			if r.header.Get("X-Request-ID") == "" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Fatalf("headers %v", r.header)
			}
		})
	}
}

// TestPlainSocketIO: the gateway proxies the same with net.Conn's own
// socket calls (Options.PlainSocketIO) as with raw ones.
func TestPlainSocketIO(t *testing.T) {
	for _, plain := range []bool{false, true} {
		e := newEnv(t, Options{PlainSocketIO: plain})
		up := startUpstream(t, "a")
		e.instance("web", "a", up.addr(), nil)
		e.route(registry.Route{ID: "r", Paths: []string{"/p/"}, Service: "web", StripPath: true})
		for range 3 {
			r := e.do("POST", "", "/p/x", nil, strings.NewReader(strings.Repeat("b", 100<<10)))
			if r.status != 200 || string(r.body) != "hello from a path=/x" {
				t.Fatalf("plain=%v: %d %q", plain, r.status, r.body)
			}
		}
	}
}

// A chunked answer's trailer fields must not become header fields (RFC 9110
// §6.5.1), whether the answer streams (plain route) or is read whole to be
// cached or compressed and sent with a Content-Length.
func TestChunkedTrailerNotMergedIntoHeader(t *testing.T) {
	e := newEnv(t, Options{})
	up := startUpstream(t, "a")
	up.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(strings.Repeat("trailer test ", 100)))
		w.Header().Set("X-Checksum", "abc")
	})
	e.instance("web", "a", up.addr(), nil)
	e.route(registry.Route{ID: "plain", Paths: []string{"/plain/"}, Service: "web"})
	e.route(registry.Route{ID: "cache", Paths: []string{"/cache/"}, Service: "web", Cache: &registry.CachePolicy{TTL: "1m"}})
	e.route(registry.Route{ID: "gzip", Paths: []string{"/gzip/"}, Service: "web", Compression: &registry.Compression{Enabled: true}})
	for _, path := range []string{"/plain/x", "/cache/x", "/cache/x", "/gzip/x"} {
		r := e.do("GET", "", path, nil, nil) // no Accept-Encoding: the gzip route reads whole, sends plain
		if r.status != 200 || string(r.body) != strings.Repeat("trailer test ", 100) {
			t.Fatalf("%s: %d, %d bytes", path, r.status, len(r.body))
		}
		if v := r.header.Get("X-Checksum"); v != "" {
			t.Errorf("%s: trailer field sent as a header field: X-Checksum: %s", path, v)
		}
	}
}

// A client that stops reading a streamed download is cut off at the client
// write timeout, and the upstream's connection is let go, instead of the
// gateway waiting on the write for ever.
func TestSlowReaderCutAtClientWriteTimeout(t *testing.T) {
	e := newEnv(t, Options{ClientWriteTimeout: 300 * time.Millisecond})
	up := startUpstream(t, "a")
	const size = 128 << 20 // far more than the socket buffers between the three
	upstreamDone := make(chan error, 1)
	up.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		chunk := make([]byte, 64<<10)
		var err error
		for sent := 0; sent < size && err == nil; sent += len(chunk) {
			_, err = w.Write(chunk)
		}
		upstreamDone <- err
	})
	e.instance("web", "a", up.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web"})

	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // read nothing, well past the write timeout
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := io.Copy(io.Discard, c) // what the kernels had buffered, then the end
	if n >= size {
		t.Fatalf("the client got all %d bytes after stalling past the write timeout: the gateway waited", n)
	}
	select {
	case err := <-upstreamDone:
		if err == nil {
			t.Fatal("the upstream sent the whole answer to a client that had stopped reading")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream's answer is still being read for a client that was cut off")
	}
}

// An answer given before an upload's body was read — the gateway's own 404,
// or an upstream's 413 from the headers alone — reaches the client as that
// answer. Closing with the client's bytes unread would reset the connection
// and lose it; the gateway lingers instead.
func TestEarlyAnswerToUploadReachesClient(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain socket I/O %v", plain), func(t *testing.T) { testEarlyAnswerToUpload(t, plain) })
	}
}

func testEarlyAnswerToUpload(t *testing.T, plain bool) {
	e := newEnv(t, Options{PlainSocketIO: plain})
	up := startUpstream(t, "a")
	up.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = io.WriteString(w, "too big")
	})
	e.instance("web", "a", up.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/upload"}, Service: "web"})
	const size = 64 << 20
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/upload", http.StatusRequestEntityTooLarge, "too big"},
		{"/nowhere", http.StatusNotFound, "route_not_found"},
	} {
		for i := range 3 {
			r, err := e.try("POST", "", tc.path, nil, io.LimitReader(zeroReader{}, size))
			if err != nil {
				t.Fatalf("%s upload %d: %v", tc.path, i, err)
			}
			if r.status != tc.status || !strings.Contains(string(r.body), tc.body) {
				t.Fatalf("%s upload %d: %d %q, want %d %q", tc.path, i, r.status, r.body, tc.status, tc.body)
			}
		}
	}
	if v := metricValue(t, e, "nexus_gateway_lingering_closes_total", map[string]string{"result": "lingered"}); v < 1 {
		t.Errorf("lingering closes counted: %v", v)
	}
}
