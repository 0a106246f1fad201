package gateway

import (
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// keySpec says where a rate-limit or hash key comes from: "ip",
// "header:NAME", "cookie:NAME" or "jwt:CLAIM".
type keySpec struct {
	kind keyKind
	name string
}

type keyKind uint8

const (
	keyIP keyKind = iota
	keyHeader
	keyCookie
	keyJWT
)

func parseKeySpec(s string) keySpec {
	switch {
	case strings.HasPrefix(s, "header:"):
		return keySpec{kind: keyHeader, name: s[len("header:"):]}
	case strings.HasPrefix(s, "cookie:"):
		return keySpec{kind: keyCookie, name: s[len("cookie:"):]}
	case strings.HasPrefix(s, "jwt:"):
		return keySpec{kind: keyJWT, name: s[len("jwt:"):]}
	}
	return keySpec{kind: keyIP}
}

// appendKey appends the request's key to dst. A missing header, cookie or
// claim falls back to the client IP, so that a client cannot escape a limit
// by omitting it. The kinds are tagged so that an IP never equals a header.
func (k keySpec) appendKey(dst []byte, ctx *fasthttp.RequestCtx, st *reqState) []byte {
	switch k.kind {
	case keyHeader:
		if v := ctx.Request.Header.Peek(k.name); len(v) > 0 {
			return append(append(dst, 'h'), v...)
		}
	case keyCookie:
		if v := ctx.Request.Header.Cookie(k.name); len(v) > 0 {
			return append(append(dst, 'c'), v...)
		}
	case keyJWT:
		if st.claims != nil {
			switch v := st.claims[k.name].(type) {
			case string:
				return append(append(dst, 'j'), v...)
			case float64:
				return strconv.AppendFloat(append(dst, 'j'), v, 'f', -1, 64)
			}
		}
	}
	ip := ctx.RemoteIP()
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return append(append(dst, 'i'), ip...)
}
