package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/registry"
)

// TestProbeHTTP classifies real answers of a local server: 2xx passing,
// 429 warning, anything else, a connection error or a timeout critical.
func TestProbeHTTP(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		case r.URL.Path == "/redirect":
			http.Redirect(w, r, "/code/200", http.StatusFound)
			return
		case strings.HasPrefix(r.URL.Path, "/code/"):
			code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/code/"))
			w.WriteHeader(code)
			_, _ = w.Write([]byte("body"))
		}
	}))
	defer srv.Close()
	defer close(release)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		status  string
		output  string // substring of the output
	}{
		{"200", srv.URL + "/code/200", time.Second, registry.StatusPassing, ": 200 OK"},
		{"204", srv.URL + "/code/204", time.Second, registry.StatusPassing, ": 204 No Content"},
		{"299", srv.URL + "/code/299", time.Second, registry.StatusPassing, ": 299"},
		{"redirect to 200 is followed", srv.URL + "/redirect", time.Second, registry.StatusPassing, ": 200 OK"},
		{"429", srv.URL + "/code/429", time.Second, registry.StatusWarning, ": 429 Too Many Requests"},
		{"300", srv.URL + "/code/300", time.Second, registry.StatusCritical, ": 300 Multiple Choices"},
		{"404", srv.URL + "/code/404", time.Second, registry.StatusCritical, ": 404 Not Found"},
		{"428", srv.URL + "/code/428", time.Second, registry.StatusCritical, ": 428"},
		{"500", srv.URL + "/code/500", time.Second, registry.StatusCritical, ": 500 Internal Server Error"},
		{"503", srv.URL + "/code/503", time.Second, registry.StatusCritical, ": 503 Service Unavailable"},
		{"timeout", srv.URL + "/slow", 100 * time.Millisecond, registry.StatusCritical, "deadline exceeded"},
		{"connection refused", closedURL + "/", time.Second, registry.StatusCritical, "refused"},
		{"bad URL", "http://[::1", time.Second, registry.StatusCritical, "bad check URL"},
	}
	p := newProber()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			status, output := p.probe(context.Background(), registry.Check{Kind: registry.CheckHTTP, HTTP: tc.url}, tc.timeout)
			if status != tc.status || !strings.Contains(output, tc.output) {
				t.Fatalf("got %s %q, want %s with %q", status, output, tc.status, tc.output)
			}
			if took := time.Since(start); took > tc.timeout+time.Second {
				t.Fatalf("probe took %v with a timeout of %v", took, tc.timeout)
			}
		})
	}
}

func TestProbeTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	goneAddr := gone.Addr().String()
	gone.Close()

	tests := []struct {
		name, addr, status, output string
	}{
		{"listening", ln.Addr().String(), registry.StatusPassing, "TCP connect " + ln.Addr().String() + ": success"},
		{"nothing listening", goneAddr, registry.StatusCritical, "refused"},
		{"no port", "127.0.0.1", registry.StatusCritical, "missing port"},
	}
	p := newProber()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, output := p.probe(context.Background(), registry.Check{Kind: registry.CheckTCP, TCP: tc.addr}, time.Second)
			if status != tc.status || !strings.Contains(output, tc.output) {
				t.Fatalf("got %s %q, want %s with %q", status, output, tc.status, tc.output)
			}
		})
	}
	if status, out := p.probe(context.Background(), registry.Check{Kind: "grpc"}, time.Second); status != registry.StatusCritical {
		t.Fatalf("unknown kind: %s %q", status, out)
	}
}
