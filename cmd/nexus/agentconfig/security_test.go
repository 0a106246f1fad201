package agentconfig

import (
	"reflect"
	"testing"
)

func TestSecuritySettingsLoad(t *testing.T) {
	const key = "MDEyMzQ1Njc4OWFiY2RlZg==" // 16 bytes
	const file = `
node: n1
data_dir: /d
trusted_hosts: [Nexus.Example, "10.0.0.1:8500", "[::1]"]
admin_rate_limit: 2.5
tls_cert_file: /tls/c.pem
tls_key_file: /tls/k.pem
tls_client_ca_file: /tls/ca.pem
gateway_tls_cert_file: /tls/gc.pem
gateway_tls_key_file: /tls/gk.pem
encrypt: ` + key + `
`
	cases := []struct {
		name string
		f    *fakeOS
		args []string
		want func(c *Config) bool
	}{
		{"file", &fakeOS{files: map[string]string{"/c.yaml": file}}, []string{"--config", "/c.yaml"}, func(c *Config) bool {
			return reflect.DeepEqual(c.TrustedHosts, []string{"nexus.example", "10.0.0.1:8500", "[::1]"}) &&
				c.AdminRateLimit == 2.5 && c.AdminRateBurst == 5 && c.TLS() && c.GatewayTLS() &&
				c.TLSClientCAFile == "/tls/ca.pem" && c.Encrypt == key
		}},
		{"env", &fakeOS{env: map[string]string{"NEXUS_TRUSTED_HOSTS": "a.example, b.example:1", "NEXUS_ADMIN_RATE_LIMIT": "100",
			"NEXUS_ADMIN_RATE_BURST": "7"}}, []string{"--dev"}, func(c *Config) bool {
			return reflect.DeepEqual(c.TrustedHosts, []string{"a.example", "b.example:1"}) && c.AdminRateLimit == 100 && c.AdminRateBurst == 7
		}},
		{"flags repeat", &fakeOS{}, []string{"--dev", "--trusted-hosts", "x", "--trusted-hosts", "Y:80", "--admin-rate-limit", "0.1"}, func(c *Config) bool {
			return reflect.DeepEqual(c.TrustedHosts, []string{"x", "y:80"}) && c.AdminRateBurst == 1
		}},
		{"defaults off", &fakeOS{}, []string{"--dev"}, func(c *Config) bool {
			return c.TrustedHosts == nil && c.AdminRateLimit == 0 && c.AdminRateBurst == 0 && !c.TLS() && !c.GatewayTLS() && c.Encrypt == ""
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.f, tc.args...)
			if !tc.want(c) {
				t.Errorf("unexpected config %+v", c)
			}
		})
	}
}

func TestSecuritySettingsErrors(t *testing.T) {
	cases := []struct {
		args            []string
		setting, substr string
	}{
		{[]string{"--trusted-hosts", "http://x"}, "trusted_hosts", "no scheme"},
		{[]string{"--trusted-hosts", "x:99999"}, "trusted_hosts", "port out of range"},
		{[]string{"--trusted-hosts", "::1"}, "trusted_hosts", "without brackets"},
		{[]string{"--trusted-hosts", " "}, "trusted_hosts", "empty"},
		{[]string{"--admin-rate-limit", "fast"}, "admin_rate_limit", "not a number"},
		{[]string{"--admin-rate-limit", "NaN"}, "admin_rate_limit", "not a number"},
		{[]string{"--admin-rate-limit", "-1"}, "admin_rate_limit", "out of range"},
		{[]string{"--admin-rate-burst", "5"}, "admin_rate_burst", "admin_rate_limit is 0"},
		{[]string{"--admin-rate-limit", "1", "--admin-rate-burst", "-2"}, "admin_rate_burst", ">= 0"},
		{[]string{"--tls-cert-file", "c.pem"}, "tls_key_file", "required with tls_cert_file"},
		{[]string{"--tls-key-file", "k.pem"}, "tls_cert_file", "required with tls_key_file"},
		{[]string{"--tls-client-ca-file", "ca.pem"}, "tls_client_ca_file", "requires tls_cert_file"},
		{[]string{"--tls-ca-file", "ca.pem"}, "tls_ca_file", "requires tls_cert_file"},
		{[]string{"--gateway-tls-key-file", "k.pem"}, "gateway_tls_cert_file", "required with gateway_tls_key_file"},
		{[]string{"--gateway-tls-client-ca-file", "ca.pem"}, "gateway_tls_client_ca_file", "requires gateway_tls_cert_file"},
		{[]string{"--encrypt", "not base64!"}, "encrypt", "not base64"},
		{[]string{"--encrypt", "YWJj"}, "encrypt", "3 bytes; want 16, 24 or 32"},
	}
	for _, tc := range cases {
		t.Run(tc.setting+" "+tc.substr, func(t *testing.T) {
			_, err := (&fakeOS{}).load(append([]string{"--dev"}, tc.args...)...)
			wantSettingErr(t, err, tc.setting, tc.substr)
		})
	}
}

func TestDecodeGossipKey(t *testing.T) {
	for _, tc := range []struct {
		in string
		n  int
	}{{"MDEyMzQ1Njc4OWFiY2RlZg==", 16}, {"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3", 24}, {"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", 32}, {"", 0}} {
		k, err := DecodeGossipKey(tc.in)
		if (err == nil) != (tc.n > 0) || len(k) != tc.n {
			t.Errorf("%q: %d bytes, err %v", tc.in, len(k), err)
		}
	}
}
