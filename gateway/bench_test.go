package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/registry"
)

const benchSecret = "bench-secret-0123456789"

// benchGateway returns a gateway over a store with 50 routes of which one,
// r-bench (/api/v1/, strip_path), has three passing instances.
func benchGateway(b *testing.B, addrs []string, mutate func(*registry.Route)) *Gateway {
	return benchGatewayRoutes(b, addrs, 50, mutate)
}

// benchGatewayRoutes is benchGateway with n other routes, of paths of 8 to
// 14 bytes.
func benchGatewayRoutes(b *testing.B, addrs []string, n int, mutate func(*registry.Route)) *Gateway {
	b.Helper()
	store := registry.NewStore()
	tx := store.WriteTxn(1)
	for i, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		p := 0
		for _, c := range port {
			p = p*10 + int(c-'0')
		}
		in := registry.Instance{ID: "i" + string(rune('a'+i)), Service: "api", Type: "http", Address: host, Port: p,
			Node: "n1", Status: registry.StatusPassing, Metadata: map[string]string{}}
		if _, _, err := tx.RegisterInstance(in); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		r, _ := registry.NormalizeRoute(registry.Route{ID: fmt.Sprintf("r-%d", i),
			Paths: []string{fmt.Sprintf("/svc%d/%s", i, strings.Repeat("x", i%7))}, Service: "other"})
		_, _, _, _ = tx.UpsertRoute(r, false)
	}
	spec := registry.Route{ID: "r-bench", Hosts: []string{"api.example"}, Paths: []string{"/api/v1/"}, Service: "api", StripPath: true}
	if mutate != nil {
		mutate(&spec)
	}
	r, verr := registry.NormalizeRoute(spec)
	if verr != nil {
		b.Fatal(verr)
	}
	_, _, _, _ = tx.UpsertRoute(r, false)
	_, _, _ = tx.ConfigSet([]registry.ConfigWrite{{Key: "gateway/jwt/default", Value: []byte(`{"alg":"HS256","secret":"` + benchSecret + `"}`)}})
	tx.Commit()
	g, err := New(Deps{Store: store, Node: "n1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = g.Shutdown(b.Context()) })
	return g
}

// BenchmarkHotPath measures what the gateway does per request before the
// upstream round trip: request id, match, plugins off, endpoint pick and
// the upstream request headers (hop-by-hop, X-Forwarded-*, strip_path,
// Host). It must not allocate.
func BenchmarkHotPath(b *testing.B) {
	benchHotPath(b, benchGateway(b, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}, nil))
}

// BenchmarkHotPathRoutes is the hot path with 1 and with 10,000 other
// routes: matching costs the path's distinct prefix lengths, not the
// number of routes (issue 21: throughput with 10,000 routes >= 0.9x).
func BenchmarkHotPathRoutes(b *testing.B) {
	for _, n := range []int{1, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			benchHotPath(b, benchGatewayRoutes(b, []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}, n, nil))
		})
	}
}

func benchHotPath(b *testing.B, g *Gateway) {
	var tmpl fasthttp.Request
	tmpl.Header.SetMethod("GET")
	tmpl.SetRequestURI("/api/v1/users/42?verbose=1")
	tmpl.Header.SetHost("api.example")
	tmpl.Header.Set("User-Agent", "bench")
	tmpl.Header.Set("Accept", "*/*")
	tmpl.Header.Set("Connection", "keep-alive")
	var ctx fasthttp.RequestCtx
	ctx.Init(&tmpl, &net.TCPAddr{IP: net.IPv4(192, 168, 1, 7), Port: 5555}, nil)
	b.ReportAllocs()
	for b.Loop() {
		tmpl.CopyTo(&ctx.Request)
		hotPath(g, &ctx)
	}
}

// hotPath is serve() up to the upstream call, with the same functions.
func hotPath(g *Gateway, ctx *fasthttp.RequestCtx) {
	t := g.table.Load()
	var idbuf [maxRequestIDLen]byte
	rid := ctx.Request.Header.Peek(HeaderRequestID)
	if validRequestID(rid) {
		rid = append(idbuf[:0], rid...)
	} else {
		rid = g.ids.appendID(idbuf[:0])
		ctx.Request.Header.SetBytesV(HeaderRequestID, rid)
	}
	m, ok := t.router.Match(ctx.Host(), ctx.Path(), ctx.Method())
	if !ok {
		panic("no match")
	}
	r := m.Value.Load()
	prepareRequest(ctx, r, m)
	var tried uint64
	i := pick(r, 0, &tried, g.now().UnixNano())
	ep := &r.endpoints[i]
	ctx.Request.Header.SetHost(ep.up.addr)
	ctx.Request.UseHostHeader = true
	ctx.Response.Header.SetBytesV(HeaderRequestID, rid)
	r.metrics.count(200)
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	res := testing.Benchmark(BenchmarkHotPath)
	if a := res.AllocsPerOp(); a != 0 {
		t.Fatalf("hot path allocates %d times per request", a)
	}
}

// TestProxyDoesNotAllocate: a whole proxied request with plugins, small
// answer included, allocates nothing (fasthttp's streamed client answer
// cost 4 allocations per request before transport.go read it whole).
func TestProxyDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	res := testing.Benchmark(BenchmarkProxyPlugins)
	if a := res.AllocsPerOp(); a != 0 {
		t.Fatalf("a proxied request allocates %d times", a)
	}
}

// BenchmarkProxy is a full request through the handler to a real fasthttp
// upstream on loopback (keep-alive), without plugins.
func BenchmarkProxy(b *testing.B) {
	benchProxy(b, nil)
}

func benchProxy(b *testing.B, mutate func(*registry.Route)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("hello") }}
	go func() { _ = up.Serve(ln) }()
	b.Cleanup(func() { _ = up.Shutdown() })
	g := benchGateway(b, []string{ln.Addr().String()}, mutate)
	h := g.Handler()
	var tmpl fasthttp.Request
	tmpl.Header.SetMethod("GET")
	tmpl.SetRequestURI("/api/v1/users/42")
	tmpl.Header.SetHost("api.example")
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "bench"}).SignedString([]byte(benchSecret))
	tmpl.Header.Set("Authorization", "Bearer "+tok)
	var ctx fasthttp.RequestCtx
	ctx.Init(&tmpl, &net.TCPAddr{IP: net.IPv4(192, 168, 1, 7), Port: 5555}, nil)
	b.ReportAllocs()
	for b.Loop() {
		tmpl.CopyTo(&ctx.Request)
		ctx.Response.Reset()
		h(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		_ = ctx.Response.Body() // drains the streamed body, as the server does
		_ = ctx.Response.CloseBodyStream()
	}
}

// BenchmarkProxyPlugins is BenchmarkProxy with a rate limit (never reached)
// and JWT auth on the route.
func BenchmarkProxyPlugins(b *testing.B) {
	benchProxy(b, func(r *registry.Route) {
		r.RateLimit = &registry.RateLimit{RPS: 1e7, Burst: 1e7, Key: "ip"}
		r.Auth = &registry.AuthPolicy{Type: "jwt"}
	})
}
