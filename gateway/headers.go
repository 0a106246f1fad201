package gateway

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// Hop-by-hop headers (RFC 9110 §7.6.1) never cross the proxy. Connection is
// handled apart because the names it lists are hop-by-hop too.
var hopHeaders = [...]string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "TE", "Trailer", "Upgrade"}

// stripHopRequest removes hop-by-hop headers from the request to the
// upstream. It reports whether the client asked to close its connection.
// One pass finds which are present, so that the common request without
// any costs no deletions.
func stripHopRequest(h *fasthttp.RequestHeader) (clientClose bool) {
	clientClose = h.ConnectionClose()
	found, listed := findHop(h.All())
	if found == 0 && !clientClose {
		return false
	}
	if len(listed) > 0 {
		var lb [256]byte
		delListed(h.DelBytes, append(lb[:0], listed...))
	}
	h.Del("Connection") // also resets the close flag: upstream connections stay alive
	for i, k := range hopHeaders {
		if found&(1<<i) != 0 {
			h.Del(k)
		}
	}
	return clientClose
}

// stripHopResponse removes hop-by-hop headers from the upstream's answer.
// The client connection's fate is the client's and the gateway's business.
func stripHopResponse(h *fasthttp.ResponseHeader) {
	// The client talks HTTP/1.1 with the gateway whatever the upstream spoke.
	h.SetProtocol([]byte("HTTP/1.1"))
	found, listed := findHop(h.All())
	if len(listed) > 0 {
		var lb [256]byte
		delListed(h.DelBytes, append(lb[:0], listed...))
	}
	h.Del("Connection")
	for i, k := range hopHeaders {
		if found&(1<<i) != 0 {
			h.Del(k)
		}
	}
}

// findHop returns a bit per hopHeaders entry present and the value of a
// Connection header that lists more than close/keep-alive. The value
// aliases the header and is used before any change to it.
func findHop(all func(yield func(k, v []byte) bool)) (found uint32, listed []byte) {
	for k, v := range all {
		if len(k) < 2 || len(k) > 19 {
			continue
		}
		if bytes.EqualFold(k, []byte("Connection")) {
			if !bytes.EqualFold(v, []byte("close")) && !bytes.EqualFold(v, []byte("keep-alive")) {
				listed = v
			}
			continue
		}
		for i, hk := range hopHeaders {
			if len(hk) == len(k) && bytes.EqualFold(k, []byte(hk)) {
				found |= 1 << i
			}
		}
	}
	return found, listed
}

// delListed deletes the headers named in a Connection value ("close" and
// "keep-alive" are options, not names).
func delListed(del func([]byte), v []byte) {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) == 0 || bytes.EqualFold(tok, []byte("close")) || bytes.EqualFold(tok, []byte("keep-alive")) {
			continue
		}
		del(tok)
	}
}

// setForwarded adds X-Forwarded-For (appending the client IP to any list
// the client sent), X-Forwarded-Proto and X-Forwarded-Host.
func setForwarded(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	var buf [128]byte
	b := buf[:0]
	if prev := h.Peek("X-Forwarded-For"); len(prev) > 0 {
		b = append(b, prev...)
		b = append(b, ", "...)
	}
	b = appendIP(b, ctx)
	// Keys are given in canonical form, which saves normalizing them.
	h.SetCanonical([]byte("X-Forwarded-For"), b)
	if ctx.IsTLS() {
		h.SetCanonical([]byte("X-Forwarded-Proto"), []byte("https"))
	} else {
		h.SetCanonical([]byte("X-Forwarded-Proto"), []byte("http"))
	}
	h.SetCanonical([]byte("X-Forwarded-Host"), h.Host())
}

// appendIP appends the client's IP address in text form without allocating.
func appendIP(b []byte, ctx *fasthttp.RequestCtx) []byte {
	ip := ctx.RemoteIP()
	if v4 := ip.To4(); v4 != nil {
		for i, x := range v4 {
			if i > 0 {
				b = append(b, '.')
			}
			b = appendUint(b, uint64(x))
		}
		return b
	}
	b, _ = ip.AppendText(b)
	return b
}

func appendUint(b []byte, n uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// rewritePath sets the upstream path after strip_path: the part of path
// after the matched prefix, with a leading "/". The decoded path is quoted
// again so that it is decoded exactly once by the URI.
func rewritePath(uri *fasthttp.URI, path []byte, prefix string) {
	rest := path[min(len(prefix), len(path)):]
	var buf [512]byte
	b := append(buf[:0], '/')
	if len(rest) > 0 && rest[0] == '/' {
		rest = rest[1:]
	}
	b = appendQuotedPath(b, rest)
	uri.SetPathBytes(b)
}

// appendQuotedPath percent-encodes the bytes of a decoded path that may not
// appear raw in a path (RFC 3986 pchar and "/").
func appendQuotedPath(dst, src []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range src {
		if pathSafe(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&0xf])
	}
	return dst
}

func pathSafe(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '/':
		return true
	}
	return false
}
