package agentconfig

import (
	"reflect"
	"testing"
	"time"
)

func TestDNSSettings(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *Config) bool
	}{
		{"default port on the bind address", []string{"--bind", "10.0.0.7"}, nil,
			func(c *Config) bool { return c.DNSAddr == "10.0.0.7:8600" && c.DNS() }},
		{"dev", []string{"--dev"}, nil, func(c *Config) bool { return c.DNSAddr == "127.0.0.1:8600" }},
		{"IPv6 bind", []string{"--bind", "fd00::1"}, nil, func(c *Config) bool { return c.DNSAddr == "[fd00::1]:8600" }},
		{"off", []string{"--dns-addr", "OFF"}, nil, func(c *Config) bool { return c.DNSAddr == "off" && !c.DNS() }},
		{"off from env", nil, map[string]string{"NEXUS_DNS_ADDR": "off"}, func(c *Config) bool { return !c.DNS() }},
		{"flag", []string{"--dns-addr", "0.0.0.0:53"}, nil, func(c *Config) bool { return c.DNSAddr == "0.0.0.0:53" }},
		{"domain normalized", []string{"--dns-domain", "Nexus.Example.COM."}, nil, func(c *Config) bool { return c.DNSDomain == "nexus.example.com" }},
		{"ttl", []string{"--dns-service-ttl", "30s"}, nil, func(c *Config) bool { return c.DNSServiceTTL == 30*time.Second }},
		{"only passing off", []string{"--dns-only-passing=false"}, nil, func(c *Config) bool { return !c.DNSOnlyPassing }},
		{"recursors repeatable, port 53 by default", []string{"--dns-recursor", "10.0.0.53", "--dns-recursor", "dns.example:5353", "--dns-recursor", "fd00::53"}, nil,
			func(c *Config) bool {
				return reflect.DeepEqual(c.DNSRecursors, []string{"10.0.0.53:53", "dns.example:5353", "[fd00::53]:53"})
			}},
		{"recursors from env", nil, map[string]string{"NEXUS_DNS_RECURSOR": "1.1.1.1, [fd00::1]"}, func(c *Config) bool {
			return reflect.DeepEqual(c.DNSRecursors, []string{"1.1.1.1:53", "[fd00::1]:53"})
		}},
		{"flag overrides env", []string{"--dns-domain", "flag"}, map[string]string{"NEXUS_DNS_DOMAIN": "env"}, func(c *Config) bool { return c.DNSDomain == "flag" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, &fakeOS{env: tt.env}, append([]string{"--data-dir", "/d"}, tt.args...)...)
			if !tt.want(c) {
				t.Errorf("addr %q domain %q ttl %s only_passing %v recursors %q", c.DNSAddr, c.DNSDomain, c.DNSServiceTTL, c.DNSOnlyPassing, c.DNSRecursors)
			}
		})
	}
}

func TestDNSValidationErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		setting string
		substr  string
	}{
		{"addr no port", []string{"--dns-addr", "127.0.0.1"}, "dns_addr", "not HOST:PORT"},
		{"addr empty", []string{"--dns-addr", ""}, "dns_addr", "required"},
		{"addr port zero", []string{"--dns-addr", "127.0.0.1:0"}, "dns_addr", "1..65535"},
		{"addr bad host", []string{"--dns-addr", "a b:53"}, "dns_addr", "not an IP address or host name"},
		{"addr collides with gossip", []string{"--dns-addr", "0.0.0.0:8301"}, "dns_addr", "gossip_port"},
		{"addr collides with raft", []string{"--dns-addr", "127.0.0.1:8300"}, "dns_addr", "raft_port"},
		{"addr collides with http", []string{"--dns-addr", "127.0.0.1:8500"}, "dns_addr", "http_addr"},
		{"addr collides with gateway", []string{"--gateway-addr", ":9000", "--dns-addr", "10.0.0.1:9000"}, "dns_addr", "gateway_addr"},
		{"domain empty", []string{"--dns-domain", ""}, "dns_domain", "not a domain name"},
		{"domain space", []string{"--dns-domain", "my domain"}, "dns_domain", `"my domain"`},
		{"domain empty label", []string{"--dns-domain", "a..b"}, "dns_domain", "not a domain name"},
		{"ttl negative", []string{"--dns-service-ttl", "-1s"}, "dns_service_ttl", "out of range 0s..24h"},
		{"ttl too long", []string{"--dns-service-ttl", "25h"}, "dns_service_ttl", "out of range"},
		{"ttl fraction", []string{"--dns-service-ttl", "1500ms"}, "dns_service_ttl", "whole seconds"},
		{"ttl not a duration", []string{"--dns-service-ttl", "10"}, "dns_service_ttl", "not a duration"},
		{"only passing not a bool", []string{"--dns-only-passing=maybe"}, "dns_only_passing", "boolean"},
		{"recursor empty", []string{"--dns-recursor", ""}, "dns_recursor", "empty"},
		{"recursor bad port", []string{"--dns-recursor", "10.0.0.1:99999"}, "dns_recursor", `"10.0.0.1:99999"`},
		{"recursor unspecified", []string{"--dns-recursor", "0.0.0.0"}, "dns_recursor", "unspecified"},
		{"recursor bad host", []string{"--dns-recursor", "a b"}, "dns_recursor", `"a b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := (&fakeOS{}).load(append([]string{"--data-dir", "/d"}, tt.args...)...)
			if err == nil {
				t.Fatalf("no error, config %+v", c)
			}
			wantSettingErr(t, err, tt.setting, tt.substr)
		})
	}
	// Validate on a config built in code checks the list as Load does.
	c := defaults()
	c.Node, c.DataDir, c.Advertise = "n1", "/d", "127.0.0.1"
	c.DNSRecursors = []string{"ok", "bad:0"}
	wantSettingErr(t, c.Validate(), "dns_recursor", `"bad:0"`)
}
