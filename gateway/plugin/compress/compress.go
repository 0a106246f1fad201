// Package compress compresses gateway answers with brotli or gzip, chosen by
// the client's Accept-Encoding, for compressible content types only.
package compress

import (
	"bytes"
	"strconv"

	"github.com/valyala/fasthttp"
)

// MinSize is the smallest body worth compressing.
const MinSize = 256

// Levels: fast ones; a gateway compresses every answer anew.
const (
	gzipLevel   = fasthttp.CompressBestSpeed
	brotliLevel = fasthttp.CompressBrotliBestSpeed
)

// Apply compresses the buffered response body of ctx in place when the
// client accepts br or gzip (br preferred), the answer is not already
// encoded, its type is compressible and it is at least MinSize bytes.
func Apply(ctx *fasthttp.RequestCtx) {
	resp := &ctx.Response
	if resp.IsBodyStream() || ctx.IsHead() {
		return
	}
	enc := choose(ctx.Request.Header.Peek("Accept-Encoding"))
	if enc == "" {
		return
	}
	resp.Header.Add("Vary", "Accept-Encoding")
	if len(resp.Header.Peek("Content-Encoding")) > 0 || !Compressible(resp.Header.ContentType()) {
		return
	}
	if bytes.Contains(resp.Header.Peek("Cache-Control"), []byte("no-transform")) {
		return
	}
	body := resp.Body()
	if len(body) < MinSize {
		return
	}
	var out []byte
	if enc == "br" {
		out = fasthttp.AppendBrotliBytesLevel(nil, body, brotliLevel)
	} else {
		out = fasthttp.AppendGzipBytesLevel(nil, body, gzipLevel)
	}
	if len(out) >= len(body) {
		return
	}
	resp.Header.Set("Content-Encoding", enc)
	// A strong validator names the identity bytes; make it weak.
	if et := resp.Header.Peek("ETag"); len(et) > 0 && !bytes.HasPrefix(et, []byte("W/")) {
		resp.Header.SetBytesV("ETag", append([]byte("W/"), et...))
	}
	resp.SetBodyRaw(out)
	resp.Header.SetContentLength(len(out))
}

// choose picks "br", "gzip" or "" from an Accept-Encoding value, honouring
// q=0 exclusions.
func choose(ae []byte) string {
	br, gz := quality(ae, "br"), quality(ae, "gzip")
	switch {
	case br > 0 && br >= gz:
		return "br"
	case gz > 0:
		return "gzip"
	}
	return ""
}

// quality returns the q value (0..1000) of coding in an Accept-Encoding list,
// falling back to "*".
func quality(ae []byte, coding string) int {
	star := 0
	for len(ae) > 0 {
		var tok []byte
		if i := bytes.IndexByte(ae, ','); i >= 0 {
			tok, ae = ae[:i], ae[i+1:]
		} else {
			tok, ae = ae, nil
		}
		name, params, _ := bytes.Cut(tok, []byte(";"))
		name = bytes.TrimSpace(name)
		q := 1000
		if p := bytes.TrimSpace(params); bytes.HasPrefix(p, []byte("q=")) {
			if f, err := strconv.ParseFloat(string(p[2:]), 64); err == nil {
				q = int(f * 1000)
			}
		}
		switch {
		case bytes.EqualFold(name, []byte(coding)):
			return q
		case bytes.Equal(name, []byte("*")):
			star = q
		}
	}
	return star
}

// Compressible reports whether a content type benefits from compression:
// text, JSON, XML, JavaScript, SVG and similar; not images, audio, video or
// archives, which are compressed already.
func Compressible(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.ToLower(bytes.TrimSpace(ct))
	switch {
	case len(ct) == 0:
		return false
	case bytes.HasPrefix(ct, []byte("text/")):
		return true
	case bytes.HasSuffix(ct, []byte("+json")), bytes.HasSuffix(ct, []byte("+xml")):
		return true
	}
	switch string(ct) {
	case "application/json", "application/javascript", "application/x-javascript", "application/xml",
		"application/ld+json", "application/graphql-response+json", "image/svg+xml", "application/wasm",
		"application/x-ndjson", "application/yaml", "application/x-www-form-urlencoded":
		return true
	}
	return false
}
