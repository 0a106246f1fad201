package agent

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/cmd/nexus/agentconfig"
	"github.com/nexus/nexus/gateway"
	"github.com/nexus/nexus/registry"
)

// startGateway serves the API gateway on cfg.GatewayAddr from the node's
// replica and returns the address it listens on. The access log
// (--gateway-access-log) is one JSON line per request on accessLog (the
// binary's stdout), apart from the agent's own log on stderr.
func startGateway(cfg *agentconfig.Config, store *registry.Store, exch gateway.Exchanger, reg prometheus.Registerer,
	logger *slog.Logger, accessLog io.Writer, tlsConfig *tls.Config) (*gateway.Gateway, net.Addr, error) {
	ln, err := net.Listen("tcp", cfg.GatewayAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway on %s: %w", cfg.GatewayAddr, err)
	}
	var access *slog.Logger
	if cfg.GatewayAccessLog {
		access = slog.New(slog.NewJSONHandler(accessLog, nil)).With("node", cfg.Node)
	}
	gl := logger.With("component", "gateway")
	gw, err := gateway.New(gateway.Deps{
		Store: store, Node: cfg.Node, Logger: gl, AccessLog: access, Registerer: reg, Exchanger: exch, TLS: tlsConfig,
		Options: gateway.Options{PlainSocketIO: cfg.GatewaySocketIO == "plain"},
	})
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	go func() {
		if err := gw.Serve(ln); err != nil {
			gl.Error("gateway stopped serving", "err", err)
		}
	}()
	gl.Info("gateway started", "gateway_addr", cfg.GatewayAddr, "access_log", cfg.GatewayAccessLog, "tls", tlsConfig != nil, "socket_io", cfg.GatewaySocketIO)
	return gw, ln.Addr(), nil
}
