package api

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/cluster/peerproto"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/internal/tlsutil"
	"github.com/nexus/nexus/internal/tlsutil/tlstest"
	"github.com/nexus/nexus/registry"
)

// doHost sends a request with an explicit Host header.
func (h *harness) doHost(method, uri, host string) *resp {
	h.t.Helper()
	req := fasthttp.AcquireRequest()
	res := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://nexus" + uri)
	req.UseHostHeader = true
	req.Header.SetHost(host)
	if err := h.client.DoTimeout(req, res, 10*time.Second); err != nil {
		h.t.Fatalf("%s %s: %v", method, uri, err)
	}
	out := &resp{status: res.StatusCode(), header: map[string]string{}, body: append([]byte(nil), res.Body()...)}
	for k, v := range res.Header.All() {
		out.header[strings.ToLower(string(k))] = string(v)
	}
	return out
}

func TestTrustedHosts(t *testing.T) {
	cases := []struct {
		name    string
		trusted []string
		host    string
		ok      bool
	}{
		{"empty list accepts any", nil, "evil.example", true},
		{"name matches any port", []string{"nexus.example"}, "nexus.example:8500", true},
		{"name without port", []string{"nexus.example"}, "nexus.example", true},
		{"case-insensitive", []string{"nexus.example"}, "NEXUS.Example", true},
		{"other host refused", []string{"nexus.example"}, "evil.example", false},
		{"host:port matches only that port", []string{"10.0.0.1:8500"}, "10.0.0.1:9999", false},
		{"host:port exact", []string{"10.0.0.1:8500"}, "10.0.0.1:8500", true},
		{"ipv6 literal", []string{"[::1]"}, "[::1]:8500", true},
		{"empty host refused", []string{"nexus.example"}, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(d *Deps) { d.Guard.TrustedHosts = tc.trusted })
			r := h.doHost("GET", "/health", tc.host)
			if tc.ok {
				h.must(r, 200, nil)
				return
			}
			e := h.mustErr(r, fasthttp.StatusMisdirectedRequest, "untrusted_host")
			if !strings.Contains(e.Error.Message, "trusted_hosts") || e.Error.Field != "Host" {
				t.Errorf("error %+v does not name the setting and field", e.Error)
			}
			if tc.host != "" && !strings.Contains(e.Error.Message, strings.ToLower(tc.host)) {
				t.Errorf("error %q does not name the host", e.Error.Message)
			}
		})
	}
}

func TestTrustedHostsRefuseWrites(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Guard.TrustedHosts = []string{"nexus.example"} })
	before := h.dump()
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	res := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(res)
	req.Header.SetMethod("PUT")
	req.SetRequestURI("http://evil.example/config/a")
	req.SetBodyString("1")
	if err := h.client.Do(req, res); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode() != fasthttp.StatusMisdirectedRequest {
		t.Fatalf("status %d: %s", res.StatusCode(), res.Body())
	}
	h.assertUnchanged(before)
}

func TestAdminRateLimit(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Unix(1700000000, 0).UnixNano())
	cases := []struct {
		name    string
		rps     float64
		burst   int
		path    string
		allowed int // of 10 requests at the same instant
	}{
		{"off", 0, 0, "/health", 10},
		{"burst", 1, 3, "/health", 3},
		{"default burst is 2x", 2, 0, "/health", 4},
		{"internal paths exempt", 1, 1, peerproto.PathRaftStats, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(d *Deps) { d.Guard.RateLimit, d.Guard.RateBurst = tc.rps, tc.burst })
			h.srv.guard.now = func() time.Time { return time.Unix(0, now.Load()) }
			allowed := 0
			for range 10 {
				r := h.do("GET", tc.path, nil)
				if r.status == fasthttp.StatusTooManyRequests {
					e := h.mustErr(r, 429, "rate_limited")
					if r.get("Retry-After") == "" || !strings.Contains(e.Error.Message, "admin_rate_limit") {
						t.Fatalf("429 without Retry-After or setting name: %v %s", r.header, r.body)
					}
					continue
				}
				allowed++
			}
			if allowed != tc.allowed {
				t.Fatalf("%d allowed, want %d", allowed, tc.allowed)
			}
			if tc.rps > 0 && tc.allowed < 10 {
				now.Add(int64(2 * time.Second / time.Duration(tc.rps)))
				if r := h.do("GET", tc.path, nil); r.status != 200 {
					t.Fatalf("after refill: %d %s", r.status, r.body)
				}
			}
		})
	}
}

// tlsServer serves a fresh API with guard g on a loopback TCP listener.
func tlsServer(t *testing.T, g Guard, mod ...func(*Deps)) string {
	t.Helper()
	store := registry.NewStore()
	codec := command.NewCodec()
	f := fsm.New(fsm.Deps{Store: store, Codec: codec})
	reg := prometheus.NewRegistry()
	deps := Deps{
		Writer: &fakeWriter{fsm: f}, Reader: fakeReader{store}, Cluster: &fakeCluster{name: "n1"}, Codec: codec,
		Logger: slog.New(slog.DiscardHandler), Registry: reg, Gatherer: reg, Guard: g,
	}
	for _, m := range mod {
		m(&deps)
	}
	srv, err := New(deps)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

func TestTLSAndClientCertificates(t *testing.T) {
	ca := tlstest.NewCA(t, "nexus-ca")
	other := tlstest.NewCA(t, "other-ca")
	dir := t.TempDir()
	srvFiles := ca.WriteFiles(t, dir, "srv", "n1", "127.0.0.1")
	r, err := tlsutil.NewReloader(srvFiles.Cert, srvFiles.Key)
	if err != nil {
		t.Fatal(err)
	}
	plainTLS, err := tlsutil.ServerConfig(r, "")
	if err != nil {
		t.Fatal(err)
	}
	mTLS, err := tlsutil.ServerConfig(r, srvFiles.CA)
	if err != nil {
		t.Fatal(err)
	}
	goodClient := ca.KeyPair(t, "client")
	foreignClient := other.KeyPair(t, "intruder")

	get := func(addr string, scheme string, cfg *tls.Config) (int, error) {
		c := &fasthttp.Client{TLSConfig: cfg, ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second}
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		res := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(res)
		req.SetRequestURI(scheme + "://" + addr + "/health")
		err := c.DoTimeout(req, res, 3*time.Second)
		return res.StatusCode(), err
	}
	cases := []struct {
		name   string
		srv    *tls.Config
		scheme string
		client *tls.Config
		ok     bool
	}{
		{"https trusted CA", plainTLS, "https", &tls.Config{RootCAs: ca.Pool()}, true},
		{"plaintext client refused", plainTLS, "http", nil, false},
		{"unknown CA refused by client", plainTLS, "https", &tls.Config{RootCAs: other.Pool()}, false},
		{"mTLS without client cert", mTLS, "https", &tls.Config{RootCAs: ca.Pool()}, false},
		{"mTLS foreign client cert", mTLS, "https", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{foreignClient}}, false},
		{"mTLS good client cert", mTLS, "https", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{goodClient}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := tlsServer(t, Guard{TLS: tc.srv})
			code, err := get(addr, tc.scheme, tc.client)
			if tc.ok && (err != nil || code != 200) {
				t.Fatalf("status %d, err %v; want 200", code, err)
			}
			if !tc.ok && err == nil && code == 200 {
				t.Fatalf("request succeeded; want it refused")
			}
		})
	}
}

// A slow-loris client that trickles its headers is cut off at the read
// timeout while other clients are served.
func TestSlowLorisCutOff(t *testing.T) {
	addr := tlsServer(t, Guard{}, func(d *Deps) { d.ReadTimeout = 300 * time.Millisecond })
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	closed := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		// Trickle a header line byte by byte, never finishing the request.
		for _, b := range []byte("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100)) {
			if _, err := slow.Write([]byte{b}); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(slow)) // returns when the server closes
		closed <- time.Since(start)
	}()
	// Another client is served meanwhile.
	c := &fasthttp.Client{}
	code, _, err := c.GetTimeout(nil, "http://"+addr+"/health", 2*time.Second)
	if err != nil || code != 200 {
		t.Fatalf("concurrent client: %d %v", code, err)
	}
	select {
	case d := <-closed:
		if d > 3*time.Second {
			t.Fatalf("slow client cut off after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("slow client still connected after 5s")
	}
}

// Headers beyond the read buffer are refused with 431, not buffered.
func TestHeaderSizeLimit(t *testing.T) {
	addr := tlsServer(t, Guard{})
	c := &fasthttp.Client{}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	res := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(res)
	req.SetRequestURI("http://" + addr + "/health")
	req.Header.Set("X-Big", strings.Repeat("b", 64<<10))
	err := c.DoTimeout(req, res, 3*time.Second)
	if err == nil && res.StatusCode() != fasthttp.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d for 64 KiB of headers", res.StatusCode())
	}
}
