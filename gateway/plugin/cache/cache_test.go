package cache

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func reqCtx(path string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod("GET")
	req.SetRequestURI(path)
	req.Header.SetHost("h")
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, nil)
	return ctx
}

func TestLRUBound(t *testing.T) {
	now := time.Unix(100, 0)
	c := New(20_000, 4096, func() time.Time { return now })
	for i := 0; i < 100; i++ {
		ctx := reqCtx(fmt.Sprintf("/p%d", i))
		ctx.Response.SetStatusCode(200)
		ctx.Response.SetBody(make([]byte, 1000))
		c.Store(ctx, "r", time.Minute)
	}
	c.mu.Lock()
	size := c.size
	c.mu.Unlock()
	if size > 20_000 || c.Len() == 0 || c.Len() > 20 {
		t.Fatalf("size %d with %d entries", size, c.Len())
	}
	if c.Lookup(reqCtx("/p0"), "r") {
		t.Error("oldest entry not evicted")
	}
	if !c.Lookup(reqCtx("/p99"), "r") {
		t.Error("newest entry evicted")
	}
	// Too large for one entry.
	ctx := reqCtx("/big")
	ctx.Response.SetStatusCode(200)
	ctx.Response.SetBody(make([]byte, 5000))
	c.Store(ctx, "r", time.Minute)
	if c.Lookup(reqCtx("/big"), "r") {
		t.Error("entry above the size limit stored")
	}
	// Expiry.
	now = now.Add(2 * time.Minute)
	if c.Lookup(reqCtx("/p99"), "r") {
		t.Error("expired entry served")
	}
}

func TestDirectives(t *testing.T) {
	cc := []byte(`public, max-age=60, s-maxage="30", no-transform`)
	cases := []struct {
		name string
		want bool
	}{{"public", true}, {"max-age", true}, {"s-maxage", true}, {"no-store", false}, {"age", false}}
	for _, c := range cases {
		if hasDirective(cc, c.name) != c.want {
			t.Errorf("hasDirective(%q)", c.name)
		}
	}
	if d, ok := directiveSeconds(cc, "s-maxage"); !ok || d != 30*time.Second {
		t.Errorf("s-maxage = %v %v", d, ok)
	}
	if d, ok := directiveSeconds([]byte("max-age=abc"), "max-age"); !ok || d != 0 {
		t.Errorf("malformed max-age = %v %v", d, ok)
	}
}
