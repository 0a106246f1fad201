package gateway

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/registry"
)

// Deps are what a Gateway needs from the node. Store and Logger are required.
type Deps struct {
	// Store is the node's replica; the gateway only reads it.
	Store *registry.Store
	// Node is this node's name (access log, cluster rate limiting).
	Node string
	// Logger receives operational logs.
	Logger *slog.Logger
	// AccessLog, if not nil, receives one JSON line per request.
	AccessLog *slog.Logger
	// Registerer takes the gateway's Prometheus metrics; nil: not exported.
	Registerer prometheus.Registerer
	// Exchanger carries cluster-scope rate-limit summaries between gateway
	// nodes; nil: cluster-scope limits act as node-scope limits (the full
	// rate on each node).
	Exchanger Exchanger
	// Options tune limits and timeouts; zero values take the defaults.
	Options Options
	// TLS, when set, makes Serve speak TLS only (GetCertificate for hot
	// reload, ClientAuth for client certificates).
	TLS *tls.Config
}

// Options tune the gateway. Zero values take the defaults noted.
type Options struct {
	ConnectTimeout      time.Duration // upstream connect timeout, capped by the route timeout (5s)
	UpstreamIdleTimeout time.Duration // idle keep-alive connections to upstreams are closed after (10s)
	MaxConnsPerUpstream int           // connections per upstream address (4096)
	BufferSize          int           // per-connection read/write buffers; bounds header size (16 KiB)
	MaxBufferedBody     int           // request bodies up to this are buffered (and retryable); larger ones stream (1 MiB)
	MaxBufferedResponse int           // responses buffered for cache/compression are at most this big (16 MiB)
	ClientIdleTimeout   time.Duration // idle client keep-alive connections are closed after (90s)
	ClientReadTimeout   time.Duration // bound on reading one request body from a client (5m)
	ClientHeaderTimeout time.Duration // bound on reading one request's headers (slow-loris; 10s)
	ClientWriteTimeout  time.Duration // bound on writing one response to a client (slow readers; 5m; WebSocket tunnels are not bounded)
	CacheMaxBytes       int           // total size of the response cache (64 MiB)
	CacheMaxEntryBytes  int           // largest cacheable response body (1 MiB)
	RateLimitMaxKeys    int           // keys tracked per rate-limited route (1M)
	ShareInterval       time.Duration // cluster-scope rate-limit exchange period (1s)
	// PlainSocketIO makes client and upstream connections use net.Conn's
	// own reads and writes instead of raw system calls (rawconn_linux.go;
	// false: raw on Linux).
	PlainSocketIO bool
}

func (o *Options) setDefaults() {
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	defInt := func(p *int, d int) {
		if *p <= 0 {
			*p = d
		}
	}
	def(&o.ConnectTimeout, 5*time.Second)
	def(&o.UpstreamIdleTimeout, 10*time.Second)
	def(&o.ClientIdleTimeout, 90*time.Second)
	def(&o.ClientReadTimeout, 5*time.Minute)
	def(&o.ClientHeaderTimeout, 10*time.Second)
	def(&o.ClientWriteTimeout, 5*time.Minute)
	def(&o.ShareInterval, time.Second)
	defInt(&o.MaxConnsPerUpstream, 4096)
	defInt(&o.BufferSize, 16<<10)
	defInt(&o.MaxBufferedBody, 1<<20)
	defInt(&o.MaxBufferedResponse, 16<<20)
	defInt(&o.CacheMaxBytes, 64<<20)
	defInt(&o.CacheMaxEntryBytes, 1<<20)
	defInt(&o.RateLimitMaxKeys, 1<<20)
}
