package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/internal/tlsutil"
	"github.com/nexus/nexus/internal/tlsutil/tlstest"
)

// lockedBuffer collects log lines from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count returns how many lines contain every one of subs.
func (l *lockedBuffer) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.b.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}

// layerKit is one stream layer under test, with its metrics and logs.
type layerKit struct {
	s    *tlsStreamLayer
	reg  *prometheus.Registry
	logs *lockedBuffer
}

func (k *layerKit) failures(t *testing.T, direction, reason string) float64 {
	t.Helper()
	mfs, err := k.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "nexus_raft_tls_handshake_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["direction"] == direction && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// mtls is a mutual TLS configuration: cert is this side's certificate,
// trust the CA it accepts peers from.
func mtls(cert tls.Certificate, trust *x509.CertPool, timeout time.Duration) RaftTLS {
	return RaftTLS{
		Server:           &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: trust, ClientAuth: tls.RequireAndVerifyClientCert},
		Client:           &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: trust},
		HandshakeTimeout: timeout,
	}
}

func startLayer(t *testing.T, cfg RaftTLS, advertise net.Addr) *layerKit {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	k := &layerKit{reg: prometheus.NewRegistry(), logs: &lockedBuffer{}}
	failures, err := raftTLSFailureCounter(k.reg)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(k.logs, testLog{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	k.s = newTLSStreamLayerOn(ln, advertise, cfg, logger, failures)
	t.Cleanup(func() { k.s.Close() })
	return k
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (n int, err error) {
	defer func() {
		if recover() != nil { // logged after the test ended
			n, err = len(p), nil
		}
	}()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// acceptOne waits up to d for an accepted connection.
func acceptOne(s *tlsStreamLayer, d time.Duration) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := s.Accept(); ch <- res{c, err} }()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-time.After(d):
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, errors.New("nothing accepted")
	}
}

// expectClosed reads from c and expects the peer to close it without
// sending anything, before d.
func expectClosed(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	b := make([]byte, 64)
	n, err := c.Read(b)
	if n > 0 {
		t.Fatalf("got %d bytes %q, want the connection closed", n, b[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection is still open after %s", d)
	}
	if err == nil {
		t.Fatal("read returned neither data nor an error")
	}
}

func TestTLSStreamLayerAcceptDialAddr(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	adv := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8300}
	a := startLayer(t, mtls(ca.KeyPair(t, "a", "127.0.0.1"), ca.Pool(), time.Second), adv)
	b := startLayer(t, mtls(ca.KeyPair(t, "b", "127.0.0.1"), ca.Pool(), time.Second), nil)

	if got := a.s.Addr(); got != adv {
		t.Fatalf("Addr with an advertise address: %v", got)
	}
	if got := b.s.Addr().String(); got != b.s.ln.Addr().String() {
		t.Fatalf("Addr without one: %v, listener %v", got, b.s.ln.Addr())
	}

	cc, err := b.s.Dial(rAddr(a.s.ln.Addr()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc, err := acceptOne(a.s, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()

	// Both ends are TLS 1.3, each authenticated by the other.
	cs := tlsState(cc)
	ss := tlsState(sc)
	if cs.Version != tls.VersionTLS13 || ss.Version != tls.VersionTLS13 {
		t.Fatalf("versions %x %x", cs.Version, ss.Version)
	}
	if cn := cs.PeerCertificates[0].Subject.CommonName; cn != "a" {
		t.Fatalf("client sees server %q", cn)
	}
	if len(ss.PeerCertificates) == 0 || ss.PeerCertificates[0].Subject.CommonName != "b" {
		t.Fatalf("server sees client %+v", ss.PeerCertificates)
	}
	if _, err := cc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q %v", buf, err)
	}
	if _, err := sc.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(cc, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("read %q %v", buf, err)
	}
	if a.failures(t, "inbound", "certificate")+b.failures(t, "outbound", "certificate") != 0 {
		t.Fatal("a successful handshake counted as a failure")
	}
}

func tlsState(c net.Conn) tls.ConnectionState { return c.(*tlsConn).ConnectionState() }

func rAddr(a net.Addr) raft.ServerAddress { return raft.ServerAddress(a.String()) }

func TestTLSStreamLayerRefusesForeignCertificates(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	foreign := tlstest.NewCA(t, "foreign-ca")
	a := startLayer(t, mtls(ca.KeyPair(t, "a", "127.0.0.1"), ca.Pool(), time.Second), nil)

	t.Run("client certificate from another CA", func(t *testing.T) {
		// The intruder trusts the cluster CA, so it accepts a's certificate,
		// but its own comes from another CA.
		x := startLayer(t, mtls(foreign.KeyPair(t, "x", "127.0.0.1"), ca.Pool(), time.Second), nil)
		if c, err := x.s.Dial(rAddr(a.s.ln.Addr()), time.Second); err == nil {
			// TLS 1.3: the client finishes before the server verified it;
			// the server's refusal arrives as an alert on the first read.
			expectClosed(t, c, 2*time.Second)
			c.Close()
		}
		if c, err := acceptOne(a.s, 500*time.Millisecond); err == nil {
			c.Close()
			t.Fatal("a accepted a client certificate of another CA")
		}
		retry.Run(t, retry.Cond("the refusal counted", func() bool { return a.failures(t, "inbound", "certificate") == 1 }), retry.Timeout(2*time.Second))
		if a.logs.count("raft TLS handshake failed", "direction=inbound", "reason=certificate") != 1 {
			t.Fatalf("logs: %s", a.logs.b.String())
		}
	})

	t.Run("client without a certificate", func(t *testing.T) {
		c, err := tls.Dial("tcp", a.s.ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13})
		if err == nil {
			expectClosed(t, c, 2*time.Second)
			c.Close()
		}
		retry.Run(t, retry.Cond("the refusal counted", func() bool { return a.failures(t, "inbound", "certificate") == 2 }), retry.Timeout(2*time.Second))
	})

	t.Run("server certificate from another CA", func(t *testing.T) {
		x := startLayer(t, mtls(foreign.KeyPair(t, "x", "127.0.0.1"), ca.Pool(), time.Second), nil)
		before := a.failures(t, "outbound", "certificate")
		if c, err := a.s.Dial(rAddr(x.s.ln.Addr()), time.Second); err == nil {
			c.Close()
			t.Fatal("a dialed a server with a certificate of another CA")
		}
		if got := a.failures(t, "outbound", "certificate"); got != before+1 {
			t.Fatalf("outbound certificate failures %v, want %v", got, before+1)
		}
		retry.Run(t, retry.Cond("x sees a's refusal", func() bool { return x.failures(t, "inbound", "refused_by_peer") == 1 }), retry.Timeout(2*time.Second))
	})

	t.Run("server certificate for another host", func(t *testing.T) {
		x := startLayer(t, mtls(ca.KeyPair(t, "x", "10.9.9.9"), ca.Pool(), time.Second), nil)
		if c, err := a.s.Dial(rAddr(x.s.ln.Addr()), time.Second); err == nil {
			c.Close()
			t.Fatal("a accepted a server certificate that does not name 127.0.0.1")
		}
	})
}

func TestTLSStreamLayerRefusesPlaintext(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	a := startLayer(t, mtls(ca.KeyPair(t, "a", "127.0.0.1"), ca.Pool(), 2*time.Second), nil)
	const tries = 5
	for i := 0; i < tries; i++ {
		c, err := net.Dial("tcp", a.s.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		// What a plain Raft transport sends first: the RPC type byte
		// (rpcRequestVote) and a msgpack map.
		if _, err := c.Write([]byte{1, 0x85, 0xa4, 'T', 'e', 'r', 'm', 0x05}); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c, time.Second)
		c.Close()
	}
	if c, err := acceptOne(a.s, 200*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("a plaintext connection reached Accept")
	}
	retry.Run(t, retry.Cond("refusals counted", func() bool { return a.failures(t, "inbound", "not_tls") == tries }), retry.Timeout(2*time.Second))
	// One peer, one line per 30 s: the retries are counted, not logged.
	if n := a.logs.count("raft TLS handshake failed", "reason=not_tls"); n != 1 {
		t.Fatalf("%d log lines for %d refusals from one peer, want 1:\n%s", n, tries, a.logs.b.String())
	}
}

func TestTLSStreamLayerHandshakeTimeout(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	const timeout = 800 * time.Millisecond
	a := startLayer(t, mtls(ca.KeyPair(t, "a", "127.0.0.1"), ca.Pool(), timeout), nil)
	b := startLayer(t, mtls(ca.KeyPair(t, "b", "127.0.0.1"), ca.Pool(), timeout), nil)

	t.Run("a stalled client blocks neither Accept nor other peers, and is cut off", func(t *testing.T) {
		var stalled []net.Conn
		for i := 0; i < 3; i++ {
			c, err := net.Dial("tcp", a.s.ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			stalled = append(stalled, c)
		}
		start := time.Now()
		cc, err := b.s.Dial(rAddr(a.s.ln.Addr()), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		sc, err := acceptOne(a.s, timeout/2)
		if err != nil {
			t.Fatalf("a good peer waited behind stalled ones: %v", err)
		}
		sc.Close()
		if d := time.Since(start); d >= timeout/2 {
			t.Fatalf("handshake with a good peer took %s while others stalled", d)
		}
		for _, c := range stalled {
			expectClosed(t, c, timeout+2*time.Second)
		}
		if d := time.Since(start); d < timeout/2 {
			t.Fatalf("stalled connections closed after %s, before the handshake timeout %s", d, timeout)
		}
		retry.Run(t, retry.Cond("timeouts counted", func() bool { return a.failures(t, "inbound", "timeout") == 3 }), retry.Timeout(time.Second))
	})

	t.Run("dialing a server that never answers", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		held := make(chan net.Conn, 1)
		go func() {
			if c, err := ln.Accept(); err == nil {
				held <- c
			}
		}()
		start := time.Now()
		c, err := b.s.Dial(rAddr(ln.Addr()), 10*time.Second)
		if err == nil {
			c.Close()
			t.Fatal("handshake with a silent server succeeded")
		}
		if d := time.Since(start); d < timeout/2 || d > timeout+2*time.Second {
			t.Fatalf("dial gave up after %s, want about %s", d, timeout)
		}
		if got := b.failures(t, "outbound", "timeout"); got != 1 {
			t.Fatalf("outbound timeouts %v", got)
		}
		(<-held).Close()
	})
}

func TestTLSStreamLayerOverload(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	a := startLayer(t, mtls(ca.KeyPair(t, "a", "127.0.0.1"), ca.Pool(), 5*time.Second), nil)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < maxRaftHandshakes+1; i++ {
		c, err := net.Dial("tcp", a.s.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The one beyond the limit is closed at once, long before the timeout.
	retry.Run(t, retry.Cond("the extra connection refused", func() bool { return a.failures(t, "inbound", "overload") == 1 }), retry.Timeout(2*time.Second))
	// Slots free again once handshakes end: close the stalled ones.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	retry.Run(t, retry.Cond("slots free", func() bool { return len(a.s.slots) == 0 }), retry.Timeout(2*time.Second))
}

func TestTLSStreamLayerClose(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	a := startLayer(t, mtls(ca.KeyPair(t, "a", "127.0.0.1"), ca.Pool(), time.Minute), nil)
	stalled, err := net.Dial("tcp", a.s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	accepted := make(chan error, 1)
	go func() { _, err := a.s.Accept(); accepted <- err }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := a.s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close waited %s for a stalled handshake", d)
	}
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}
	expectClosed(t, stalled, 2*time.Second)
	if _, err := a.s.Dial(rAddr(a.s.ln.Addr()), time.Second); err == nil {
		t.Fatal("Dial after Close succeeded")
	}
	if a.failures(t, "inbound", "timeout")+a.failures(t, "inbound", "other") != 0 {
		t.Fatal("handshakes ended by Close were counted as failures")
	}
	if err := a.s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A certificate reloaded (SIGHUP) is presented on the next Raft
// handshake, on both sides.
func TestTLSStreamLayerReloadsCertificates(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	dir := t.TempDir()
	f := ca.WriteFiles(t, dir, "a", "a-old", "127.0.0.1")
	r, err := tlsutil.NewReloader(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsutil.ServerConfig(r, f.CA)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := tlsutil.ClientConfig(f.CA, r)
	if err != nil {
		t.Fatal(err)
	}
	a := startLayer(t, RaftTLS{Server: srv, Client: cli, HandshakeTimeout: time.Second}, nil)
	b := startLayer(t, mtls(ca.KeyPair(t, "b", "127.0.0.1"), ca.Pool(), time.Second), nil)

	names := func() (server, client string) {
		t.Helper()
		// b dials a: a's server certificate.
		c, err := b.s.Dial(rAddr(a.s.ln.Addr()), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		server = tlsState(c).PeerCertificates[0].Subject.CommonName
		sc, err := acceptOne(a.s, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		sc.Close()
		c.Close()
		// a dials b: a's client certificate.
		c, err = a.s.Dial(rAddr(b.s.ln.Addr()), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sc, err = acceptOne(b.s, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		return server, tlsState(sc).PeerCertificates[0].Subject.CommonName
	}
	if s, c := names(); s != "a-old" || c != "a-old" {
		t.Fatalf("before reload: server %q client %q", s, c)
	}
	certPEM, keyPEM := ca.Issue(t, "a-new", "127.0.0.1")
	if err := os.WriteFile(filepath.Join(dir, "a.pem"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a-key.pem"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if s, c := names(); s != "a-new" || c != "a-new" {
		t.Fatalf("after reload: server %q client %q", s, c)
	}
}

func TestRaftTLSValidate(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	good := func() RaftTLS { return mtls(ca.KeyPair(t, "a", "127.0.0.1"), ca.Pool(), 0) }
	cases := []struct {
		name  string
		edit  func(*RaftTLS)
		valid bool
	}{
		{"mutual TLS", func(*RaftTLS) {}, true},
		{"no server config", func(c *RaftTLS) { c.Server = nil }, false},
		{"no client config", func(c *RaftTLS) { c.Client = nil }, false},
		{"server without certificate", func(c *RaftTLS) { c.Server.Certificates = nil }, false},
		{"client certificates not required", func(c *RaftTLS) { c.Server.ClientAuth = tls.VerifyClientCertIfGiven }, false},
		{"no client CA", func(c *RaftTLS) { c.Server.ClientCAs = nil }, false},
		{"system roots", func(c *RaftTLS) { c.Client.RootCAs = nil }, false},
		{"no client certificate", func(c *RaftTLS) { c.Client.Certificates = nil }, false},
		{"insecure", func(c *RaftTLS) { c.Client.InsecureSkipVerify = true }, false},
	}
	for _, tc := range cases {
		c := good()
		tc.edit(&c)
		if err := c.validate(); (err == nil) != tc.valid {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestLogLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLogLimiter(30 * time.Second)
	l.now = func() time.Time { return now }
	step := func(key string, wantOK bool, wantSuppressed int) {
		t.Helper()
		s, ok := l.allow(key)
		if ok != wantOK || s != wantSuppressed {
			t.Fatalf("allow(%s) at %s = %d %v, want %d %v", key, now.Format(time.TimeOnly), s, ok, wantSuppressed, wantOK)
		}
	}
	step("a", true, 0)
	step("a", false, 0)
	step("b", true, 0)
	now = now.Add(10 * time.Second)
	step("a", false, 0)
	now = now.Add(21 * time.Second)
	step("a", true, 2)
	step("a", false, 0)
	// Bounded: beyond maxLimiterKeys fresh keys are counted, not logged,
	// until old ones expire.
	l = newLogLimiter(30 * time.Second)
	l.now = func() time.Time { return now }
	for i := 0; len(l.seen) < maxLimiterKeys; i++ {
		l.allow(strconv.Itoa(i))
	}
	step("new", false, 0)
	now = now.Add(time.Minute)
	step("new", true, 0)
}

func TestFailureReason(t *testing.T) {
	cases := map[string]error{
		"not_tls":         tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"},
		"certificate":     &tls.CertificateVerificationError{Err: errors.New("x509: unknown authority")},
		"refused_by_peer": &net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")},
		"timeout":         context.DeadlineExceeded,
		"other":           io.EOF,
	}
	for want, err := range cases {
		if got := failureReason(err); got != want {
			t.Errorf("%v: %s, want %s", err, got, want)
		}
	}
	if got := failureReason(errors.New("tls: client didn't provide a certificate")); got != "certificate" {
		t.Errorf("no client certificate: %s", got)
	}
}

// Closing a connection whose peer does not read returns within closeGrace
// (a bare tls.Conn would wait 5 s on its close_notify alert).
func TestTLSConnCloseIsBounded(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	cfg := mtls(ca.KeyPair(t, "a", "127.0.0.1"), ca.Pool(), time.Second)
	rawC, rawS := net.Pipe() // synchronous: a write waits for the reader
	defer rawS.Close()
	cli := cfg.Client.Clone()
	cli.ServerName = "127.0.0.1"
	client, server := tls.Client(rawC, cli), tls.Server(rawS, cfg.Server)
	errs := make(chan error, 1)
	go func() { errs <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	// The server side no longer reads.
	c := &tlsConn{Conn: client, raw: rawC}
	start := time.Now()
	_ = c.Close()
	if d := time.Since(start); d > closeGrace+time.Second {
		t.Fatalf("Close took %s", d)
	}
}
