package agentconfig

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"time"
)

// DNS interface settings (docs/dns.md): dns_addr, dns_domain,
// dns_service_ttl, dns_only_passing, dns_recursor.
const (
	// DNSOff is the dns_addr value that turns the DNS interface off.
	DNSOff = "off"

	defaultDNSPort    = 8600
	defaultDNSDomain  = "nexus"
	maxDNSServiceTTL  = 24 * time.Hour
	defaultDNSRecPort = "53"
)

// DNS reports whether the agent serves DNS.
func (c *Config) DNS() bool { return c.DNSAddr != DNSOff }

// validateDNS checks the DNS settings and normalizes dns_addr ("off" in any
// case) and dns_domain (lower case, no trailing dot).
func (c *Config) validateDNS() error {
	if strings.EqualFold(strings.TrimSpace(c.DNSAddr), DNSOff) {
		c.DNSAddr = DNSOff
	} else {
		if c.DNSAddr == "" {
			return settingErr("dns_addr", "required: HOST:PORT, or off")
		}
		host, port, err := checkHostPort("dns_addr", c.DNSAddr)
		if err != nil {
			return err
		}
		// UDP and TCP: raft_port is TCP, gossip_port both, the admin API
		// and the gateway TCP.
		if sameHost(host, c.Bind) && (port == c.RaftPort || port == c.GossipPort) {
			other := "raft_port"
			if port == c.GossipPort {
				other = "gossip_port"
			}
			return settingErr("dns_addr", "%q collides with %s %d on bind address %s", c.DNSAddr, other, port, c.Bind)
		}
		for _, l := range []struct{ key, addr string }{{"http_addr", c.HTTPAddr}, {"gateway_addr", c.GatewayAddr}} {
			h, p, err := net.SplitHostPort(l.addr)
			if err == nil && p == strconv.Itoa(port) && sameHost(h, host) {
				return settingErr("dns_addr", "%q collides with %s %q; they must differ", c.DNSAddr, l.key, l.addr)
			}
		}
	}
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(c.DNSDomain), "."))
	if !validHostname(d) {
		return settingErr("dns_domain", "%q is not a domain name (labels of letters, digits, '-' and '_')", c.DNSDomain)
	}
	c.DNSDomain = d
	if c.DNSServiceTTL < 0 || c.DNSServiceTTL > maxDNSServiceTTL {
		return settingErr("dns_service_ttl", "%q is out of range 0s..24h", c.DNSServiceTTL.String())
	}
	if c.DNSServiceTTL%time.Second != 0 {
		return settingErr("dns_service_ttl", "%q is not whole seconds (DNS TTLs are seconds)", c.DNSServiceTTL.String())
	}
	for _, r := range c.DNSRecursors {
		if _, err := normalizeRecursor(r); err != nil {
			return settingErr("dns_recursor", "%q %s", r, err)
		}
	}
	return nil
}

// normalizeRecursor turns HOST or HOST:PORT (IPv6 as [IP]:PORT, or a bare
// IP) into HOST:PORT, port 53 when none is given. Its error is the reason
// only; callers prefix the quoted address.
func normalizeRecursor(a string) (string, error) {
	a = strings.TrimSpace(a)
	if a == "" {
		return "", errors.New("is empty; want HOST[:PORT]")
	}
	if _, _, err := net.SplitHostPort(a); err != nil {
		a = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), defaultDNSRecPort)
	}
	host, _, err := net.SplitHostPort(a)
	if err != nil {
		return "", errors.New("is not HOST[:PORT]")
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", errors.New("is not HOST[:PORT]: an unspecified address cannot be queried")
	}
	return normalizeJoin(a)
}
