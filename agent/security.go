package agent

import (
	"crypto/tls"
	"log/slog"
	"net"

	"github.com/nexus/nexus/api"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/cluster/peerproto"
	"github.com/nexus/nexus/cmd/nexus/agentconfig"
	"github.com/nexus/nexus/internal/tlsutil"
)

// agentSecurity is the TLS material and the defences of one agent
// (docs/security.md), built from the settings at start.
type agentSecurity struct {
	admin, gateway *tlsutil.Reloader // nil: plain HTTP
	adminTLS       *tls.Config
	gatewayTLS     *tls.Config
	peer           peerproto.Config
	raftTLS        *cluster.RaftTLS // nil: Raft over plain TCP
	gossipKeys     [][]byte
}

// newAgentSecurity loads the certificates and keys the settings name. An
// error names the setting.
func newAgentSecurity(cfg *agentconfig.Config) (*agentSecurity, error) {
	s := &agentSecurity{}
	var err error
	if cfg.TLS() {
		if s.admin, err = tlsutil.NewReloader(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return nil, settingErr("tls_cert_file", err)
		}
		if s.adminTLS, err = tlsutil.ServerConfig(s.admin, cfg.TLSClientCAFile); err != nil {
			return nil, settingErr("tls_client_ca_file", err)
		}
		caFile, key := cfg.TLSCAFile, "tls_ca_file"
		if caFile == "" {
			caFile, key = cfg.TLSClientCAFile, "tls_client_ca_file"
		}
		cli, err := tlsutil.ClientConfig(caFile, s.admin)
		if err != nil {
			return nil, settingErr(key, err)
		}
		s.peer = peerproto.Config{Scheme: "https", TLS: cli}
		// Raft: mutual TLS with the same certificate and the cluster CA,
		// both ways. Without a cluster CA (system roots) it stays plain:
		// any publicly trusted certificate would otherwise be a member.
		if caFile != "" {
			srv, err := tlsutil.ServerConfig(s.admin, caFile)
			if err != nil {
				return nil, settingErr(key, err)
			}
			s.raftTLS = &cluster.RaftTLS{Server: srv, Client: cli}
		}
	}
	if cfg.GatewayTLS() {
		if s.gateway, err = tlsutil.NewReloader(cfg.GatewayTLSCertFile, cfg.GatewayTLSKeyFile); err != nil {
			return nil, settingErr("gateway_tls_cert_file", err)
		}
		if s.gatewayTLS, err = tlsutil.ServerConfig(s.gateway, cfg.GatewayTLSClientCAFile); err != nil {
			return nil, settingErr("gateway_tls_client_ca_file", err)
		}
	}
	if cfg.Encrypt != "" {
		k, err := agentconfig.DecodeGossipKey(cfg.Encrypt)
		if err != nil {
			return nil, settingErr("encrypt", err)
		}
		s.gossipKeys = [][]byte{k}
	}
	return s, nil
}

func settingErr(key string, err error) error {
	return &agentconfig.SettingError{Setting: key, Reason: err.Error()}
}

// reload reads the certificates and keys again (SIGHUP). A pair that fails
// to load is logged and the previous one stays in use.
func (s *agentSecurity) reload(logger *slog.Logger) {
	for _, r := range []struct {
		name string
		r    *tlsutil.Reloader
	}{{"admin API", s.admin}, {"gateway", s.gateway}} {
		if r.r == nil {
			continue
		}
		if err := r.r.Reload(); err != nil {
			logger.Error("TLS certificate reload failed; the previous certificate stays in use", "listener", r.name, "err", err)
			continue
		}
		attrs := []any{"listener", r.name}
		if c := r.r.Certificate(); c != nil && c.Leaf != nil {
			attrs = append(attrs, "subject", c.Leaf.Subject.String(), "not_after", c.Leaf.NotAfter)
		}
		logger.Info("TLS certificate reloaded", attrs...)
	}
}

// adminGuard is the admin API's Guard. When trusted_hosts is set, the
// node's own addresses are added so that the other nodes (forwarding,
// relays) and local health checks still reach it.
func adminGuard(cfg *agentconfig.Config, s *agentSecurity) api.Guard {
	g := api.Guard{RateLimit: cfg.AdminRateLimit, RateBurst: cfg.AdminRateBurst, TLS: s.adminTLS}
	if len(cfg.TrustedHosts) > 0 {
		g.TrustedHosts = append(g.TrustedHosts, cfg.TrustedHosts...)
		g.TrustedHosts = append(g.TrustedHosts, cfg.HTTPAddr, advertisedHTTP(cfg))
		if _, port, err := net.SplitHostPort(cfg.HTTPAddr); err == nil {
			g.TrustedHosts = append(g.TrustedHosts, net.JoinHostPort(cfg.Advertise, port))
		}
	}
	return g
}
