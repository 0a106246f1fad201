package api

import (
	"crypto/tls"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/cluster/peerproto"

	"github.com/nexus/nexus/internal/tokenbucket"
)

// Guard holds the admin API's defences against hostile clients
// (docs/security.md). The zero value turns them all off.
type Guard struct {
	// TrustedHosts, when not empty, lists the Host header values the API
	// accepts: "name" matches the name on any port, "name:port" only that
	// port (case-insensitive; IPv6 literals in brackets). Other hosts are
	// answered 421 untrusted_host (DNS rebinding, host header injection).
	TrustedHosts []string
	// RateLimit, when > 0, limits each client IP to RateLimit requests/s
	// with bursts of RateBurst (default 2 × RateLimit, at least 1); refused
	// requests are answered 429 rate_limited with Retry-After. Node-to-node
	// endpoints (/internal/...) are not limited.
	RateLimit float64
	RateBurst int
	// RateLimitMaxIPs bounds the client IPs tracked (default 65536).
	RateLimitMaxIPs int
	// TLS, when set, makes Serve speak TLS only (use GetCertificate for hot
	// reload; ClientAuth for mTLS).
	TLS *tls.Config
}

// guard is the compiled Guard.
type guard struct {
	hosts   map[string]bool // nil: any host
	limiter *tokenbucket.Limiter
	tls     *tls.Config
	now     func() time.Time
}

func newGuard(g Guard) *guard {
	out := &guard{tls: g.TLS, now: time.Now}
	if len(g.TrustedHosts) > 0 {
		out.hosts = make(map[string]bool, len(g.TrustedHosts))
		for _, h := range g.TrustedHosts {
			out.hosts[strings.ToLower(strings.TrimSpace(h))] = true
		}
	}
	if g.RateLimit > 0 && !math.IsInf(g.RateLimit, 0) {
		burst := g.RateBurst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(2*g.RateLimit)))
		}
		maxIPs := g.RateLimitMaxIPs
		if maxIPs <= 0 {
			maxIPs = 1 << 16
		}
		out.limiter = tokenbucket.New(g.RateLimit, burst, maxIPs)
	}
	return out
}

// guardRequest returns the answer to a request the guard refuses, or nil.
func (s *Server) guardRequest(ctx *fasthttp.RequestCtx) *apiError {
	g := s.guard
	if g.hosts != nil {
		host := strings.ToLower(string(ctx.Host()))
		if !g.trustedHost(host) {
			s.metrics.rejected.WithLabelValues("untrusted_host").Inc()
			return &apiError{status: fasthttp.StatusMisdirectedRequest, code: "untrusted_host", field: "Host",
				message: "host " + strconv.Quote(host) + " is not in trusted_hosts"}
		}
	}
	if g.limiter != nil && !isInternalPath(ctx.Path()) {
		ip := ctx.RemoteIP()
		d := g.limiter.Allow(ip, g.now().UnixNano())
		if !d.Allowed {
			s.metrics.rejected.WithLabelValues("rate_limited").Inc()
			secs := max(1, int64(math.Ceil(d.RetryAfter.Seconds())))
			ctx.Response.Header.Set("Retry-After", strconv.FormatInt(secs, 10))
			return &apiError{status: fasthttp.StatusTooManyRequests, code: "rate_limited",
				message: "too many requests from " + ip.String() + " (admin_rate_limit); retry after " + strconv.FormatInt(secs, 10) + "s"}
		}
	}
	return nil
}

func (g *guard) trustedHost(host string) bool {
	if g.hosts[host] {
		return true
	}
	if name, _, err := net.SplitHostPort(host); err == nil {
		if strings.Contains(name, ":") {
			name = "[" + name + "]"
		}
		return g.hosts[name]
	}
	return false
}

func isInternalPath(p []byte) bool { return peerproto.IsInternal(string(p)) }
