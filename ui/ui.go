// Package ui is the web console of a Nexus node: plain HTML, CSS and
// JavaScript modules under static/, embedded in the binary, and the handler
// the admin API mounts at /ui/ (a request for / redirects there).
//
// The files need no token: everything they show comes from the admin API,
// which the pages call with the user's token (docs/ui.md). Nothing is
// fetched from another host; the Content-Security-Policy says so to the
// browser as well.
package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

// Prefix is where the console is served.
const Prefix = "/ui/"

// CSP allows the pages only their own origin: scripts, styles, images and
// API calls; no inline script, no frames, no plugins.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " +
	"frame-ancestors 'none'"

// embedded holds the console's files (read-only; go:embed needs a package
// variable).
//
//go:embed static
var embedded embed.FS

// contentType maps the extensions under static/ to their media types; a
// file of another extension is not served (the unit test checks that every
// embedded file has one).
func contentType(ext string) (string, bool) {
	switch ext {
	case ".html":
		return "text/html; charset=utf-8", true
	case ".css":
		return "text/css; charset=utf-8", true
	case ".js":
		return "text/javascript; charset=utf-8", true
	case ".svg":
		return "image/svg+xml", true
	case ".png":
		return "image/png", true
	}
	return "", false
}

// file is one embedded file, ready to serve.
type file struct {
	ctype    string
	body, gz []byte // gz is nil when compression does not pay
	etag     string // of body; the gzip variant's is etag+"-gz" (inside the quotes)
}

// Handler serves the embedded files. It is safe for concurrent use.
type Handler struct {
	files map[string]*file // by path under static/, "index.html"
	size  Size
}

// Size is the page weight of the console: every file, as stored and as
// sent gzip-compressed.
type Size struct {
	Files, Bytes, GzipBytes int
}

// New reads the embedded files once: content types, ETags (SHA-256) and a
// gzip copy of each text file.
func New() *Handler {
	h := &Handler{files: map[string]*file{}}
	root, _ := fs.Sub(embedded, "static") // "static" is embedded: cannot fail
	_ = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		ctype, ok := contentType(path.Ext(p))
		if !ok {
			return nil
		}
		body, err := fs.ReadFile(root, p)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(body)
		f := &file{ctype: ctype, body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		if strings.HasPrefix(ctype, "text/") || ctype == "image/svg+xml" {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(body)
			_ = zw.Close()
			if buf.Len() < len(body) {
				f.gz = buf.Bytes()
			}
		}
		h.files[p] = f
		h.size.Files++
		h.size.Bytes += len(body)
		if f.gz != nil {
			h.size.GzipBytes += len(f.gz)
		} else {
			h.size.GzipBytes += len(body)
		}
		return nil
	})
	return h
}

// Size returns the page weight of the console.
func (h *Handler) Size() Size { return h.size }

// Serve answers the requests that belong to the console and reports
// whether it did: / (a redirect to /ui/), /ui (the same) and /ui/...
// Anything else is left to the caller.
func (h *Handler) Serve(ctx *fasthttp.RequestCtx) bool {
	p := string(ctx.Path())
	var name string
	switch {
	case p == "/" || p == "/ui":
		if !h.method(ctx) {
			return true
		}
		// A relative Location (RFC 9110) stays right behind a proxy
		// that rewrites the host.
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		ctx.Response.Header.Set(fasthttp.HeaderLocation, Prefix)
		ctx.SetStatusCode(fasthttp.StatusFound)
		return true
	case p == Prefix:
		name = "index.html"
	case strings.HasPrefix(p, Prefix):
		name = p[len(Prefix):]
	default:
		return false
	}
	if !h.method(ctx) {
		return true
	}
	f := h.files[name]
	if f == nil {
		notFound(ctx, p)
		return true
	}
	hd := &ctx.Response.Header
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	// Revalidate every time: the files change with the binary, and a 304
	// costs one round trip.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Vary", "Accept-Encoding")
	body, etag := f.body, f.etag
	gz := f.gz != nil && acceptsGzip(string(ctx.Request.Header.Peek(fasthttp.HeaderAcceptEncoding)))
	if gz {
		body, etag = f.gz, f.etag[:len(f.etag)-1]+`-gz"`
	}
	hd.Set(fasthttp.HeaderETag, etag)
	if etagMatches(string(ctx.Request.Header.Peek(fasthttp.HeaderIfNoneMatch)), etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return true
	}
	hd.SetContentType(f.ctype)
	if gz {
		hd.Set(fasthttp.HeaderContentEncoding, "gzip")
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBody(body)
	return true
}

// method allows GET and HEAD, and answers 405 to anything else.
func (h *Handler) method(ctx *fasthttp.RequestCtx) bool {
	if ctx.IsGet() || ctx.IsHead() {
		return true
	}
	ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD")
	writeError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed",
		"method "+string(ctx.Method())+" is not allowed on the console's files; allowed: GET, HEAD")
	return false
}

func notFound(ctx *fasthttp.RequestCtx, p string) {
	writeError(ctx, fasthttp.StatusNotFound, "not_found", "no such file in the console: "+p)
}

// writeError answers in the admin API's error shape.
func writeError(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		Error detail `json:"error"`
	}{detail{code, msg}}) // strings only: cannot fail
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// acceptsGzip reads an Accept-Encoding header: gzip (or *) with a q above 0.
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.ToLower(params), " ", "")
		if q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000" {
			return false
		}
		return true
	}
	return false
}

// etagMatches reads If-None-Match: "*" or a list of (possibly weak) tags.
func etagMatches(h, etag string) bool {
	if h == "" {
		return false
	}
	for _, t := range strings.Split(h, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
