package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const benchJWTSecret = "nexus-bench-secret-0123456789"

// nexusAgent is one measured agent: its target names end in suffix.
type nexusAgent struct {
	suffix                string
	env                   []string // added to the agent's environment
	raftPort, gossipPort  int
	httpAddr, gatewayAddr string
}

// startNexus starts a dev agent, registers the upstream and two routes:
// /plain/ without plugins and /plugins/ with a (never reached) rate limit
// and JWT auth. It returns a valid token for /plugins/.
func startNexus(ctx context.Context, procs *processes, dir string, cfg gatewayConfig, a nexusAgent) (string, int, error) {
	env := a.env
	pid, err := procs.start(filepath.Join(dir, "nexus"+a.suffix+".log"), env, cfg.nexus, "agent", "--dev", "--node", "bench"+a.suffix,
		"--raft-port", strconv.Itoa(a.raftPort), "--gossip-port", strconv.Itoa(a.gossipPort),
		"--http-addr", a.httpAddr, "--gateway-addr", a.gatewayAddr, "--log-level", "warn",
		"--dns-addr", "off") // agents run side by side: not all on 127.0.0.1:8600
	if err != nil {
		return "", 0, err
	}
	api := "http://" + a.httpAddr
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(api + "/ready")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return "", 0, fmt.Errorf("nexus agent not ready after 30s (log: %s)", filepath.Join(dir, "nexus"+a.suffix+".log"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	host, port, _ := net.SplitHostPort(cfg.upstreamAddr)
	p, _ := strconv.Atoi(port)
	calls := []struct {
		method, path string
		body         any
	}{
		{"POST", "/services/register", map[string]any{"name": "bench", "type": "http", "address": host, "port": p}},
		{"PUT", "/config/gateway/jwt/default", map[string]any{"alg": "HS256", "secret": benchJWTSecret}},
		{"POST", "/gateway/routes", map[string]any{"id": "plain", "paths": []string{"/plain/"}, "service": "bench", "strip_path": true}},
		{"POST", "/gateway/routes", map[string]any{"id": "plugins", "paths": []string{"/plugins/"}, "service": "bench", "strip_path": true,
			"rate_limit": map[string]any{"rps": 10_000_000, "burst": 10_000_000, "key": "ip"},
			"auth":       map[string]any{"type": "jwt"}}},
	}
	for _, c := range calls {
		b, _ := json.Marshal(c.body)
		req, _ := http.NewRequestWithContext(ctx, c.method, api+c.path, bytes.NewReader(b))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", 0, fmt.Errorf("%s %s: %w", c.method, c.path, err)
		}
		res.Body.Close()
		if res.StatusCode >= 300 {
			return "", 0, fmt.Errorf("%s %s: status %d", c.method, c.path, res.StatusCode)
		}
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "bench", "exp": time.Now().Add(24 * time.Hour).Unix(),
	}).SignedString([]byte(benchJWTSecret))
	return tok, pid, err
}
