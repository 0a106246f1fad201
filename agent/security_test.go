package agent

import (
	"crypto/tls"
	"errors"
	"slices"
	"testing"

	"github.com/nexus/nexus/cmd/nexus/agentconfig"
	"github.com/nexus/nexus/internal/tlsutil/tlstest"
)

func TestAgentSecurity(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	f := ca.WriteFiles(t, dir, "n1", "n1", "127.0.0.1")
	cases := []struct {
		name    string
		cfg     agentconfig.Config
		setting string // "" = no error
		check   func(t *testing.T, s *agentSecurity)
	}{
		{"all off", agentconfig.Config{}, "", func(t *testing.T, s *agentSecurity) {
			if s.adminTLS != nil || s.gatewayTLS != nil || s.peer.Scheme != "" || s.gossipKeys != nil || s.raftTLS != nil {
				t.Fatalf("%+v", s)
			}
		}},
		{"admin mTLS and peer https", agentconfig.Config{TLSCertFile: f.Cert, TLSKeyFile: f.Key, TLSClientCAFile: f.CA}, "", func(t *testing.T, s *agentSecurity) {
			if s.adminTLS == nil || s.adminTLS.ClientCAs == nil || s.peer.Scheme != "https" || s.peer.TLS.RootCAs == nil || s.gatewayTLS != nil {
				t.Fatalf("%+v", s)
			}
			if s.raftTLS == nil || s.raftTLS.Server.ClientAuth != tls.RequireAndVerifyClientCert || s.raftTLS.Server.ClientCAs == nil ||
				s.raftTLS.Client.RootCAs == nil || s.raftTLS.Client.GetClientCertificate == nil {
				t.Fatalf("raft TLS: %+v", s.raftTLS)
			}
		}},
		{"cluster CA only: raft mTLS, admin API without client certificates", agentconfig.Config{TLSCertFile: f.Cert, TLSKeyFile: f.Key, TLSCAFile: f.CA}, "", func(t *testing.T, s *agentSecurity) {
			if s.adminTLS.ClientCAs != nil || s.raftTLS == nil || s.raftTLS.Server.ClientCAs == nil || s.raftTLS.Client.RootCAs == nil {
				t.Fatalf("%+v %+v", s, s.raftTLS)
			}
		}},
		{"TLS without a CA: raft stays plain", agentconfig.Config{TLSCertFile: f.Cert, TLSKeyFile: f.Key}, "", func(t *testing.T, s *agentSecurity) {
			if s.adminTLS == nil || s.raftTLS != nil {
				t.Fatalf("%+v", s)
			}
		}},
		{"gateway only", agentconfig.Config{GatewayTLSCertFile: f.Cert, GatewayTLSKeyFile: f.Key}, "", func(t *testing.T, s *agentSecurity) {
			if s.gatewayTLS == nil || s.adminTLS != nil || s.peer.Scheme != "" {
				t.Fatalf("%+v", s)
			}
		}},
		{"gossip key", agentconfig.Config{Encrypt: "MDEyMzQ1Njc4OWFiY2RlZg=="}, "", func(t *testing.T, s *agentSecurity) {
			if len(s.gossipKeys) != 1 || len(s.gossipKeys[0]) != 16 {
				t.Fatalf("%+v", s.gossipKeys)
			}
		}},
		{"missing cert", agentconfig.Config{TLSCertFile: dir + "/none.pem", TLSKeyFile: f.Key}, "tls_cert_file", nil},
		{"bad client CA", agentconfig.Config{TLSCertFile: f.Cert, TLSKeyFile: f.Key, TLSClientCAFile: f.Key}, "tls_client_ca_file", nil},
		{"bad cluster CA", agentconfig.Config{TLSCertFile: f.Cert, TLSKeyFile: f.Key, TLSCAFile: dir + "/none.pem"}, "tls_ca_file", nil},
		{"missing gateway key", agentconfig.Config{GatewayTLSCertFile: f.Cert, GatewayTLSKeyFile: dir + "/none.pem"}, "gateway_tls_cert_file", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := newAgentSecurity(&tc.cfg)
			if tc.setting != "" {
				var se *agentconfig.SettingError
				if !errors.As(err, &se) || se.Setting != tc.setting {
					t.Fatalf("err %v, want one naming %s", err, tc.setting)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

func TestAdminGuardTrustsOwnAddresses(t *testing.T) {
	cfg := &agentconfig.Config{HTTPAddr: "0.0.0.0:8500", Advertise: "10.0.0.5", TrustedHosts: []string{"nexus.example"},
		AdminRateLimit: 5, AdminRateBurst: 10}
	g := adminGuard(cfg, &agentSecurity{})
	for _, h := range []string{"nexus.example", "10.0.0.5:8500"} {
		if !slices.Contains(g.TrustedHosts, h) {
			t.Errorf("trusted hosts %q lack %q", g.TrustedHosts, h)
		}
	}
	if g.RateLimit != 5 || g.RateBurst != 10 {
		t.Errorf("rate %v burst %d", g.RateLimit, g.RateBurst)
	}
	if g := adminGuard(&agentconfig.Config{HTTPAddr: "127.0.0.1:8500", Advertise: "127.0.0.1"}, &agentSecurity{}); g.TrustedHosts != nil {
		t.Errorf("empty trusted_hosts became %q", g.TrustedHosts)
	}
}
