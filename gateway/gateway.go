package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/gateway/plugin/cache"
	"github.com/nexus/nexus/gateway/ratelimit"
	"github.com/nexus/nexus/registry"
)

// Exchanger carries small broadcasts between the gateway nodes of a cluster
// (cluster-scope rate limiting). The cluster package implements it over
// gossip; see ratelimit.Exchanger for the contract.
type Exchanger = ratelimit.Exchanger

// Gateway serves the API gateway of one node.
type Gateway struct {
	opts   Options
	store  *registry.Store
	logger *slog.Logger
	access *slog.Logger
	now    func() time.Time

	table   atomic.Pointer[Table]
	ids     *idGen
	metrics *metrics
	linger  *lingerer
	builder *builder
	cache   *cache.Cache
	sharer  *ratelimit.Sharer
	server  *fasthttp.Server
	tls     *tls.Config

	cancel context.CancelFunc
	wg     sync.WaitGroup

	bodies sync.Pool // *bytes.Buffer for request bodies read before proxying

	wsConns atomic.Int64
	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
}

// New builds the first routing table from the store and starts the watcher
// that rebuilds it on every change. Call Serve to take traffic and Shutdown
// to stop.
func New(deps Deps) (*Gateway, error) {
	if deps.Store == nil {
		return nil, errors.New("gateway: Deps.Store is required")
	}
	if deps.Logger == nil {
		return nil, errors.New("gateway: Deps.Logger is required")
	}
	opts := deps.Options
	opts.setDefaults()
	g := &Gateway{
		opts:    opts,
		store:   deps.Store,
		logger:  deps.Logger,
		access:  deps.AccessLog,
		now:     time.Now,
		ids:     newIDGen(),
		metrics: newMetrics(deps.Registerer),
		conns:   map[net.Conn]struct{}{},
		tls:     deps.TLS,
	}
	g.linger = newLingerer(g.metrics)
	g.cache = cache.New(opts.CacheMaxBytes, opts.CacheMaxEntryBytes, nil)
	g.sharer = ratelimit.NewSharer(deps.Exchanger, deps.Node, opts.ShareInterval, deps.Logger)
	g.builder = newBuilder(g)
	g.server = g.newServer()

	// Listen before the first build: a change committed in between is
	// then applied on top of it (changes apply idempotently).
	w := newWatcher()
	stopListen := g.store.Listen(w)
	g.rebuild()
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.wg.Add(2)
	go func() {
		defer g.wg.Done()
		defer stopListen()
		g.watch(ctx, w)
	}()
	go func() {
		defer g.wg.Done()
		g.sharer.Run(ctx, func(route string, share float64) {
			g.metrics.shareFraction.WithLabelValues(route).Set(share)
		})
	}()
	return g, nil
}

// Serve accepts gateway traffic on ln until Shutdown: TLS only when
// Deps.TLS is set.
func (g *Gateway) Serve(ln net.Listener) error {
	ln = lingerListener{Listener: ln, linger: g.linger, plain: g.opts.PlainSocketIO}
	if g.tls != nil {
		ln = tls.NewListener(ln, g.tls)
	}
	return g.server.Serve(ln)
}

// Handler returns the request handler (for in-memory tests).
func (g *Gateway) Handler() fasthttp.RequestHandler { return g.serve }

// Table returns the current routing table.
func (g *Gateway) Table() *Table { return g.table.Load() }

// Shutdown stops accepting connections, lets in-flight requests finish
// until ctx ends, closes WebSocket tunnels and stops the watcher.
func (g *Gateway) Shutdown(ctx context.Context) error {
	err := g.server.ShutdownWithContext(ctx)
	g.cancel()
	g.wg.Wait()
	g.connsMu.Lock()
	for c := range g.conns {
		c.Close()
	}
	g.connsMu.Unlock()
	g.builder.pool.closeAll()
	return err
}

// track records the upstream side of a WebSocket tunnel so that Shutdown
// can close it.
func (g *Gateway) track(c net.Conn, add bool) {
	g.connsMu.Lock()
	defer g.connsMu.Unlock()
	if add {
		g.conns[c] = struct{}{}
	} else {
		delete(g.conns, c)
	}
}

func (g *Gateway) newServer() *fasthttp.Server {
	o := g.opts
	return &fasthttp.Server{
		Handler:               g.serve,
		ErrorHandler:          g.badRequest,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		ReadBufferSize:        o.BufferSize,
		WriteBufferSize:       o.BufferSize,
		// Slow-loris: ReadTimeout bounds the headers (and the first byte
		// of a request); once they are in, the body gets ClientReadTimeout.
		// A request without a body (no Content-Length, or 0) reads nothing
		// more, so its deadline is left alone: one timer update and clock
		// read less per request.
		ReadTimeout: o.ClientHeaderTimeout,
		HeaderReceived: func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			if cl := h.ContentLength(); cl == 0 || cl == -2 {
				return fasthttp.RequestConfig{}
			}
			return fasthttp.RequestConfig{ReadTimeout: o.ClientReadTimeout}
		},
		WriteTimeout:                 o.ClientWriteTimeout,
		IdleTimeout:                  o.ClientIdleTimeout,
		MaxRequestBodySize:           o.MaxBufferedBody,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		TCPKeepalive:                 true,
		// The gateway never calls ctx.Time(): no clock read per request.
		LazyRequestTime: true,
		Logger:          fasthttpLogger{g.logger},
	}
}

// badRequest answers requests fasthttp could not parse, in the JSON shape.
func (g *Gateway) badRequest(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small):
		writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, CodeBadRequest, "request headers are too large")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is too large")
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			writeError(ctx, fasthttp.StatusRequestTimeout, CodeBadRequest, "timed out reading the request")
		} else {
			writeError(ctx, fasthttp.StatusBadRequest, CodeBadRequest, "malformed HTTP request")
		}
	}
	ctx.SetConnectionClose()
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	if !f.l.Enabled(context.Background(), slog.LevelDebug) {
		return // formatting costs even when the line is dropped
	}
	f.l.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
}
