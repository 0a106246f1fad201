package agentconfig

import (
	"errors"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ACL settings (docs/security.md, "ACL settings"; docs/acl.md). In the YAML
// file they sit in the mapping "acl:" (acl: {enabled: true}); flags and
// environment variables use the flat key: --acl-enabled, NEXUS_ACL_ENABLED.
const (
	// MinJWTSecretBytes is the shortest acl_jwt_secret accepted (HS256
	// wants a key of at least the hash size).
	MinJWTSecretBytes = 32

	defaultACLJWTExpiry     = time.Hour
	minACLJWTExpiry         = time.Minute
	maxACLJWTExpiry         = 24 * time.Hour
	defaultACLJWTIssuer     = "nexus"
	defaultACLJWTAudience   = "nexus"
	defaultACLJWTRolesClaim = "roles"
	maxACLTokenRate         = 1e6
)

// reservedJWTClaims cannot be the roles claim: the JWTs POST /acl/login
// issues set them (acl.NewJWTAuth refuses them too).
var reservedJWTClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "nexus_accessor"}

// Secret is a setting that must never be shown: fmt and slog print it as
// "[redacted]" (or "" when empty). Convert it to string to use it.
type Secret string

const redacted = "[redacted]"

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the secret.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue keeps slog from printing the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoders (JSON, YAML) from printing the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ACLJWTConfigured reports whether any JWT verification key is configured
// (acl_jwt_secret, acl_jwt_secret_file, acl_jwt_public_key_files or
// acl_jwt_jwks_file).
func (c *Config) ACLJWTConfigured() bool {
	return c.ACLJWTSecret != "" || c.ACLJWTSecretFile != "" || len(c.ACLJWTPublicKeyFiles) > 0 || c.ACLJWTJWKSFile != ""
}

// validateACL checks the ACL settings. They are checked whether or not
// acl_enabled is set, so that a config prepared before turning ACLs on is
// already known to be valid. Files are read by the agent at start.
func (c *Config) validateACL() error {
	if c.ACLJWTSecret != "" && c.ACLJWTSecretFile != "" {
		return settingErr("acl_jwt_secret_file", "set together with acl_jwt_secret; set only one of them")
	}
	if n := len(c.ACLJWTSecret); n > 0 && n < MinJWTSecretBytes {
		// Never quote the value: it is a secret.
		return settingErr("acl_jwt_secret", "is %d bytes; want at least %d (generate one with: head -c 32 /dev/urandom | base64)", n, MinJWTSecretBytes)
	}
	if c.ACLJWTSecretFile != "" && strings.TrimSpace(c.ACLJWTSecretFile) == "" {
		return settingErr("acl_jwt_secret_file", "is blank; want a file name")
	}
	if c.ACLJWTExpiry < minACLJWTExpiry || c.ACLJWTExpiry > maxACLJWTExpiry {
		return settingErr("acl_jwt_expiry", "%q is out of range 1m..24h", c.ACLJWTExpiry.String())
	}
	for _, s := range []struct{ key, v string }{
		{"acl_jwt_issuer", c.ACLJWTIssuer}, {"acl_jwt_audience", c.ACLJWTAudience}, {"acl_jwt_roles_claim", c.ACLJWTRolesClaim},
	} {
		if strings.TrimSpace(s.v) == "" {
			return settingErr(s.key, "must not be empty")
		}
		if strings.TrimSpace(s.v) != s.v {
			return settingErr(s.key, "%q has leading or trailing spaces", s.v)
		}
	}
	if slices.Contains(reservedJWTClaims, c.ACLJWTRolesClaim) {
		return settingErr("acl_jwt_roles_claim", "%q is a registered claim of the JWTs Nexus issues; pick another name", c.ACLJWTRolesClaim)
	}
	for _, f := range c.ACLJWTPublicKeyFiles {
		if _, err := normalizeFile(f); err != nil {
			return settingErr("acl_jwt_public_key_files", "%q %s", f, err)
		}
	}
	if c.ACLJWTJWKSFile != "" && strings.TrimSpace(c.ACLJWTJWKSFile) == "" {
		return settingErr("acl_jwt_jwks_file", "is blank; want a file name")
	}
	if c.ACLTokenRateLimit < 0 || c.ACLTokenRateLimit > maxACLTokenRate || math.IsNaN(c.ACLTokenRateLimit) {
		return settingErr("acl_token_rate_limit", "%q is out of range 0..%g requests/s (0 = off)",
			strconv.FormatFloat(c.ACLTokenRateLimit, 'g', -1, 64), float64(maxACLTokenRate))
	}
	if c.ACLTokenRateBurst < 0 {
		return settingErr("acl_token_rate_burst", "%q must be >= 0", strconv.Itoa(c.ACLTokenRateBurst))
	}
	if c.ACLTokenRateBurst > 0 && c.ACLTokenRateLimit == 0 {
		return settingErr("acl_token_rate_burst", "%q is set but acl_token_rate_limit is 0 (off); set acl_token_rate_limit", strconv.Itoa(c.ACLTokenRateBurst))
	}
	return nil
}

// normalizeFile trims a file name of a list setting; its error is the
// reason only.
func normalizeFile(f string) (string, error) {
	f = strings.TrimSpace(f)
	if f == "" {
		return "", errors.New("is empty; want a file name")
	}
	return f, nil
}
