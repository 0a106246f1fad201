package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/internal/proccluster"
	"github.com/nexus/nexus/internal/tlsutil/certgen"
)

// secProc is one child process of `nexus-bench security` that is not in a
// proccluster: the nodes of the secure cluster (proccluster polls plain
// HTTP, and an admin API with a certificate speaks TLS only), the gateway
// nodes and the upstream. Each runs in its own process group and dies with
// the bench (Pdeathsig).
type secProc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

func startSecProc(name, logPath string, bin string, args ...string) (*secProc, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "=== nexus-bench security: %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Dir(logPath)
	cmd.Stdout, cmd.Stderr = log, log
	// Hermetic like proccluster: no NEXUS_* settings from our environment.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NEXUS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &secProc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		log.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *secProc) pid() int { return p.cmd.Process.Pid }

func (p *secProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, and SIGKILL after 5 s.
func (p *secProc) stop() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

func (p *secProc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return proccluster.Tail(string(b), 4<<10)
}

// secNode is one node of the secure cluster.
type secNode struct {
	name, ip                     string
	httpAddr, raftAddr, gossipAd string
	proc                         *secProc
}

// secureCluster is a 3-node cluster with the admin API on HTTPS (and, with
// a cluster CA, Raft over mutual TLS), gossip encryption and ACLs.
type secureCluster struct {
	nodes      []*secNode
	hc         *http.Client // setup and readiness: trusts the CA, presents the client certificate
	tlsConfig  *tls.Config  // the same for the load generator
	clientCert tls.Certificate
	gossipKey  string
	mgmtToken  string // from POST /acl/bootstrap
	benchToken string // holds only the bench policy
}

func (s *secureCluster) url(i int) string { return "https://" + s.nodes[i].httpAddr }

func (s *secureCluster) pids() []int {
	var out []int
	for _, n := range s.nodes {
		out = append(out, n.proc.pid())
	}
	return out
}

func (s *secureCluster) close() {
	for _, n := range s.nodes {
		if n.proc != nil {
			n.proc.stop()
		}
	}
	if t, ok := s.hc.Transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
}

// startSecureCluster starts the nodes with the same arguments proccluster
// gives the plain cluster, plus the security settings.
func startSecureCluster(ctx context.Context, cfg securityConfig, dir string, ca *certgen.CA, clientCert tls.Certificate) (*secureCluster, error) {
	key, err := newGossipKey()
	if err != nil {
		return nil, err
	}
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: ca.Pool()}
	if cfg.mtls {
		tc.Certificates = []tls.Certificate{clientCert}
	}
	s := &secureCluster{
		gossipKey:  key,
		tlsConfig:  tc,
		clientCert: clientCert,
		hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			Proxy: nil, TLSClientConfig: tc.Clone(), MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second,
			DialContext: (&net.Dialer{Timeout: time.Second}).DialContext,
		}},
	}
	ports := cfg.securePorts()
	const n = 3
	var joins []string
	for i := 0; i < n; i++ {
		joins = append(joins, "--join", net.JoinHostPort(proccluster.NodeIP(cfg.baseIP, i), strconv.Itoa(ports.gossip)))
	}
	for i := 0; i < n; i++ {
		ip := proccluster.NodeIP(cfg.baseIP, i)
		nd := &secNode{
			name: "s" + strconv.Itoa(i+1), ip: ip,
			httpAddr: net.JoinHostPort(ip, strconv.Itoa(ports.http)),
			raftAddr: net.JoinHostPort(ip, strconv.Itoa(ports.raft)),
			gossipAd: net.JoinHostPort(ip, strconv.Itoa(ports.gossip)),
		}
		nodeDir := filepath.Join(dir, "node"+strconv.Itoa(i+1))
		if err := os.MkdirAll(filepath.Join(nodeDir, "data"), 0o755); err != nil {
			return s, err
		}
		// One certificate per node naming its IP: the address peers reach
		// its admin API on, and the host of the Raft address they dial.
		f, err := writeTLSFiles(ca, tlsDir, nd.name, nd.name, ip)
		if err != nil {
			return s, err
		}
		args := []string{"agent",
			"--node", nd.name,
			"--data-dir", filepath.Join(nodeDir, "data"),
			"--bind", ip,
			"--raft-port", strconv.Itoa(ports.raft),
			"--gossip-port", strconv.Itoa(ports.gossip),
			"--http-addr", nd.httpAddr,
			"--gateway-addr", net.JoinHostPort(ip, strconv.Itoa(ports.gateway)),
			"--bootstrap-expect", strconv.Itoa(n),
		}
		args = append(args, joins...)
		args = append(args, "--log-format", "json")
		args = append(args,
			"--tls-cert-file", f.Cert, "--tls-key-file", f.Key, "--tls-ca-file", f.CA,
			"--encrypt", key,
			"--acl-enabled")
		if cfg.mtls {
			args = append(args, "--tls-client-ca-file", f.CA)
		}
		args = append(args, cfg.agentArgs...)
		s.nodes = append(s.nodes, nd)
		if nd.proc, err = startSecProc(nd.name, filepath.Join(nodeDir, "agent.log"), cfg.nexus, args...); err != nil {
			return s, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for i := range s.nodes {
		if err := s.waitReady(wctx, i); err != nil {
			return s, err
		}
	}
	return s, nil
}

// do sends one request with the setup client; token may be empty.
func (s *secureCluster) do(ctx context.Context, method, url, token string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Nexus-Token", token)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %v: %s", method, url, err, trimBody(b))
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, trimBody(b))
	}
	return resp.StatusCode, nil
}

func trimBody(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// waitReady polls GET /ready (open under ACLs) over HTTPS until 200.
func (s *secureCluster) waitReady(ctx context.Context, i int) error {
	nd := s.nodes[i]
	last := ""
	for {
		if nd.proc.exited() {
			return fmt.Errorf("%s exited; log:\n%s", nd.name, nd.proc.logTail())
		}
		code, err := s.do(ctx, http.MethodGet, s.url(i)+"/ready", "", nil, nil)
		if err == nil && code == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s /ready: %w (last: %s); log:\n%s", nd.name, ctx.Err(), last, nd.proc.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitLeader polls GET /cluster/leader until every node names the same
// member of this cluster.
func (s *secureCluster) waitLeader(ctx context.Context) (int, error) {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	last := ""
	for {
		agreed, ok := "", true
		for i := range s.nodes {
			var li proccluster.LeaderInfo
			if _, err := s.do(wctx, http.MethodGet, s.url(i)+"/cluster/leader", "", nil, &li); err != nil {
				ok, last = false, err.Error()
				break
			}
			if i == 0 {
				agreed = li.Node
			} else if li.Node != agreed {
				ok, last = false, "nodes disagree on the leader"
				break
			}
		}
		if ok {
			for i, nd := range s.nodes {
				if nd.name == agreed {
					return i, nil
				}
			}
			last = fmt.Sprintf("leader %q is not a node of this cluster", agreed)
		}
		select {
		case <-wctx.Done():
			return -1, fmt.Errorf("wait for the secure cluster's leader: %w (last: %s)", wctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// benchPolicy is the policy of the load generator's token: config write on
// the key prefixes the write phases use (keyFor 'w' and 'f'), nothing else.
var benchPolicy = map[string]any{
	"name":        "nexus-bench",
	"description": "nexus-bench security: config writes",
	"rules": []map[string]string{
		{"resource": "config", "prefix": "w", "access": "write"},
		{"resource": "config", "prefix": "f", "access": "write"},
	},
}

// setupACL bootstraps the ACL system, creates the bench policy and a token
// holding only it, and checks that the token is known and enforced on
// every node: a write in the prefix is allowed, one outside is refused
// (403), one without a token is unauthenticated (401).
func (s *secureCluster) setupACL(ctx context.Context, leader int) ([]string, error) {
	actx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var boot struct {
		SecretID string `json:"secret_id"`
	}
	if _, err := s.do(actx, http.MethodPost, s.url(leader)+"/acl/bootstrap", "", nil, &boot); err != nil {
		return nil, err
	}
	s.mgmtToken = boot.SecretID
	if _, err := s.do(actx, http.MethodPost, s.url(leader)+"/acl/policies", s.mgmtToken, benchPolicy, nil); err != nil {
		return nil, err
	}
	var tok struct {
		SecretID string `json:"secret_id"`
	}
	if _, err := s.do(actx, http.MethodPost, s.url(leader)+"/acl/tokens", s.mgmtToken,
		map[string]any{"policies": []string{benchPolicy["name"].(string)}, "description": "nexus-bench security load"}, &tok); err != nil {
		return nil, err
	}
	s.benchToken = tok.SecretID
	if s.mgmtToken == "" || s.benchToken == "" {
		return nil, errors.New("ACL bootstrap or token creation returned no secret_id")
	}
	val := json.RawMessage(`"probe"`)
	var checks []string
	for i := range s.nodes {
		// The token may reach a follower a moment after it committed.
		for attempt := 0; ; attempt++ {
			_, err := s.do(actx, http.MethodPut, s.url(i)+"/config/wprobe", s.benchToken, val, nil)
			if err == nil {
				break
			}
			if attempt >= 50 || actx.Err() != nil {
				return nil, fmt.Errorf("bench token on %s: %w", s.nodes[i].name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if code, _ := s.do(actx, http.MethodPut, s.url(i)+"/config/xprobe", s.benchToken, val, nil); code != http.StatusForbidden {
			return nil, fmt.Errorf("%s: write outside the token's prefix answered %d, want 403", s.nodes[i].name, code)
		}
		if code, _ := s.do(actx, http.MethodPut, s.url(i)+"/config/wprobe", "", val, nil); code != http.StatusUnauthorized {
			return nil, fmt.Errorf("%s: write without a token answered %d, want 401", s.nodes[i].name, code)
		}
	}
	checks = append(checks, "bench token writes w*/f* on every node; outside its prefix 403, without a token 401")
	return checks, nil
}

// tokenTransport adds the ACL token to every request of a fasthttp client.
type tokenTransport struct{ token string }

func (t tokenTransport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	req.Header.Set("X-Nexus-Token", t.token)
	return fasthttp.DefaultTransport.RoundTrip(hc, req, resp)
}

// agentStart is what a node's "nexus agent started" log line says about
// its security.
type agentStart struct {
	TLS             *bool `json:"tls"`
	GatewayTLS      *bool `json:"gateway_tls"`
	GossipEncrypted *bool `json:"gossip_encrypted"`
	RaftTLS         *bool `json:"raft_tls"`
}

// parseAgentStart finds the last "nexus agent started" JSON line of a log.
func parseAgentStart(log []byte) (agentStart, bool) {
	var found agentStart
	ok := false
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"nexus agent started"`)) {
			continue
		}
		var a agentStart
		if json.Unmarshal(line, &a) == nil {
			found, ok = a, true
		}
	}
	return found, ok
}

func fmtFlag(b *bool) string {
	if b == nil {
		return "not reported"
	}
	return strconv.FormatBool(*b)
}

// securitySummary says what the secure configuration actually protected:
// the agents' own start lines, and a TLS handshake against node 1's Raft
// port (with the load generator's certificate from the cluster CA).
func (s *secureCluster) securitySummary(mtls bool) []string {
	var out []string
	for _, nd := range s.nodes {
		b, _ := os.ReadFile(nd.proc.logPath)
		a, ok := parseAgentStart(b)
		if !ok {
			out = append(out, nd.name+": no \"nexus agent started\" line in its log")
			continue
		}
		out = append(out, fmt.Sprintf("%s start log: tls=%s raft_tls=%s gossip_encrypted=%s", nd.name,
			fmtFlag(a.TLS), fmtFlag(a.RaftTLS), fmtFlag(a.GossipEncrypted)))
	}
	out = append(out, "Raft port "+s.nodes[0].raftAddr+": "+probeRaftTLS(s.nodes[0], s.tlsConfig, s.clientCert))
	ver := s.adminTLS()
	if mtls {
		out = append(out, "admin API: mTLS, "+ver+" (tls_client_ca_file set; the load generator presents a client certificate from the cluster CA)")
	} else {
		out = append(out, "admin API: TLS, "+ver+", server certificate only (no tls_client_ca_file)")
	}
	return out
}

// adminTLS is the TLS version and cipher suite node 1's admin API
// negotiates with the load generator's configuration.
func (s *secureCluster) adminTLS() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url(0)+"/health", nil)
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: s.tlsConfig.Clone(), DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		return "TLS ? (" + err.Error() + ")"
	}
	resp.Body.Close()
	if resp.TLS == nil {
		return "no TLS"
	}
	return tls.VersionName(resp.TLS.Version) + " " + tls.CipherSuiteName(resp.TLS.CipherSuite)
}

// probeRaftTLS tries a TLS handshake on a node's Raft port, presenting a
// client certificate from the cluster CA (the Raft listener requires one).
func probeRaftTLS(nd *secNode, base *tls.Config, cert tls.Certificate) string {
	tc := base.Clone()
	tc.ServerName = nd.ip
	tc.Certificates = []tls.Certificate{cert}
	d := &net.Dialer{Timeout: 2 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", nd.raftAddr, tc)
	if err != nil {
		return "TLS handshake failed (Raft is plain TCP?): " + err.Error()
	}
	defer conn.Close()
	st := conn.ConnectionState()
	return fmt.Sprintf("TLS handshake ok, %s, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
}
