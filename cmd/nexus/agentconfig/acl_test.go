package agentconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testJWTSecret = "0123456789abcdef0123456789abcdef-jwt" // 36 bytes

// Each ACL setting from a flag, from NEXUS_<KEY> and from the nested YAML
// mapping acl:.
func TestACLSettingsSources(t *testing.T) {
	cases := []struct {
		key   string // setting key
		flag  []string
		env   string // value of NEXUS_<KEY>
		yaml  string // the lines under acl:
		check func(c *Config) bool
	}{
		{"acl_enabled", []string{"--acl-enabled"}, "true", "enabled: true",
			func(c *Config) bool { return c.ACLEnabled }},
		{"acl_metrics_public", []string{"--acl-metrics-public"}, "1", "metrics_public: true",
			func(c *Config) bool { return c.ACLMetricsPublic }},
		{"acl_jwt_secret", []string{"--acl-jwt-secret", testJWTSecret}, testJWTSecret, "jwt_secret: " + testJWTSecret,
			func(c *Config) bool { return string(c.ACLJWTSecret) == testJWTSecret }},
		{"acl_jwt_secret_file", []string{"--acl-jwt-secret-file", "/s/jwt.key"}, "/s/jwt.key", "jwt_secret_file: /s/jwt.key",
			func(c *Config) bool { return c.ACLJWTSecretFile == "/s/jwt.key" }},
		{"acl_jwt_expiry", []string{"--acl-jwt-expiry", "15m"}, "15m", "jwt_expiry: 15m",
			func(c *Config) bool { return c.ACLJWTExpiry == 15*time.Minute }},
		{"acl_jwt_issuer", []string{"--acl-jwt-issuer", "https://idp.example"}, "https://idp.example", "jwt_issuer: https://idp.example",
			func(c *Config) bool { return c.ACLJWTIssuer == "https://idp.example" }},
		{"acl_jwt_audience", []string{"--acl-jwt-audience", "ops"}, "ops", "jwt_audience: ops",
			func(c *Config) bool { return c.ACLJWTAudience == "ops" }},
		{"acl_jwt_roles_claim", []string{"--acl-jwt-roles-claim", "groups"}, "groups", "jwt_roles_claim: groups",
			func(c *Config) bool { return c.ACLJWTRolesClaim == "groups" }},
		{"acl_jwt_public_key_files", []string{"--acl-jwt-public-key-files", "/a.pem", "--acl-jwt-public-key-files", " /b.pem "},
			"/a.pem, /b.pem", "jwt_public_key_files: [/a.pem, /b.pem]",
			func(c *Config) bool { return reflect.DeepEqual(c.ACLJWTPublicKeyFiles, []string{"/a.pem", "/b.pem"}) }},
		{"acl_jwt_jwks_file", []string{"--acl-jwt-jwks-file", "/jwks.json"}, "/jwks.json", "jwt_jwks_file: /jwks.json",
			func(c *Config) bool { return c.ACLJWTJWKSFile == "/jwks.json" }},
		{"acl_token_rate_limit", []string{"--acl-token-rate-limit", "2.5"}, "2.5", "token_rate_limit: 2.5",
			func(c *Config) bool { return c.ACLTokenRateLimit == 2.5 && c.ACLTokenRateBurst == 5 }},
		{"acl_token_rate_burst", []string{"--acl-token-rate-limit", "1", "--acl-token-rate-burst", "9"}, "9", "token_rate_burst: 9",
			func(c *Config) bool { return c.ACLTokenRateBurst == 9 }},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			c := mustLoad(t, &fakeOS{}, append([]string{"--data-dir", "/d"}, tc.flag...)...)
			if !tc.check(c) {
				t.Errorf("from flags %q: unexpected config %+v", tc.flag, c)
			}

			env := map[string]string{"NEXUS_" + strings.ToUpper(tc.key): tc.env}
			if tc.key == "acl_token_rate_burst" {
				env["NEXUS_ACL_TOKEN_RATE_LIMIT"] = "1"
			}
			c = mustLoad(t, &fakeOS{env: env}, "--data-dir", "/d")
			if !tc.check(c) {
				t.Errorf("from env %v: unexpected config %+v", env, c)
			}

			file := "data_dir: /d\nacl:\n  " + tc.yaml + "\n"
			if tc.key == "acl_token_rate_burst" {
				file += "  token_rate_limit: 1\n"
			}
			c = mustLoad(t, &fakeOS{files: map[string]string{"/c.yaml": file}}, "--config", "/c.yaml")
			if !tc.check(c) {
				t.Errorf("from YAML %q: unexpected config %+v", file, c)
			}
			// Flow style works as well.
			flow := "data_dir: /d\nacl: {" + tc.yaml + "}\n"
			if tc.key == "acl_token_rate_burst" {
				flow = "data_dir: /d\nacl: {" + tc.yaml + ", token_rate_limit: 1}\n"
			}
			c = mustLoad(t, &fakeOS{files: map[string]string{"/c.yaml": flow}}, "--config", "/c.yaml")
			if !tc.check(c) {
				t.Errorf("from YAML %q: unexpected config %+v", flow, c)
			}
		})
	}
}

func TestACLDefaults(t *testing.T) {
	c := mustLoad(t, &fakeOS{}, "--data-dir", "/d")
	if c.ACLEnabled || c.ACLMetricsPublic || c.ACLJWTSecret != "" || c.ACLJWTSecretFile != "" || c.ACLJWTExpiry != time.Hour ||
		c.ACLJWTIssuer != "nexus" || c.ACLJWTAudience != "nexus" || c.ACLJWTRolesClaim != "roles" ||
		c.ACLJWTPublicKeyFiles != nil || c.ACLJWTJWKSFile != "" || c.ACLTokenRateLimit != 0 || c.ACLTokenRateBurst != 0 ||
		c.ACLJWTConfigured() {
		t.Errorf("ACL defaults: %+v", c)
	}
	// "acl:" empty or null leaves everything at its default.
	for _, file := range []string{"data_dir: /d\nacl:\n", "data_dir: /d\nacl: {}\n", "data_dir: /d\nacl:\n  enabled:\n"} {
		c := mustLoad(t, &fakeOS{files: map[string]string{"/c.yaml": file}}, "--config", "/c.yaml")
		if c.ACLEnabled || c.ACLJWTIssuer != "nexus" {
			t.Errorf("%q: %+v", file, c)
		}
	}
}

// --dev leaves ACLs off; an explicit acl_enabled, from any source, wins.
func TestACLDev(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		file string
		args []string
		want bool
	}{
		{name: "dev alone", args: []string{"--dev"}, want: false},
		{name: "not dev", args: []string{"--data-dir", "/d"}, want: false},
		{name: "dev with flag", args: []string{"--dev", "--acl-enabled"}, want: true},
		{name: "dev with env", env: map[string]string{"NEXUS_ACL_ENABLED": "true"}, args: []string{"--dev"}, want: true},
		{name: "dev with yaml", file: "acl:\n  enabled: true\n", args: []string{"--dev"}, want: true},
		{name: "yaml dev and acl", file: "dev: true\nacl: {enabled: true}\n", want: true},
		{name: "dev env, explicit false", env: map[string]string{"NEXUS_DEV": "true", "NEXUS_ACL_ENABLED": "false"}, want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeOS{env: tc.env}
			args := tc.args
			if tc.file != "" {
				f.files = map[string]string{"/c.yaml": tc.file}
				args = append([]string{"--config", "/c.yaml"}, args...)
			}
			if c := mustLoad(t, f, args...); c.ACLEnabled != tc.want {
				t.Errorf("ACLEnabled = %v, want %v", c.ACLEnabled, tc.want)
			}
		})
	}
}

// defaults < YAML acl: < NEXUS_ACL_* < --acl-* flags.
func TestACLPrecedence(t *testing.T) {
	const file = `
data_dir: /d
acl:
  enabled: true
  jwt_expiry: 10m
  jwt_issuer: file-iss
  jwt_public_key_files: [/file.pem]
  token_rate_limit: 1
`
	env := map[string]string{
		"NEXUS_CONFIG":                   "/c.yaml",
		"NEXUS_ACL_ENABLED":              "false",
		"NEXUS_ACL_JWT_EXPIRY":           "20m",
		"NEXUS_ACL_JWT_PUBLIC_KEY_FILES": "/env.pem",
	}
	type want struct {
		enabled bool
		expiry  time.Duration
		issuer  string
		keys    []string
		rate    float64
	}
	cases := []struct {
		name string
		env  bool
		args []string
		want want
	}{
		{"file", false, []string{"--config", "/c.yaml"}, want{true, 10 * time.Minute, "file-iss", []string{"/file.pem"}, 1}},
		{"env over file", true, nil, want{false, 20 * time.Minute, "file-iss", []string{"/env.pem"}, 1}},
		{"flags over env", true, []string{"--acl-enabled", "--acl-jwt-expiry", "30m", "--acl-jwt-public-key-files", "/flag.pem", "--acl-token-rate-limit", "3"},
			want{true, 30 * time.Minute, "file-iss", []string{"/flag.pem"}, 3}},
		{"flags not given do not override", true, []string{"--acl-jwt-issuer", "flag-iss"}, want{false, 20 * time.Minute, "flag-iss", []string{"/env.pem"}, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeOS{files: map[string]string{"/c.yaml": file}}
			if tc.env {
				f.env = env
			}
			c := mustLoad(t, f, tc.args...)
			got := want{c.ACLEnabled, c.ACLJWTExpiry, c.ACLJWTIssuer, c.ACLJWTPublicKeyFiles, c.ACLTokenRateLimit}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestACLSettingsErrors(t *testing.T) {
	cases := []struct {
		name            string
		args            []string
		env             map[string]string
		setting, substr string
	}{
		{"enabled not bool", []string{"--acl-enabled=maybe"}, nil, "acl_enabled", `"maybe" is not a boolean (true or false) (from --acl-enabled)`},
		{"enabled env not bool", nil, map[string]string{"NEXUS_ACL_ENABLED": "on"}, "acl_enabled", "(from NEXUS_ACL_ENABLED)"},
		{"metrics_public not bool", []string{"--acl-metrics-public=2"}, nil, "acl_metrics_public", "not a boolean"},
		{"secret short", []string{"--acl-jwt-secret", "short"}, nil, "acl_jwt_secret", "is 5 bytes; want at least 32"},
		{"secret short env", nil, map[string]string{"NEXUS_ACL_JWT_SECRET": strings.Repeat("x", 31)}, "acl_jwt_secret", "is 31 bytes"},
		{"secret and file", []string{"--acl-jwt-secret", testJWTSecret, "--acl-jwt-secret-file", "/k"}, nil, "acl_jwt_secret_file", "set only one"},
		{"secret file blank", []string{"--acl-jwt-secret-file", " "}, nil, "acl_jwt_secret_file", "blank"},
		{"expiry not duration", []string{"--acl-jwt-expiry", "3600"}, nil, "acl_jwt_expiry", "not a duration"},
		{"expiry low", []string{"--acl-jwt-expiry", "59s"}, nil, "acl_jwt_expiry", `"59s" is out of range 1m..24h`},
		{"expiry high", []string{"--acl-jwt-expiry", "25h"}, nil, "acl_jwt_expiry", "out of range 1m..24h"},
		{"expiry zero", nil, map[string]string{"NEXUS_ACL_JWT_EXPIRY": "0s"}, "acl_jwt_expiry", "out of range"},
		{"issuer empty", []string{"--acl-jwt-issuer", ""}, nil, "acl_jwt_issuer", "must not be empty"},
		{"audience spaces", []string{"--acl-jwt-audience", " a"}, nil, "acl_jwt_audience", "spaces"},
		{"roles claim empty", []string{"--acl-jwt-roles-claim", ""}, nil, "acl_jwt_roles_claim", "must not be empty"},
		{"roles claim reserved", []string{"--acl-jwt-roles-claim", "sub"}, nil, "acl_jwt_roles_claim", `"sub" is a registered claim`},
		{"roles claim accessor", []string{"--acl-jwt-roles-claim", "nexus_accessor"}, nil, "acl_jwt_roles_claim", "registered claim"},
		{"public key empty", []string{"--acl-jwt-public-key-files", " "}, nil, "acl_jwt_public_key_files", "empty"},
		{"jwks blank", []string{"--acl-jwt-jwks-file", " "}, nil, "acl_jwt_jwks_file", "blank"},
		{"rate not number", []string{"--acl-token-rate-limit", "lots"}, nil, "acl_token_rate_limit", "not a number"},
		{"rate negative", []string{"--acl-token-rate-limit", "-1"}, nil, "acl_token_rate_limit", "out of range"},
		{"rate huge", nil, map[string]string{"NEXUS_ACL_TOKEN_RATE_LIMIT": "1e7"}, "acl_token_rate_limit", "out of range"},
		{"burst without rate", []string{"--acl-token-rate-burst", "5"}, nil, "acl_token_rate_burst", "acl_token_rate_limit is 0"},
		{"burst negative", []string{"--acl-token-rate-limit", "1", "--acl-token-rate-burst", "-1"}, nil, "acl_token_rate_burst", ">= 0"},
		{"burst not int", []string{"--acl-token-rate-burst", "1.5"}, nil, "acl_token_rate_burst", "not an integer"},
		{"flat flag with underscore", []string{"--acl_enabled"}, nil, "acl_enabled", "did you mean --acl-enabled?"},
		{"dotted flag", []string{"--acl.enabled"}, nil, "acl.enabled", "unknown flag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (&fakeOS{env: tc.env}).load(append([]string{"--data-dir", "/d"}, tc.args...)...)
			wantSettingErr(t, err, tc.setting, tc.substr)
		})
	}
}

func TestACLFileErrors(t *testing.T) {
	cases := []struct {
		name            string
		content         string
		setting, substr string
	}{
		{"unknown nested key", "data_dir: /d\nacl:\n  enabled: true\n  enabeld: true\n", "acl.enabeld", "unknown key in config file /c.yaml line 4"},
		{"unknown nested key flow", "data_dir: /d\nacl: {enabeld: true}\n", "acl.enabeld", "unknown key in config file /c.yaml line 2"},
		{"dashed nested key", "data_dir: /d\nacl:\n  jwt-secret-file: /k\n", "acl.jwt-secret-file", `did you mean "acl.jwt_secret_file"?`},
		{"flat key at the top", "data_dir: /d\nacl_enabled: true\n", "acl_enabled", `did you mean "acl.enabled" (enabled under acl:)?`},
		{"dashed flat key at the top", "data_dir: /d\nacl-jwt-expiry: 1h\n", "acl-jwt-expiry", `did you mean "acl.jwt_expiry"`},
		{"seed's top-level jwt_secret", "data_dir: /d\njwt_secret: x\n", "jwt_secret", "unknown key"},
		{"prefixed nested key", "data_dir: /d\nacl:\n  acl_enabled: true\n", "acl.acl_enabled", "unknown key"},
		{"acl scalar", "data_dir: /d\nacl: true\n", "acl", `expected a mapping of acl settings such as "acl: {enabled: true}", got bool (from config file /c.yaml line 2)`},
		{"acl list", "data_dir: /d\nacl: [enabled]\n", "acl", "got seq"},
		{"duplicate nested key", "data_dir: /d\nacl:\n  enabled: true\n  enabled: false\n", "acl.enabled", "given twice in config file /c.yaml (lines 3 and 4)"},
		{"duplicate acl", "data_dir: /d\nacl: {}\nacl: {}\n", "acl", "given twice"},
		{"nested bad bool", "data_dir: /d\nacl:\n  enabled: yes\n", "acl_enabled", `"yes" is not a boolean (true or false) (from config file /c.yaml line 3, acl.enabled)`},
		{"nested mapping value", "data_dir: /d\nacl:\n  jwt_issuer: {a: b}\n", "acl_jwt_issuer", "expected a single value, got a mapping"},
		{"nested list for scalar", "data_dir: /d\nacl:\n  jwt_jwks_file: [a, b]\n", "acl_jwt_jwks_file", "expected a single value, got a list"},
		{"key files mapping", "data_dir: /d\nacl:\n  jwt_public_key_files: {a: b}\n", "acl_jwt_public_key_files", "expected a list of FILE strings"},
		{"key files null item", "data_dir: /d\nacl:\n  jwt_public_key_files: [/a.pem, ~]\n", "acl_jwt_public_key_files", "list items must be FILE strings"},
		{"key files empty item", "data_dir: /d\nacl:\n  jwt_public_key_files: [/a.pem, '']\n", "acl_jwt_public_key_files", "empty"},
		{"nested expiry range", "data_dir: /d\nacl:\n  jwt_expiry: 48h\n", "acl_jwt_expiry", "out of range 1m..24h"},
		{"nested short secret", "data_dir: /d\nacl:\n  jwt_secret: abc\n", "acl_jwt_secret", "is 3 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (&fakeOS{files: map[string]string{"/c.yaml": tc.content}}).load("--config", "/c.yaml")
			wantSettingErr(t, err, tc.setting, tc.substr)
		})
	}
}

// Secrets never show up in errors, in a printed Config or in logs.
func TestACLSecretNeverShown(t *testing.T) {
	const short = "not-long-enough-secret"
	_, err := (&fakeOS{}).load("--data-dir", "/d", "--acl-jwt-secret", short)
	wantSettingErr(t, err, "acl_jwt_secret", "bytes")
	if strings.Contains(err.Error(), short) {
		t.Errorf("error shows the secret: %v", err)
	}

	c := mustLoad(t, &fakeOS{}, "--data-dir", "/d", "--acl-jwt-secret", testJWTSecret)
	if string(c.ACLJWTSecret) != testJWTSecret || !c.ACLJWTConfigured() {
		t.Fatalf("secret not loaded")
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("cfg", "secret", c.ACLJWTSecret, "cfg", c)
	js, _ := json.Marshal(c)
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", *c),
		fmt.Sprint(c.ACLJWTSecret), logged.String(), string(js)} {
		if strings.Contains(out, testJWTSecret) {
			t.Errorf("secret shown: %s", out)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("no [redacted] in %s", out)
		}
	}
	if Secret("").String() != "" {
		t.Errorf("empty secret prints %q", Secret("").String())
	}
}

func TestACLUsage(t *testing.T) {
	u := Usage()
	for _, want := range []string{"--acl-enabled", "$NEXUS_ACL_ENABLED; YAML acl.enabled]", "--acl-jwt-expiry DURATION",
		"(default 1h0m0s)", "--acl-jwt-public-key-files FILE", "acl: {enabled: true}"} {
		if !strings.Contains(u, want) {
			t.Errorf("Usage() lacks %q", want)
		}
	}
}
