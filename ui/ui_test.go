package ui

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// serve runs one request through the handler.
func serve(t *testing.T, h *Handler, method, uri string, header map[string]string) (*fasthttp.RequestCtx, bool) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetHost("127.0.0.1:8500")
	for k, v := range header {
		ctx.Request.Header.Set(k, v)
	}
	return &ctx, h.Serve(&ctx)
}

func TestHandler_Paths(t *testing.T) {
	h := New()
	cases := []struct {
		name, method, uri string
		served            bool
		status            int
		ctype, location   string
	}{
		{"root redirects", "GET", "/", true, 302, "", "/ui/"},
		{"ui without slash redirects", "GET", "/ui", true, 302, "", "/ui/"},
		{"index", "GET", "/ui/", true, 200, "text/html; charset=utf-8", ""},
		{"index by name", "GET", "/ui/index.html", true, 200, "text/html; charset=utf-8", ""},
		{"stylesheet", "GET", "/ui/app.css", true, 200, "text/css; charset=utf-8", ""},
		{"module", "GET", "/ui/js/app.js", true, 200, "text/javascript; charset=utf-8", ""},
		{"page module", "GET", "/ui/js/pages/services.js", true, 200, "text/javascript; charset=utf-8", ""},
		{"icon", "GET", "/ui/favicon.svg", true, 200, "image/svg+xml", ""},
		{"head", "HEAD", "/ui/app.css", true, 200, "text/css; charset=utf-8", ""},
		{"unknown file", "GET", "/ui/nope.js", true, 404, "application/json", ""},
		{"directory", "GET", "/ui/js/", true, 404, "application/json", ""},
		{"escape out of ui is not ours", "GET", "/ui/../status", false, 200, "", ""},
		{"api path is not ours", "GET", "/status", false, 200, "", ""},
		{"prefix lookalike is not ours", "GET", "/uix/", false, 200, "", ""},
		{"write refused", "POST", "/ui/", true, 405, "application/json", ""},
		{"write on root refused", "DELETE", "/", true, 405, "application/json", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, served := serve(t, h, c.method, c.uri, nil)
			if served != c.served {
				t.Fatalf("served = %v, want %v", served, c.served)
			}
			if !served {
				return
			}
			if got := ctx.Response.StatusCode(); got != c.status {
				t.Fatalf("status %d, want %d (body %q)", got, c.status, ctx.Response.Body())
			}
			if c.ctype != "" {
				if got := string(ctx.Response.Header.ContentType()); got != c.ctype {
					t.Errorf("Content-Type %q, want %q", got, c.ctype)
				}
			}
			if c.location != "" {
				if loc := string(ctx.Response.Header.Peek("Location")); loc != c.location {
					t.Errorf("Location %q, want %q", loc, c.location)
				}
			}
			switch c.status {
			case 200:
				if got := string(ctx.Response.Header.Peek("Content-Security-Policy")); got != CSP {
					t.Errorf("CSP %q, want %q", got, CSP)
				}
				if !strings.Contains(CSP, "default-src 'self'") {
					t.Errorf("CSP %q lacks default-src 'self'", CSP)
				}
				if got := string(ctx.Response.Header.Peek("X-Content-Type-Options")); got != "nosniff" {
					t.Errorf("X-Content-Type-Options %q", got)
				}
				if len(ctx.Response.Header.Peek("ETag")) == 0 {
					t.Error("no ETag")
				}
				if c.method == "GET" && len(ctx.Response.Body()) == 0 {
					t.Error("empty body")
				}
			case 404, 405:
				if !bytes.Contains(ctx.Response.Body(), []byte(`"error":{"code":`)) {
					t.Errorf("body %q is not the API's error shape", ctx.Response.Body())
				}
			}
			if c.status == 405 && string(ctx.Response.Header.Peek("Allow")) != "GET, HEAD" {
				t.Errorf("Allow %q", ctx.Response.Header.Peek("Allow"))
			}
		})
	}
}

func TestHandler_ETag(t *testing.T) {
	h := New()
	ctx, _ := serve(t, h, "GET", "/ui/app.css", nil)
	etag := string(ctx.Response.Header.Peek("ETag"))
	if !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(etag) {
		t.Fatalf("ETag %q is not a quoted hash", etag)
	}
	cases := []struct {
		name, ifNoneMatch string
		status            int
	}{
		{"same tag", etag, 304},
		{"weak form", "W/" + etag, 304},
		{"in a list", `"other", ` + etag, 304},
		{"star", "*", 304},
		{"another tag", `"0000"`, 200},
		{"another file's tag", `"` + strings.Repeat("a", 24) + `"`, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, _ := serve(t, h, "GET", "/ui/app.css", map[string]string{"If-None-Match": c.ifNoneMatch})
			if got := ctx.Response.StatusCode(); got != c.status {
				t.Fatalf("status %d, want %d", got, c.status)
			}
			if c.status == 304 {
				if len(ctx.Response.Body()) != 0 {
					t.Errorf("304 with a body of %d bytes", len(ctx.Response.Body()))
				}
				if string(ctx.Response.Header.Peek("ETag")) != etag {
					t.Errorf("304 ETag %q, want %q", ctx.Response.Header.Peek("ETag"), etag)
				}
			}
		})
	}
	other, _ := serve(t, h, "GET", "/ui/js/app.js", nil)
	if string(other.Response.Header.Peek("ETag")) == etag {
		t.Error("two files share an ETag")
	}
}

func TestHandler_Gzip(t *testing.T) {
	h := New()
	plain, _ := serve(t, h, "GET", "/ui/js/api.js", nil)
	cases := []struct {
		name, accept string
		gzip         bool
	}{
		{"none", "", false},
		{"gzip", "gzip, deflate, br", true},
		{"any", "*", true},
		{"gzip refused", "gzip;q=0, br", false},
		{"gzip with weight", "br;q=1.0, gzip;q=0.8", true},
		{"other only", "br", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, _ := serve(t, h, "GET", "/ui/js/api.js", map[string]string{"Accept-Encoding": c.accept})
			enc := string(ctx.Response.Header.Peek("Content-Encoding"))
			if (enc == "gzip") != c.gzip {
				t.Fatalf("Content-Encoding %q, want gzip %v", enc, c.gzip)
			}
			if string(ctx.Response.Header.Peek("Vary")) != "Accept-Encoding" {
				t.Errorf("Vary %q", ctx.Response.Header.Peek("Vary"))
			}
			if !c.gzip {
				return
			}
			zr, err := gzip.NewReader(bytes.NewReader(ctx.Response.Body()))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain.Response.Body()) {
				t.Error("the gzip body does not decompress to the file")
			}
			if string(ctx.Response.Header.Peek("ETag")) == string(plain.Response.Header.Peek("ETag")) {
				t.Error("the gzip variant has the plain file's ETag")
			}
			again, _ := serve(t, h, "GET", "/ui/js/api.js", map[string]string{"Accept-Encoding": c.accept,
				"If-None-Match": string(ctx.Response.Header.Peek("ETag"))})
			if again.Response.StatusCode() != 304 {
				t.Errorf("revalidating the gzip variant: %d, want 304", again.Response.StatusCode())
			}
		})
	}
}

// TestStatic_Files checks every embedded file: it is served with a known
// type, it names no other host, and the HTML needs nothing the CSP forbids
// (inline scripts, inline styles, inline event handlers).
func TestStatic_Files(t *testing.T) {
	h := New()
	root, err := fs.Sub(embedded, "static")
	if err != nil {
		t.Fatal(err)
	}
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	n := 0
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		if h.files[p] == nil {
			t.Errorf("%s: not served (unknown extension?)", p)
			return nil
		}
		body, _ := fs.ReadFile(root, p)
		for _, m := range external.FindAllString(string(body), -1) {
			if m != "http://www.w3.org" { // the SVG namespace, not a request
				t.Errorf("%s names another host: %q", p, m)
			}
		}
		if strings.HasSuffix(p, ".html") {
			s := string(body)
			if regexp.MustCompile(`<script(?:\s[^>]*)?>`).FindString(s) != "" && !regexp.MustCompile(`<script[^>]*\ssrc=`).MatchString(s) {
				t.Errorf("%s: inline script", p)
			}
			if strings.Contains(s, "<style") || regexp.MustCompile(`\sstyle=`).MatchString(s) {
				t.Errorf("%s: inline style (the CSP forbids it)", p)
			}
			if regexp.MustCompile(`\son[a-z]+=`).MatchString(s) {
				t.Errorf("%s: inline event handler (the CSP forbids it)", p)
			}
		}
		if strings.HasSuffix(p, ".js") && regexp.MustCompile(`\.innerHTML\s*=|insertAdjacentHTML|eval\(|new Function`).Match(body) {
			t.Errorf("%s: builds markup or code from strings", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != h.Size().Files || n < 10 {
		t.Errorf("%d files embedded, %d served", n, h.Size().Files)
	}
}

// TestStatic_PageWeight keeps the console small: the budget is what a
// slow link loads in about a second. docs/benchmarks.md records the figures.
func TestStatic_PageWeight(t *testing.T) {
	s := New().Size()
	t.Logf("console: %d files, %d bytes, %d bytes gzip-compressed", s.Files, s.Bytes, s.GzipBytes)
	if s.Bytes > 200<<10 || s.GzipBytes > 60<<10 {
		t.Errorf("the console weighs %d bytes (%d gzip); budget 200 KiB (60 KiB gzip)", s.Bytes, s.GzipBytes)
	}
}
