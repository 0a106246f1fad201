package gateway

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/gateway/breaker"
)

// upstream is one instance address with its keep-alive connection pool,
// in-flight count (least_conn) and outlier detector. It outlives table
// rebuilds while some route uses it.
type upstream struct {
	addr       string
	hc         *fasthttp.HostClient // its connection pool; transport.go does the round trips
	bufferSize int                  // answers with a Content-Length up to this are read whole
	maxBody    int                  // the largest answer read whole for a plugin that needs it
	inflight   atomic.Int64
	outlier    *breaker.Outlier
}

// dialError marks a failure to connect: nothing reached the upstream, so
// the request can go to another instance whatever its method.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func isDialError(err error) bool {
	var d *dialError
	return errors.As(err, &d)
}

// upstreamPool keeps one upstream per address across table rebuilds.
type upstreamPool struct {
	opts    *Options
	metrics *metrics

	mu sync.Mutex
	m  map[string]*upstream
}

func newUpstreamPool(opts *Options, m *metrics) *upstreamPool {
	return &upstreamPool{opts: opts, metrics: m, m: map[string]*upstream{}}
}

func (p *upstreamPool) get(addr string) *upstream {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u := p.m[addr]; u != nil {
		return u
	}
	u := &upstream{addr: addr, hc: p.newClient(addr), bufferSize: p.opts.BufferSize, maxBody: p.opts.MaxBufferedResponse}
	u.outlier = breaker.NewOutlier(func(d time.Duration) { p.metrics.ejections.WithLabelValues(addr).Inc() })
	p.m[addr] = u
	return u
}

// retain drops the upstreams no route uses any more and closes their idle
// connections. In-flight requests on them finish normally.
func (p *upstreamPool) retain(used map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, u := range p.m {
		if !used[addr] {
			delete(p.m, addr)
			u.hc.CloseIdleConnections()
			p.metrics.ejections.DeleteLabelValues(addr)
		}
	}
}

func (p *upstreamPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.m {
		u.hc.CloseIdleConnections()
	}
}

func (p *upstreamPool) newClient(addr string) *fasthttp.HostClient {
	o := p.opts
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	return &fasthttp.HostClient{
		Addr: addr,
		DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
			d := *dialer
			if timeout > 0 && timeout < d.Timeout {
				d.Timeout = timeout
			}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return nil, &dialError{err: err}
			}
			if o.PlainSocketIO {
				return c, nil
			}
			return newRawConn(c), nil
		},
		NoDefaultUserAgentHeader: true,
		MaxConns:                 o.MaxConnsPerUpstream,
		MaxIdleConnDuration:      o.UpstreamIdleTimeout,
		ReadBufferSize:           o.BufferSize,
		WriteBufferSize:          o.BufferSize,
	}
}
