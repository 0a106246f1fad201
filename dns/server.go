package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	miekg "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
const (
	DefaultDomain          = "nexus"
	DefaultPort            = 8600
	DefaultRecursorTimeout = 2 * time.Second
)

// Config is what the agent's settings give the DNS server.
type Config struct {
	// Addr is the listen address, UDP and TCP (HOST:PORT). Port 0 picks a
	// free port, the same for both.
	Addr string
	// Domain is the zone served, without a trailing dot (default "nexus").
	Domain string
	// TTL of every answer, negative answers included (whole seconds).
	TTL time.Duration
	// OnlyPassing leaves warning instances out too (critical ones always are).
	OnlyPassing bool
	// Recursors (HOST:PORT) answer names outside Domain, tried in order;
	// none: such names are REFUSED.
	Recursors []string
	// RecursorTimeout bounds one exchange with a recursor (default 2s).
	RecursorTimeout time.Duration
}

// Deps are what the server reads. Catalog and Logger are required.
type Deps struct {
	Catalog    Catalog
	Membership Membership // nil: no NODE.node names, SRV targets are addr names
	Logger     *slog.Logger
	// Registerer takes the server's metrics; nil: not exported.
	Registerer prometheus.Registerer
}

// Server answers DNS queries over UDP and TCP.
type Server struct {
	cfg        Config
	domain     string // lower case, no trailing dot
	zone       string // domain + "."
	ttl        uint32
	catalog    Catalog
	membership Membership
	logger     *slog.Logger
	metrics    *metrics

	views   views
	members members

	mu       sync.Mutex
	udp, tcp *miekg.Server
	udpAddr  net.Addr
	tcpAddr  net.Addr
}

// New checks cfg and returns a server that is not listening yet.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Catalog == nil {
		return nil, errors.New("dns: Deps.Catalog is required")
	}
	if deps.Logger == nil {
		return nil, errors.New("dns: Deps.Logger is required")
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	domain := strings.ToLower(strings.TrimSuffix(cfg.Domain, "."))
	if !validDomain(domain) {
		return nil, fmt.Errorf("dns: domain %q is not a domain name", cfg.Domain)
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("dns: negative TTL %s", cfg.TTL)
	}
	if cfg.RecursorTimeout <= 0 {
		cfg.RecursorTimeout = DefaultRecursorTimeout
	}
	for _, r := range cfg.Recursors {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return nil, fmt.Errorf("dns: recursor %q is not HOST:PORT", r)
		}
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg: cfg, domain: domain, zone: domain + ".", ttl: uint32(cfg.TTL / time.Second),
		catalog: deps.Catalog, membership: deps.Membership, logger: deps.Logger, metrics: m,
		views: views{m: make(map[string]*view)},
	}, nil
}

// Start listens on cfg.Addr (UDP and TCP) and serves in the background.
// An address that cannot be bound is an error here.
func (s *Server) Start() error {
	pc, ln, err := listen(s.cfg.Addr)
	if err != nil {
		return err
	}
	udp := &miekg.Server{PacketConn: pc, Handler: s}
	tcp := &miekg.Server{Listener: ln, Handler: s}
	if err := serve(udp); err != nil {
		pc.Close()
		ln.Close()
		return fmt.Errorf("dns: udp %s: %w", pc.LocalAddr(), err)
	}
	if err := serve(tcp); err != nil {
		_ = udp.Shutdown()
		ln.Close()
		return fmt.Errorf("dns: tcp %s: %w", ln.Addr(), err)
	}
	s.mu.Lock()
	s.udp, s.tcp, s.udpAddr, s.tcpAddr = udp, tcp, pc.LocalAddr(), ln.Addr()
	s.mu.Unlock()
	s.logger.Info("dns started", "udp_addr", pc.LocalAddr().String(), "tcp_addr", ln.Addr().String(),
		"domain", s.domain, "ttl", s.cfg.TTL.String(), "only_passing", s.cfg.OnlyPassing, "recursors", s.cfg.Recursors)
	return nil
}

// serve starts srv and waits until it reads, or until it fails.
func serve(srv *miekg.Server) error {
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	failed := make(chan error, 1)
	go func() { failed <- srv.ActivateAndServe() }()
	select {
	case <-started:
		return nil
	case err := <-failed:
		if err == nil {
			err = errors.New("stopped at start")
		}
		return err
	}
}

// listen binds UDP and TCP on addr; with port 0 both get the same free port.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: %q is not HOST:PORT", addr)
	}
	var lastErr error
	for try := 0; try < 10; try++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: %w", err)
		}
		tcpAddr := addr
		if port == "0" {
			tcpAddr = net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
		}
		ln, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = fmt.Errorf("dns: %w", err)
		if port != "0" {
			break
		}
	}
	return nil, nil, lastErr
}

// UDPAddr and TCPAddr are the bound addresses (nil before Start).
func (s *Server) UDPAddr() net.Addr { s.mu.Lock(); defer s.mu.Unlock(); return s.udpAddr }

// TCPAddr is the bound TCP address (nil before Start).
func (s *Server) TCPAddr() net.Addr { s.mu.Lock(); defer s.mu.Unlock(); return s.tcpAddr }

// Shutdown stops both listeners and waits for queries being answered,
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	udp, tcp := s.udp, s.tcp
	s.udp, s.tcp = nil, nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range []*miekg.Server{udp, tcp} {
		if srv != nil {
			if err := srv.ShutdownContext(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if udp != nil {
		s.logger.Info("dns stopped")
	}
	return errors.Join(errs...)
}

// ServeDNS implements miekg's Handler: one query, one answer.
func (s *Server) ServeDNS(w miekg.ResponseWriter, req *miekg.Msg) {
	start := time.Now()
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	resp := s.respond(req, tcp)
	s.metrics.observe(req, resp, time.Since(start)) // before the client can see the answer
	if err := w.WriteMsg(resp); err != nil {
		s.logger.Debug("dns answer not sent", "remote", w.RemoteAddr().String(), "err", err)
	}
}

// validDomain accepts a domain name of letters, digits, '-' and '_' labels
// (not starting or ending with '-'), at most 253 bytes.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if b := l[i]; !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
				return false
			}
		}
	}
	return true
}
