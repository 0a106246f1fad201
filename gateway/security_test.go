package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
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
