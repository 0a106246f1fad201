package gateway

import (
	"context"
	"log/slog"

	"github.com/valyala/fasthttp"
)

// logAccess writes one JSON access log line (--gateway-access-log).
func (g *Gateway) logAccess(ctx *fasthttp.RequestCtx, st *reqState, rid []byte) {
	var ipb [64]byte
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs,
		slog.String("request_id", string(rid)),
		slog.String("client_ip", string(appendIP(ipb[:0], ctx))),
		slog.String("method", string(ctx.Method())),
		slog.String("host", st.host),
		slog.String("path", st.path),
		slog.Int("status", ctx.Response.StatusCode()),
		slog.Float64("latency_ms", float64(g.now().Sub(st.start).Microseconds())/1000),
	)
	if st.route != nil {
		attrs = append(attrs, slog.String("route", st.route.id), slog.String("service", st.route.service))
	}
	if st.ep != nil {
		attrs = append(attrs,
			slog.String("upstream", st.ep.up.addr),
			slog.String("instance", st.ep.id),
			slog.Int("attempts", st.attempts),
			slog.Float64("upstream_ms", float64(st.upstreamDur.Microseconds())/1000))
	}
	if st.code != "" {
		attrs = append(attrs, slog.String("error", st.code))
	}
	if st.cache != cacheNone {
		attrs = append(attrs, slog.String("cache", st.cache.String()))
	}
	if st.consumer != "" {
		attrs = append(attrs, slog.String("consumer", st.consumer))
	}
	g.access.LogAttrs(context.Background(), slog.LevelInfo, "gateway request", attrs...)
}
