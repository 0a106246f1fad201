package agentconfig

import (
	"encoding/base64"
	"errors"
	"math"
	"net"
	"strconv"
	"strings"
)

// maxAdminRate bounds admin_rate_limit (requests/s per client IP).
const maxAdminRate = 1e6

// validateSecurity checks the security settings (docs/security.md).
func (c *Config) validateSecurity() error {
	for _, h := range c.TrustedHosts {
		if _, err := normalizeTrustedHost(h); err != nil {
			return settingErr("trusted_hosts", "%q %s", h, err)
		}
	}
	if c.AdminRateLimit < 0 || c.AdminRateLimit > maxAdminRate || math.IsNaN(c.AdminRateLimit) {
		return settingErr("admin_rate_limit", "%q is out of range 0..%g requests/s (0 = off)",
			strconv.FormatFloat(c.AdminRateLimit, 'g', -1, 64), float64(maxAdminRate))
	}
	if c.AdminRateBurst < 0 {
		return settingErr("admin_rate_burst", "%q must be >= 0", strconv.Itoa(c.AdminRateBurst))
	}
	if c.AdminRateBurst > 0 && c.AdminRateLimit == 0 {
		return settingErr("admin_rate_burst", "%q is set but admin_rate_limit is 0 (off); set admin_rate_limit", strconv.Itoa(c.AdminRateBurst))
	}
	if err := pair("tls_cert_file", c.TLSCertFile, "tls_key_file", c.TLSKeyFile); err != nil {
		return err
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		return settingErr("tls_client_ca_file", "requires tls_cert_file and tls_key_file (client certificates are verified over TLS only)")
	}
	if c.TLSCAFile != "" && c.TLSCertFile == "" {
		return settingErr("tls_ca_file", "requires tls_cert_file and tls_key_file (the nodes talk TLS only when this node serves it)")
	}
	if err := pair("gateway_tls_cert_file", c.GatewayTLSCertFile, "gateway_tls_key_file", c.GatewayTLSKeyFile); err != nil {
		return err
	}
	if c.GatewayTLSClientCAFile != "" && c.GatewayTLSCertFile == "" {
		return settingErr("gateway_tls_client_ca_file", "requires gateway_tls_cert_file and gateway_tls_key_file")
	}
	if c.Encrypt != "" {
		if _, err := DecodeGossipKey(c.Encrypt); err != nil {
			return settingErr("encrypt", "%v", err)
		}
	}
	return c.validateACL()
}

// pair requires both of two settings or neither.
func pair(aKey, a, bKey, b string) error {
	switch {
	case a != "" && b == "":
		return settingErr(bKey, "required with %s", aKey)
	case a == "" && b != "":
		return settingErr(aKey, "required with %s", bKey)
	}
	return nil
}

// DecodeGossipKey decodes a base64 (standard encoding) gossip key of 16, 24
// or 32 bytes (AES-128, -192 or -256).
func DecodeGossipKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("is not base64 (standard encoding); generate one with: head -c 32 /dev/urandom | base64")
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, errors.New("decodes to " + strconv.Itoa(len(k)) + " bytes; want 16, 24 or 32")
}

// normalizeTrustedHost lower-cases a trusted host, HOST or HOST:PORT (an
// IPv6 literal in brackets), and rejects what cannot be a Host header.
func normalizeTrustedHost(h string) (string, error) {
	h = strings.ToLower(strings.TrimSpace(h))
	if h == "" {
		return "", errors.New("is empty")
	}
	if strings.ContainsAny(h, "/ \t@?#,\\") {
		return "", errors.New("is not a HOST or HOST:PORT (no scheme, path or spaces)")
	}
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
				return h, nil // [::1] without a port
			}
			return "", errors.New("is not a HOST or HOST:PORT")
		}
		if host == "" {
			return "", errors.New("has no host")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", errors.New("has a port out of range 1..65535")
		}
	} else if strings.Contains(h, ":") {
		return "", errors.New("is an IPv6 address without brackets; write [" + h + "]")
	}
	return h, nil
}
