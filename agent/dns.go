package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/cmd/nexus/agentconfig"
	"github.com/nexus/nexus/dns"
	"github.com/nexus/nexus/registry"
)

// startDNS serves the DNS interface (docs/dns.md) on cfg.DNSAddr from the
// node's replica and gossip membership; nil when dns_addr is off.
func startDNS(cfg *agentconfig.Config, store *registry.Store, node *cluster.Node, reg prometheus.Registerer, logger *slog.Logger) (*dns.Server, error) {
	if !cfg.DNS() {
		logger.Info("dns off (dns_addr off)")
		return nil, nil
	}
	srv, err := dns.New(dns.Config{
		Addr: cfg.DNSAddr, Domain: cfg.DNSDomain, TTL: cfg.DNSServiceTTL,
		OnlyPassing: cfg.DNSOnlyPassing, Recursors: cfg.DNSRecursors,
	}, dns.Deps{
		Catalog: dns.StoreCatalog{Store: store}, Membership: dnsMembers{node: node},
		Logger: logger.With("component", "dns"), Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("DNS on %s (dns_addr; off disables it): %w", cfg.DNSAddr, err)
	}
	return srv, nil
}

// stopDNS stops answering; queries being answered end until ctx does.
func stopDNS(ctx context.Context, srv *dns.Server, logger *slog.Logger) {
	if srv == nil {
		return
	}
	if err := srv.Shutdown(ctx); err != nil {
		logger.Warn("dns shutdown", "err", err)
	}
}

// dnsMembers gives the DNS server the members gossip knows, with the
// address each advertises.
type dnsMembers struct{ node *cluster.Node }

func (m dnsMembers) Members() []dns.Member {
	ms := m.node.Members()
	out := make([]dns.Member, 0, len(ms))
	for _, mi := range ms {
		mb := dns.Member{Name: mi.Name, Status: string(mi.Status)}
		if host, _, err := net.SplitHostPort(mi.Address); err == nil {
			mb.Addr, _ = netip.ParseAddr(host)
		}
		out = append(out, mb)
	}
	return out
}
