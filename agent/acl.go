package agent

import (
	"bytes"
	"fmt"
	"log/slog"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/api"
	"github.com/nexus/nexus/cmd/nexus/agentconfig"
)

// aclOptions builds the admin API's access control from the ACL settings
// (docs/acl.md), reading the key files they name once. With ACLs off it
// returns the zero options and reads nothing. An error names the setting
// (and the file).
func aclOptions(cfg *agentconfig.Config, readFile func(string) ([]byte, error)) (api.ACLOptions, error) {
	if !cfg.ACLEnabled {
		return api.ACLOptions{}, nil
	}
	o := api.ACLOptions{
		Enabled:        true,
		MetricsPublic:  cfg.ACLMetricsPublic,
		TokenRateLimit: cfg.ACLTokenRateLimit,
		TokenRateBurst: cfg.ACLTokenRateBurst,
	}
	if !cfg.ACLJWTConfigured() {
		return o, nil // tokens only
	}
	secret := []byte(cfg.ACLJWTSecret)
	if cfg.ACLJWTSecretFile != "" {
		b, err := readFile(cfg.ACLJWTSecretFile)
		if err != nil {
			return o, settingErr("acl_jwt_secret_file", err)
		}
		secret = bytes.TrimSpace(b)
		if len(secret) < agentconfig.MinJWTSecretBytes {
			return o, settingErr("acl_jwt_secret_file", fmt.Errorf("file %s holds a key of %d bytes; want at least %d",
				cfg.ACLJWTSecretFile, len(secret), agentconfig.MinJWTSecretBytes))
		}
	}
	base := acl.JWTConfig{
		Issuer: cfg.ACLJWTIssuer, Audience: cfg.ACLJWTAudience, RolesClaim: cfg.ACLJWTRolesClaim, Expiry: cfg.ACLJWTExpiry,
	}
	// Load each key file alone first, so that an error names its setting.
	// agentconfig validated the other fields: an error of the whole config
	// below is unexpected and reported against acl_jwt_roles_claim, the
	// only one acl.NewJWTAuth checks beyond those ranges.
	for _, f := range cfg.ACLJWTPublicKeyFiles {
		one := base
		one.PublicKeyFiles = []string{f}
		if _, err := acl.NewJWTAuth(one); err != nil {
			return o, settingErr("acl_jwt_public_key_files", err)
		}
	}
	if cfg.ACLJWTJWKSFile != "" {
		one := base
		one.JWKSFile = cfg.ACLJWTJWKSFile
		if _, err := acl.NewJWTAuth(one); err != nil {
			return o, settingErr("acl_jwt_jwks_file", err)
		}
	}
	all := base
	all.Secret = secret
	all.PublicKeyFiles = cfg.ACLJWTPublicKeyFiles
	all.JWKSFile = cfg.ACLJWTJWKSFile
	jwt, err := acl.NewJWTAuth(all)
	if err != nil {
		return o, settingErr("acl_jwt_roles_claim", err)
	}
	o.JWT = jwt
	return o, nil
}

// logACL says at start whether ACLs are on and which JWT verification keys
// are configured: file names only, never the secret.
func logACL(logger *slog.Logger, cfg *agentconfig.Config, o api.ACLOptions) {
	if !o.Enabled {
		if cfg.ACLJWTConfigured() || cfg.ACLTokenRateLimit > 0 || cfg.ACLMetricsPublic {
			logger.Warn("ACLs are off (acl.enabled is false): the other acl settings are ignored", "acl", false)
		} else {
			logger.Info("ACLs are off; every admin API request is allowed", "acl", false, "dev", cfg.Dev)
		}
		return
	}
	secret := "none"
	switch {
	case cfg.ACLJWTSecretFile != "":
		secret = "file " + cfg.ACLJWTSecretFile
	case cfg.ACLJWTSecret != "":
		secret = "set"
	}
	attrs := []any{"acl", true, "metrics_public", o.MetricsPublic,
		"jwt_secret", secret, "jwt_public_key_files", cfg.ACLJWTPublicKeyFiles, "jwt_jwks_file", cfg.ACLJWTJWKSFile,
		"jwt_login", o.JWT.CanIssue(), "token_rate_limit", o.TokenRateLimit}
	if o.JWT.Enabled() {
		attrs = append(attrs, "jwt_issuer", cfg.ACLJWTIssuer, "jwt_audience", cfg.ACLJWTAudience,
			"jwt_roles_claim", cfg.ACLJWTRolesClaim, "jwt_expiry", cfg.ACLJWTExpiry.String())
	}
	logger.Info("ACLs are on: admin API requests need a token or JWT", attrs...)
}
