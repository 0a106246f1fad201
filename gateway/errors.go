package gateway

import (
	"strconv"

	"github.com/valyala/fasthttp"
)

// Error codes of gateway answers (docs/api.md, "Gateway routes").
const (
	CodeRouteNotFound       = "route_not_found"
	CodeNoHealthyUpstream   = "no_healthy_upstream"
	CodeCircuitOpen         = "circuit_open"
	CodeUpstreamUnreachable = "upstream_unreachable"
	CodeUpstreamError       = "upstream_error"
	CodeUpstreamTimeout     = "upstream_timeout"
	CodeRateLimited         = "rate_limited"
	CodeUnauthenticated     = "unauthenticated"
	CodeCORSDenied          = "cors_origin_denied"
	CodeBadRequest          = "bad_request"
	CodeBodyTooLarge        = "body_too_large"
	CodeUpstreamBusy        = "upstream_busy"
)

// writeError answers {"error":{"code","message"}} with status. Headers
// already set (WWW-Authenticate, Retry-After...) stay; callers drop an
// upstream answer with Response.Reset first.
func writeError(ctx *fasthttp.RequestCtx, status int, code, message string) {
	resp := &ctx.Response
	resp.ResetBody()
	resp.SetStatusCode(status)
	resp.Header.SetContentType("application/json")
	var buf [256]byte
	b := append(buf[:0], `{"error":{"code":`...)
	b = appendJSONString(b, code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, message)
	b = append(b, "}}\n"...)
	resp.SetBody(b)
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// setRetryAfter sets Retry-After in whole seconds, at least 1.
func setRetryAfter(ctx *fasthttp.RequestCtx, secs int64) {
	var buf [20]byte
	ctx.Response.Header.SetBytesV("Retry-After", strconv.AppendInt(buf[:0], max(secs, 1), 10))
}
