package gateway

import (
	"bytes"
	"encoding/json"
	"github.com/golang-jwt/jwt/v5"
	"net/textproto"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/gateway/plugin/apikey"
	"github.com/nexus/nexus/gateway/plugin/jwtauth"
)

// HeaderConsumer names the authenticated consumer to the upstream.
const HeaderConsumer = "X-Consumer"

// claimHeaderPrefix prefixes forwarded JWT claims: claim "sub" goes upstream
// as X-Jwt-Claim-Sub.
const claimHeaderPrefix = "X-Jwt-Claim-"

// authenticator is a route's auth plugin. (It takes no *reqState, which
// would then escape to the heap on every request.)
type authenticator interface {
	authenticate(ctx *fasthttp.RequestCtx, r *route, now time.Time) authResult
}

// authResult is a refusal (status != 0, code, message) or the identity.
type authResult struct {
	status   int
	code     string
	message  string
	claims   jwt.MapClaims
	consumer string
}

func refuse(status int, code, msg string) authResult {
	return authResult{status: status, code: code, message: msg}
}

type jwtAuth struct {
	v       *jwtauth.Verifier // nil: no usable key configured, every request is refused
	problem string            // why v is nil
	forward []claimHeader
}

type claimHeader struct{ claim, header string }

func newJWTAuth(v *jwtauth.Verifier, problem string, claims []string) *jwtAuth {
	a := &jwtAuth{v: v, problem: problem}
	for _, c := range claims {
		a.forward = append(a.forward, claimHeader{claim: c, header: claimHeaderPrefix + textproto.CanonicalMIMEHeaderKey(c)})
	}
	return a
}

func (a *jwtAuth) authenticate(ctx *fasthttp.RequestCtx, r *route, now time.Time) authResult {
	h := &ctx.Request.Header
	h.Del(HeaderConsumer) // never trust a client's copy
	for _, f := range a.forward {
		h.Del(f.header)
	}
	if a.v == nil {
		return refuse(fasthttp.StatusUnauthorized, CodeUnauthenticated, "JWT authentication is not configured for this route: "+a.problem)
	}
	tok := bearer(h.Peek("Authorization"))
	claims, err := a.v.Verify(tok, now)
	if err != nil {
		if err == jwtauth.ErrNoToken {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer`)
			return refuse(fasthttp.StatusUnauthorized, CodeUnauthenticated, "a bearer token is required")
		}
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		return refuse(fasthttp.StatusUnauthorized, CodeUnauthenticated, "invalid token: "+err.Error())
	}
	for _, f := range a.forward {
		if v, ok := claims[f.claim]; ok {
			h.Set(f.header, claimString(v))
		}
	}
	res := authResult{claims: claims}
	if sub, ok := claims["sub"].(string); ok {
		h.Set(HeaderConsumer, sub)
		res.consumer = sub
	}
	return res
}

// claimString renders a claim as a header value.
func claimString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// bearer returns the token of an "Authorization: Bearer <token>" value.
func bearer(v []byte) []byte {
	const p = "bearer "
	if len(v) > len(p) && bytes.EqualFold(v[:len(p)], []byte(p)) {
		return bytes.TrimSpace(v[len(p):])
	}
	return nil
}

type keyAuth struct{ set *apikey.Set }

func (a *keyAuth) authenticate(ctx *fasthttp.RequestCtx, r *route, _ time.Time) authResult {
	h := &ctx.Request.Header
	key := h.Peek(apikey.Header)
	c, ok := a.set.Lookup(key)
	if !ok {
		if len(key) == 0 {
			return refuse(fasthttp.StatusUnauthorized, CodeUnauthenticated, "an API key is required in "+apikey.Header)
		}
		return refuse(fasthttp.StatusUnauthorized, CodeUnauthenticated, "unknown API key")
	}
	if !c.Allows(r.id) {
		return refuse(fasthttp.StatusForbidden, "permission_denied", "this API key may not use route "+r.id)
	}
	h.Del(apikey.Header)
	h.Set(HeaderConsumer, c.Name)
	return authResult{consumer: c.Name}
}
