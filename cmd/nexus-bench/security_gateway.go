package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nexus/nexus/internal/tlsutil/certgen"
)

// gwNode is a single-node (--dev) agent whose gateway is measured.
type gwNode struct {
	proc  *secProc
	admin string // admin API base URL (plain HTTP)
}

// gatewayRun is what the gateway part started.
type gatewayRun struct {
	procs   []*secProc
	targets []*target // "gateway HTTP", "gateway HTTPS"
	client  *http.Client
}

func (g *gatewayRun) close() {
	for i := len(g.procs) - 1; i >= 0; i-- {
		g.procs[i].stop()
	}
}

// startGatewayNodes starts the upstream and two --dev agents that differ
// only in gateway_tls_cert_file/gateway_tls_key_file, registers the
// upstream on each and adds a route /plain/ without plugins, as
// `nexus-bench gateway` does for its "nexus" target.
func startGatewayNodes(ctx context.Context, cfg securityConfig, dir string, ca *certgen.CA) (g *gatewayRun, err error) {
	g = &gatewayRun{client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Proxy: nil, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: ca.Pool()},
	}}}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return g, err
	}
	self, err := os.Executable()
	if err != nil {
		return g, err
	}
	p := cfg.gatewayPorts()
	up, err := startSecProc("upstream", filepath.Join(dir, "upstream.log"), self, "security", "--serve-upstream", p.upstream)
	if err != nil {
		return g, err
	}
	g.procs = append(g.procs, up)
	if err := waitHTTP(ctx, "http://"+p.upstream+"/", 10*time.Second); err != nil {
		return g, fmt.Errorf("upstream: %w", err)
	}
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return g, err
	}
	f, err := writeTLSFiles(ca, tlsDir, "gateway", "gateway", "127.0.0.1", "localhost")
	if err != nil {
		return g, err
	}
	for _, n := range []struct {
		name  string
		ports nodePorts
		https bool
	}{{"gateway HTTP", p.plain, false}, {"gateway HTTPS", p.tls, true}} {
		node := "gw-http"
		scheme := "http"
		if n.https {
			node, scheme = "gw-https", "https"
		}
		args := []string{"agent", "--dev", "--node", node,
			"--raft-port", strconv.Itoa(n.ports.raft), "--gossip-port", strconv.Itoa(n.ports.gossip),
			"--http-addr", "127.0.0.1:" + strconv.Itoa(n.ports.http),
			"--gateway-addr", "127.0.0.1:" + strconv.Itoa(n.ports.gateway), "--log-level", "warn",
			"--dns-addr", "off"} // two agents side by side: not both on 127.0.0.1:8600
		if n.https {
			args = append(args, "--gateway-tls-cert-file", f.Cert, "--gateway-tls-key-file", f.Key)
		}
		args = append(args, cfg.agentArgs...)
		proc, err := startSecProc(node, filepath.Join(dir, node+".log"), cfg.nexus, args...)
		if err != nil {
			return g, err
		}
		g.procs = append(g.procs, proc)
		gn := gwNode{proc: proc, admin: "http://127.0.0.1:" + strconv.Itoa(n.ports.http)}
		if err := setupGatewayNode(ctx, gn, p.upstream); err != nil {
			return g, fmt.Errorf("%s: %w", node, err)
		}
		t := &target{name: n.name, url: scheme + "://127.0.0.1:" + strconv.Itoa(n.ports.gateway) + "/plain/bench", pid: proc.pid()}
		if err := g.check(ctx, t); err != nil {
			return g, fmt.Errorf("%s: %w", t.name, err)
		}
		g.targets = append(g.targets, t)
	}
	return g, nil
}

// setupGatewayNode waits until the agent is ready, then registers the
// upstream and the route.
func setupGatewayNode(ctx context.Context, n gwNode, upstream string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(n.admin + "/ready")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if n.proc.exited() || time.Now().After(deadline) {
			return fmt.Errorf("agent not ready; log:\n%s", n.proc.logTail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	port, _ := strconv.Atoi(upstream[len("127.0.0.1:"):])
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/services/register", map[string]any{"name": "bench", "type": "http", "address": "127.0.0.1", "port": port}},
		{"POST", "/gateway/routes", map[string]any{"id": "plain", "paths": []string{"/plain/"}, "service": "bench", "strip_path": true}},
	} {
		b, _ := json.Marshal(c.body)
		req, _ := http.NewRequestWithContext(ctx, c.method, n.admin+c.path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", c.method, c.path, err)
		}
		res.Body.Close()
		if res.StatusCode >= 300 {
			return fmt.Errorf("%s %s: status %d", c.method, c.path, res.StatusCode)
		}
	}
	return nil
}

// check waits until the target answers 200 (the HTTPS one with a
// certificate from the bench CA), like checkTarget does for plain HTTP.
func (g *gatewayRun) check(ctx context.Context, t *target) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", t.url, nil)
		res, err := g.client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(res.Body, 300))
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				if t.url[:5] == "https" && res.TLS == nil {
					return fmt.Errorf("%s answered without TLS", t.url)
				}
				return nil
			}
			err = fmt.Errorf("GET %s: %d %s", t.url, res.StatusCode, bytes.TrimSpace(body))
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tlsVersion says which TLS version the HTTPS gateway negotiates with a Go
// client (wrk uses OpenSSL's defaults).
func (g *gatewayRun) tlsVersion(ctx context.Context) string {
	for _, t := range g.targets {
		if t.url[:5] != "https" {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", t.url, nil)
		res, err := g.client.Do(req)
		if err != nil {
			return "?"
		}
		res.Body.Close()
		if res.TLS != nil {
			return tls.VersionName(res.TLS.Version) + ", " + tls.CipherSuiteName(res.TLS.CipherSuite)
		}
	}
	return "?"
}

// measureGateway runs wrk against both targets, interleaved, the order
// alternating between rounds; a 1 s warm-up precedes every measurement.
func measureGateway(ctx context.Context, cfg securityConfig, g *gatewayRun) error {
	for round := 0; round < cfg.rounds; round++ {
		order := g.targets
		if round%2 == 1 {
			order = []*target{g.targets[1], g.targets[0]}
		}
		for _, t := range order {
			if _, err := runWrk(ctx, t, cfg.threads, cfg.connections, time.Second); err != nil {
				return err
			}
			cpu0, _ := treeCPU(t.pid)
			res, err := runWrk(ctx, t, cfg.threads, cfg.connections, cfg.gwDuration)
			if err != nil {
				return err
			}
			cpu1, _ := treeCPU(t.pid)
			if n := res.rps * cfg.gwDuration.Seconds(); n > 0 {
				res.cpuPerReq = time.Duration(float64(cpu1-cpu0) / n)
			}
			progress("gateway round %d %-13s %9.0f req/s p50 %v p99 %v cpu/req %v errors %d",
				round+1, t.name, res.rps, res.p50, res.p99, res.cpuPerReq, res.errors)
			t.results = append(t.results, res)
		}
	}
	return nil
}
