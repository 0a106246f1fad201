package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// RaftTLS puts the Raft transport on mutual TLS (docs/security.md). Both
// sides authenticate: the listener requires a client certificate from the
// cluster CA, the dialer verifies the server against the cluster CA (and the
// host of the Raft address it dials) and presents this node's certificate.
// Certificates are taken per handshake (GetCertificate,
// GetClientCertificate), so a reloaded pair applies to new connections.
type RaftTLS struct {
	// Server configures the Raft listener: this node's certificate, and
	// ClientAuth tls.RequireAndVerifyClientCert with ClientCAs.
	Server *tls.Config
	// Client configures dials to the other nodes: RootCAs (the cluster CA)
	// and this node's certificate as client certificate.
	Client *tls.Config
	// HandshakeTimeout bounds every handshake, accepted or dialed
	// (default 5 s).
	HandshakeTimeout time.Duration
}

const (
	defaultRaftHandshakeTimeout = 5 * time.Second
	// maxRaftHandshakes bounds the handshakes in progress on the listener;
	// connections beyond it are closed at once.
	maxRaftHandshakes = 64
	// closeGrace bounds the close_notify alert a TLS Close writes: a peer
	// that does not read must not hold up Raft's connection cleanup.
	closeGrace = 500 * time.Millisecond
	// raftTLSLogEvery is how often a handshake failure with one peer is
	// logged; failures in between are counted in the next line.
	raftTLSLogEvery = 30 * time.Second
)

// validate refuses a configuration that would not be mutual TLS.
func (c *RaftTLS) validate() error {
	switch {
	case c.Server == nil || c.Client == nil:
		return errors.New("raft TLS: both a server and a client configuration are required")
	case c.Server.GetCertificate == nil && len(c.Server.Certificates) == 0:
		return errors.New("raft TLS: the server configuration has no certificate")
	case c.Server.ClientAuth != tls.RequireAndVerifyClientCert || c.Server.ClientCAs == nil:
		return errors.New("raft TLS: the server configuration must require and verify client certificates (ClientCAs, RequireAndVerifyClientCert)")
	case c.Client.RootCAs == nil:
		return errors.New("raft TLS: the client configuration must trust the cluster CA (RootCAs), not the system roots")
	case c.Client.GetClientCertificate == nil && len(c.Client.Certificates) == 0:
		return errors.New("raft TLS: the client configuration has no client certificate")
	case c.Client.InsecureSkipVerify:
		return errors.New("raft TLS: the client configuration skips verification")
	}
	return nil
}

// tlsStreamLayer is a raft.StreamLayer over mutual TLS. Accepted
// connections are handshaken in their own goroutines, each bounded by the
// handshake timeout, and reach Accept only once authenticated: a stalled or
// plaintext peer never blocks the accept loop and never reaches Raft.
type tlsStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	timeout   time.Duration
	logger    *slog.Logger
	failures  *prometheus.CounterVec // labels: direction, reason
	limiter   *logLimiter

	ctx    context.Context // done on Close
	cancel context.CancelFunc
	ready  chan net.Conn
	slots  chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// newTLSStreamLayer listens on bind. advertise is what Addr reports (nil:
// the listener's address). failures may be nil.
func newTLSStreamLayer(bind string, advertise net.Addr, cfg RaftTLS, logger *slog.Logger, failures *prometheus.CounterVec) (*tlsStreamLayer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return newTLSStreamLayerOn(ln, advertise, cfg, logger, failures), nil
}

func newTLSStreamLayerOn(ln net.Listener, advertise net.Addr, cfg RaftTLS, logger *slog.Logger, failures *prometheus.CounterVec) *tlsStreamLayer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	timeout := cfg.HandshakeTimeout
	if timeout <= 0 {
		timeout = defaultRaftHandshakeTimeout
	}
	// Raft runs between nodes of the same binary: TLS 1.3 only.
	server := cfg.Server.Clone()
	server.MinVersion = tls.VersionTLS13
	client := cfg.Client.Clone()
	client.MinVersion = tls.VersionTLS13
	s := &tlsStreamLayer{
		ln: ln, advertise: advertise, server: server, client: client, timeout: timeout,
		logger: logger, failures: failures, limiter: newLogLimiter(raftTLSLogEvery),
		ready: make(chan net.Conn), slots: make(chan struct{}, maxRaftHandshakes),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

// acceptLoop accepts TCP connections and hands each to a handshake
// goroutine; it never waits on a peer.
func (s *tlsStreamLayer) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger.Warn("raft accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		delay = 0
		select {
		case s.slots <- struct{}{}:
		default:
			_ = conn.Close()
			s.refused("inbound", conn.RemoteAddr().String(), hostOf(conn.RemoteAddr().String()), "overload",
				fmt.Errorf("more than %d raft TLS handshakes in progress", maxRaftHandshakes))
			continue
		}
		s.wg.Add(1)
		go s.handshake(conn)
	}
}

func (s *tlsStreamLayer) handshake(raw net.Conn) {
	defer s.wg.Done()
	tc := tls.Server(raw, s.server)
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	<-s.slots
	if err != nil {
		_ = raw.Close()
		if s.ctx.Err() == nil {
			remote := raw.RemoteAddr().String()
			s.refused("inbound", remote, hostOf(remote), failureReason(err), err)
		}
		return
	}
	c := &tlsConn{Conn: tc, raw: raw}
	select {
	case s.ready <- c:
	case <-s.ctx.Done():
		_ = c.Close()
	}
}

// tlsConn is an authenticated Raft connection whose Close never blocks
// longer than closeGrace (tls.Conn.Close writes a close_notify alert and
// may wait up to 5 s for a peer that does not read; a TCP close does not).
type tlsConn struct {
	*tls.Conn
	raw net.Conn
}

func (c *tlsConn) Close() error {
	t := time.AfterFunc(closeGrace, func() { _ = c.raw.Close() })
	defer t.Stop()
	return c.Conn.Close()
}

// Accept returns the next authenticated connection.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.ready:
		return c, nil
	case <-s.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops listening and ends the handshakes in progress.
func (s *tlsStreamLayer) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		err = s.ln.Close()
		s.wg.Wait()
	})
	return err
}

// Addr is the advertised address, else the listener's.
func (s *tlsStreamLayer) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.ln.Addr()
}

// Dial connects to address and completes the TLS handshake: the server must
// present a certificate from the cluster CA naming address's host. timeout
// bounds the TCP connect (raft passes its I/O timeout); the handshake is
// bounded by the handshake timeout.
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = s.timeout
	}
	addr := string(address)
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("raft address %q: %w", addr, err)
	}
	dctx, cancel := context.WithTimeout(s.ctx, timeout)
	raw, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, err
	}
	cfg := s.client
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		_ = raw.Close()
		if s.ctx.Err() == nil {
			s.refused("outbound", addr, addr, failureReason(err), err)
		}
		return nil, fmt.Errorf("raft TLS handshake with %s: %w", addr, err)
	}
	return &tlsConn{Conn: tc, raw: raw}, nil
}

// raftTLSFailureCounter registers nexus_raft_tls_handshake_failures_total
// on reg (or returns the one already there).
func raftTLSFailureCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nexus_raft_tls_handshake_failures_total",
		Help: "Raft TLS handshakes that failed or were refused, by direction (inbound, outbound) and reason (certificate, refused_by_peer, not_tls, timeout, overload, other).",
	}, []string{"direction", "reason"})
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("raft TLS metrics: %w", err)
	}
	// The series alerts watch start at 0 rather than appearing on the
	// first failure.
	for _, d := range []string{"inbound", "outbound"} {
		c.WithLabelValues(d, "certificate")
	}
	return c, nil
}

// refused counts a failed handshake and logs it, at most once per
// raftTLSLogEvery for one peer (key).
func (s *tlsStreamLayer) refused(direction, remote, key, reason string, err error) {
	if s.failures != nil {
		s.failures.WithLabelValues(direction, reason).Inc()
	}
	suppressed, ok := s.limiter.allow(direction + " " + key)
	if !ok {
		return
	}
	s.logger.Warn("raft TLS handshake failed", "direction", direction, "remote", remote,
		"reason", reason, "err", err, "suppressed", suppressed)
}

// failureReason classifies a handshake error for the metric.
func failureReason(err error) string {
	var (
		rh tls.RecordHeaderError
		cv *tls.CertificateVerificationError
		op *net.OpError
		ne net.Error
	)
	switch {
	case errors.As(err, &rh):
		return "not_tls"
	case errors.As(err, &cv):
		return "certificate"
	case errors.As(err, &op) && op.Op == "remote error":
		return "refused_by_peer" // the peer sent an alert: it refused us
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "certificate"):
		return "certificate" // e.g. no client certificate
	}
	return "other"
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// logLimiter lets one event per key through every interval and counts
// the ones it held back.
type logLimiter struct {
	every time.Duration
	now   func() time.Time
	mu    sync.Mutex
	seen  map[string]*limitEntry
}

type limitEntry struct {
	last       time.Time
	suppressed int
}

// maxLimiterKeys bounds the keys the limiter remembers (inbound keys are
// remote IPs, which a scan can make many of).
const maxLimiterKeys = 4096

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, now: time.Now, seen: map[string]*limitEntry{}}
}

// allow reports whether an event of key may be logged now, and how many
// were held back since the last one that was.
func (l *logLimiter) allow(key string) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e := l.seen[key]
	if e == nil {
		if len(l.seen) >= maxLimiterKeys {
			for k, v := range l.seen {
				if now.Sub(v.last) >= l.every {
					delete(l.seen, k)
				}
			}
			if len(l.seen) >= maxLimiterKeys {
				return 0, false // flooded by distinct peers: counted, not logged
			}
		}
		l.seen[key] = &limitEntry{last: now}
		return 0, true
	}
	if now.Sub(e.last) < l.every {
		e.suppressed++
		return 0, false
	}
	suppressed, e.suppressed, e.last = e.suppressed, 0, now
	return suppressed, true
}
