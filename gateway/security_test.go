package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/tlsutil"
	"github.com/nexus/nexus/internal/tlsutil/tlstest"
	"github.com/nexus/nexus/registry"
)

// serveGateway serves a gateway over an empty store with deps adjusted by mod.
func serveGateway(t *testing.T, mod func(*Deps)) string {
	t.Helper()
	d := Deps{Store: registry.NewStore(), Node: "n1", Logger: slog.New(slog.DiscardHandler)}
	mod(&d)
	g, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	return ln.Addr().String()
}

func TestGatewayTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	other := tlstest.NewCA(t, "other")
	f := ca.WriteFiles(t, t.TempDir(), "gw", "gw", "127.0.0.1")
	r, err := tlsutil.NewReloader(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := tlsutil.ServerConfig(r, "")
	if err != nil {
		t.Fatal(err)
	}
	mtls, err := tlsutil.ServerConfig(r, f.CA)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		srv    *tls.Config
		scheme string
		client *tls.Config
		ok     bool
	}{
		{"https: no route is a JSON 404", plain, "https", &tls.Config{RootCAs: ca.Pool()}, true},
		{"plaintext refused", plain, "http", nil, false},
		{"client cert required", mtls, "https", &tls.Config{RootCAs: ca.Pool()}, false},
		{"foreign client cert", mtls, "https", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{other.KeyPair(t, "x")}}, false},
		{"good client cert", mtls, "https", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{ca.KeyPair(t, "c")}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveGateway(t, func(d *Deps) { d.TLS = tc.srv })
			c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: tc.client}}
			res, err := c.Get(tc.scheme + "://" + addr + "/nothing")
			if err == nil {
				defer res.Body.Close()
			}
			if tc.ok {
				if err != nil || res.StatusCode != http.StatusNotFound {
					t.Fatalf("err %v res %v; want the gateway's 404", err, res)
				}
				return
			}
			if err == nil && res.StatusCode == http.StatusNotFound {
				t.Fatal("request served; want it refused")
			}
		})
	}
}

func TestGatewaySlowLoris(t *testing.T) {
	addr := serveGateway(t, func(d *Deps) { d.Options.ClientHeaderTimeout = 300 * time.Millisecond })
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start := time.Now()
	go func() {
		for _, b := range []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100)) {
			if _, err := slow.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(slow))
		closed <- time.Since(start)
	}()
	res, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/other")
	if err != nil {
		t.Fatalf("concurrent client: %v", err)
	}
	res.Body.Close()
	select {
	case d := <-closed:
		if d > 3*time.Second {
			t.Fatalf("slow client cut off after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("slow client still connected after 5s")
	}
}

// TestGatewayTLSProxiesToPlainUpstream: a request that arrives over HTTPS
// is proxied to the plain-HTTP upstream (it was a 502: the reused request
// kept scheme https), with X-Forwarded-Proto https.
func TestGatewayTLSProxiesToPlainUpstream(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	f := ca.WriteFiles(t, t.TempDir(), "gw", "gw", "127.0.0.1")
	r, err := tlsutil.NewReloader(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := tlsutil.ServerConfig(r, "")
	if err != nil {
		t.Fatal(err)
	}
	up := startUpstream(t, "u1")
	host, port, _ := net.SplitHostPort(up.addr())
	p, _ := strconv.Atoi(port)
	store := registry.NewStore()
	rt, verr := registry.NormalizeRoute(registry.Route{ID: "r1", Service: "web", Paths: []string{"/"}})
	if verr != nil {
		t.Fatal(verr)
	}
	tx := store.WriteTxn(1)
	if _, _, _, e := tx.UpsertRoute(rt, false); e != nil {
		t.Fatal(e)
	}
	if _, _, e := tx.RegisterInstance(registry.Instance{ID: "w1", Service: "web", Type: "http", Node: "n1", Address: host, Port: p,
		Status: registry.StatusPassing, Metadata: map[string]string{}, Tags: []string{}, Checks: []registry.Check{}, DependsOn: []string{}}); e != nil {
		t.Fatal(e)
	}
	tx.Commit()
	addr := serveGateway(t, func(d *Deps) { d.TLS = srvTLS; d.Store = store })
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	var res *http.Response
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err = c.Get("https://" + addr + "/hello")
		if err == nil && (res.StatusCode != http.StatusNotFound || time.Now().After(deadline)) {
			break
		}
		if err == nil {
			res.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET over TLS: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Upstream") != "u1" {
		t.Fatalf("status %d body %s; want the upstream's 200", res.StatusCode, body)
	}
	last := up.last.Load()
	if last == nil || last.Header.Get("X-Forwarded-Proto") != "https" {
		t.Fatalf("upstream saw X-Forwarded-Proto %q, want https", last.Header.Get("X-Forwarded-Proto"))
	}
}

// TestGatewayClientTimeoutsAroundBodies: a request body that stalls is cut
// off after ClientReadTimeout, while a request without a body may take
// longer than ClientHeaderTimeout upstream and its connection stays usable.
func TestGatewayClientTimeoutsAroundBodies(t *testing.T) {
	e := newEnv(t, Options{ClientHeaderTimeout: 200 * time.Millisecond, ClientReadTimeout: 300 * time.Millisecond})
	up := startUpstream(t, "a")
	up.handle(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(500 * time.Millisecond)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	})
	e.instance("web", "a", up.addr(), nil)
	e.route(registry.Route{ID: "r", Paths: []string{"/"}, Service: "web"})

	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 2 {
		if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the connection: %v", i+1, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("request %d: %d %q", i+1, res.StatusCode, b)
		}
	}

	s, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	// More than the server reads with the headers, less than the gateway
	// buffers (retryable) before proxying.
	if _, err := io.WriteString(s, "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"+strings.Repeat("b", 50000)); err != nil {
		t.Fatal(err)
	}
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(s), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stalled body held the connection for %v", d)
	}
	// The incomplete body is not forwarded (it used to be, replaced by
	// the text of the read error).
	res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout || !res.Close {
		t.Fatalf("stalled body: %d, connection close %v", res.StatusCode, res.Close)
	}
	if got := up.last.Load(); got.URL.Path == "/body" {
		t.Fatalf("upstream received the incomplete request (Content-Length %d)", got.ContentLength)
	}

	// A body cut short by the client (half-close) is refused too.
	h, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := io.WriteString(h, "POST /short HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"+strings.Repeat("b", 50000)); err != nil {
		t.Fatal(err)
	}
	_ = h.(*net.TCPConn).CloseWrite()
	_ = h.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err = http.ReadResponse(bufio.NewReader(h), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !res.Close {
		t.Fatalf("short body: %d, connection close %v", res.StatusCode, res.Close)
	}
	if got := up.last.Load(); got.URL.Path == "/short" {
		t.Fatal("upstream received the short request")
	}
}
