package main

import (
	"context"

	"github.com/valyala/fasthttp"
)

// serveUpstream is the benchmark's upstream: a keep-alive fasthttp server
// answering every request with a small fixed body, until ctx ends.
func serveUpstream(ctx context.Context, addr string) error {
	body := []byte("hello, world\n")
	s := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain")
			ctx.SetBody(body)
		},
		NoDefaultServerHeader: true,
	}
	go func() {
		<-ctx.Done()
		_ = s.Shutdown()
	}()
	return s.ListenAndServe(addr)
}
