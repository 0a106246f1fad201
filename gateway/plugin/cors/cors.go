// Package cors answers CORS preflight requests at the gateway and adds CORS
// headers to proxied answers, per route (docs/api.md route field "cors").
package cors

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/registry"
)

// defaultMethods are allowed in preflights when neither the policy nor the
// route names methods.
var defaultMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// Policy is a compiled CORS policy. Immutable.
type Policy struct {
	anyOrigin   bool
	origins     map[string]bool // lower-cased
	wildcards   []string        // "https://*.example" stored as suffix ".example" with scheme prefix
	credentials bool
	methods     string // Access-Control-Allow-Methods
	headers     string // Access-Control-Allow-Headers; "" echoes the request's
	expose      string
	maxAge      string
}

// New compiles a policy; routeMethods are the route's methods (the default
// allowed methods when the policy names none).
func New(p *registry.CORSPolicy, routeMethods []string) *Policy {
	c := &Policy{origins: map[string]bool{}, credentials: p.Credentials}
	for _, o := range p.Origins {
		o = strings.ToLower(strings.TrimSuffix(o, "/"))
		switch {
		case o == "*":
			c.anyOrigin = true
		case strings.Contains(o, "://*."):
			c.wildcards = append(c.wildcards, o)
		default:
			c.origins[o] = true
		}
	}
	methods := p.Methods
	if len(methods) == 0 {
		methods = routeMethods
	}
	if len(methods) == 0 {
		methods = defaultMethods
	}
	c.methods = strings.ToUpper(strings.Join(methods, ", "))
	c.headers = strings.Join(p.Headers, ", ")
	c.expose = strings.Join(p.ExposeHeaders, ", ")
	if p.MaxAge != "" {
		if d, err := time.ParseDuration(p.MaxAge); err == nil {
			c.maxAge = strconv.Itoa(int(d.Seconds()))
		}
	}
	return c
}

// Allowed reports whether origin may use the route.
func (c *Policy) Allowed(origin []byte) bool {
	if len(origin) == 0 {
		return false
	}
	if c.anyOrigin {
		return true
	}
	var buf [256]byte
	if len(origin) > len(buf) {
		return false
	}
	lower := buf[:len(origin)]
	for i, ch := range origin {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		lower[i] = ch
	}
	if c.origins[string(lower)] {
		return true
	}
	for _, w := range c.wildcards {
		// "https://*.example": scheme must match, host must end in ".example"
		// with at least one more label.
		star := strings.Index(w, "*")
		scheme, suffix := w[:star], w[star+1:]
		if bytes.HasPrefix(lower, []byte(scheme)) && len(lower) > len(scheme)+len(suffix) &&
			bytes.HasSuffix(lower, []byte(suffix)) {
			return true
		}
	}
	return false
}

// IsPreflight reports a CORS preflight: OPTIONS with Origin and
// Access-Control-Request-Method.
func IsPreflight(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsOptions() && len(ctx.Request.Header.Peek("Origin")) > 0 &&
		len(ctx.Request.Header.Peek("Access-Control-Request-Method")) > 0
}

// Preflight answers a preflight request. It returns false when the origin is
// not allowed; the caller answers 403 then.
func (c *Policy) Preflight(ctx *fasthttp.RequestCtx) bool {
	origin := ctx.Request.Header.Peek("Origin")
	if !c.Allowed(origin) {
		return false
	}
	h := &ctx.Response.Header
	c.setOrigin(h, origin)
	h.Set("Access-Control-Allow-Methods", c.methods)
	if c.headers != "" {
		h.Set("Access-Control-Allow-Headers", c.headers)
	} else if req := ctx.Request.Header.Peek("Access-Control-Request-Headers"); len(req) > 0 {
		h.SetBytesV("Access-Control-Allow-Headers", req)
	}
	if c.maxAge != "" {
		h.Set("Access-Control-Max-Age", c.maxAge)
	}
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return true
}

// Decorate adds CORS headers to an actual (non-preflight) answer when the
// request's origin is allowed.
func (c *Policy) Decorate(ctx *fasthttp.RequestCtx) {
	origin := ctx.Request.Header.Peek("Origin")
	if !c.Allowed(origin) {
		if !c.anyOrigin || c.credentials {
			ctx.Response.Header.Add("Vary", "Origin")
		}
		return
	}
	h := &ctx.Response.Header
	c.setOrigin(h, origin)
	if c.expose != "" {
		h.Set("Access-Control-Expose-Headers", c.expose)
	}
}

func (c *Policy) setOrigin(h *fasthttp.ResponseHeader, origin []byte) {
	if c.anyOrigin && !c.credentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.SetBytesV("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	}
	if c.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}
