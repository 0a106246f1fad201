package agent

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/api"
	"github.com/nexus/nexus/cmd/nexus/agentconfig"
	"github.com/nexus/nexus/registry"
)

const testJWTSecret = "0123456789abcdef0123456789abcdef-jwt" // 36 bytes

// aclKeys writes an EC P-256 public key as PEM and another as a JWKS.
type aclKeys struct {
	dir               string
	pemKey, jwksKey   *ecdsa.PrivateKey
	pemFile, jwksFile string
}

func newACLKeys(t *testing.T) *aclKeys {
	t.Helper()
	k := &aclKeys{dir: t.TempDir()}
	var err error
	if k.pemKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if k.jwksKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.pemKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	k.pemFile = k.write(t, "idp.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	point, err := k.jwksKey.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "x": b64(point[1:33]), "y": b64(point[33:]),
	}}})
	k.jwksFile = k.write(t, "jwks.json", jwks)
	return k
}

func (k *aclKeys) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(k.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// idpJWT is an identity provider's ES256 JWT.
func idpJWT(t *testing.T, key *ecdsa.PrivateKey, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// aclConfig is a loaded config: the defaults of the ACL settings included.
func aclConfig(t *testing.T, args ...string) *agentconfig.Config {
	t.Helper()
	cfg, err := agentconfig.Load(append([]string{"--data-dir", "/d", "--node", "n1"}, args...),
		func(string) string { return "" }, nil, nil, nil)
	if err != nil {
		t.Fatalf("Load(%q): %v", args, err)
	}
	return cfg
}

func TestACLOptions(t *testing.T) {
	k := newACLKeys(t)
	secretFile := k.write(t, "jwt.key", []byte(testJWTSecret+"\n"))
	shortFile := k.write(t, "short.key", []byte("tiny-secret\n"))
	privFile := k.write(t, "priv.pem", func() []byte {
		der, _ := x509.MarshalECPrivateKey(k.pemKey)
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}())
	badJWKS := k.write(t, "bad.json", []byte(`{"keys": "no"}`))
	missing := filepath.Join(k.dir, "missing.pem")
	now := time.Now()

	cases := []struct {
		name    string
		args    []string
		setting string // "" = no error
		substr  string
		check   func(t *testing.T, o api.ACLOptions)
	}{
		{name: "off by default", check: func(t *testing.T, o api.ACLOptions) {
			if !reflect.DeepEqual(o, api.ACLOptions{}) {
				t.Errorf("%+v", o)
			}
		}},
		{name: "off: key files are not read", args: []string{"--acl-jwt-secret-file", missing, "--acl-jwt-public-key-files", missing},
			check: func(t *testing.T, o api.ACLOptions) {
				if o.Enabled || o.JWT != nil {
					t.Errorf("%+v", o)
				}
			}},
		{name: "tokens only", args: []string{"--acl-enabled", "--acl-metrics-public", "--acl-token-rate-limit", "5"},
			check: func(t *testing.T, o api.ACLOptions) {
				if !o.Enabled || !o.MetricsPublic || o.JWT != nil || o.TokenRateLimit != 5 || o.TokenRateBurst != 10 {
					t.Errorf("%+v", o)
				}
			}},
		{name: "inline secret issues and verifies", args: []string{"--acl-enabled", "--acl-jwt-secret", testJWTSecret,
			"--acl-jwt-expiry", "10m", "--acl-jwt-issuer", "iss-x", "--acl-jwt-audience", "aud-x"},
			check: func(t *testing.T, o api.ACLOptions) {
				if !o.JWT.CanIssue() || !o.JWT.Enabled() {
					t.Fatalf("JWT %+v", o.JWT)
				}
				raw, exp, err := o.JWT.Issue("acc-1", []string{"ops"}, now)
				if err != nil {
					t.Fatal(err)
				}
				if d := exp.Sub(now); d < 9*time.Minute || d > 10*time.Minute {
					t.Errorf("issued JWT lives %s, want acl_jwt_expiry 10m", d)
				}
				claims := jwt.MapClaims{}
				if _, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return []byte(testJWTSecret), nil }); err != nil {
					t.Errorf("not signed with acl_jwt_secret: %v", err)
				}
				if _, _, err := jwt.NewParser().ParseUnverified(raw, claims); err != nil || claims["iss"] != "iss-x" || claims["aud"] != "aud-x" {
					t.Errorf("claims %v, %v", claims, err)
				}
				if id, err := o.JWT.Verify(raw, now); err != nil || id.Accessor != "acc-1" {
					t.Errorf("Verify: %+v, %v", id, err)
				}
			}},
		{name: "secret file, trailing newline ignored", args: []string{"--acl-enabled", "--acl-jwt-secret-file", secretFile},
			check: func(t *testing.T, o api.ACLOptions) {
				raw, _, err := o.JWT.Issue("acc-2", nil, now)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return []byte(testJWTSecret), nil }); err != nil {
					t.Errorf("not signed with the file's key: %v", err)
				}
			}},
		{name: "identity provider keys", args: []string{"--acl-enabled", "--acl-jwt-public-key-files", k.pemFile,
			"--acl-jwt-jwks-file", k.jwksFile, "--acl-jwt-roles-claim", "groups"},
			check: func(t *testing.T, o api.ACLOptions) {
				if !o.JWT.Enabled() || o.JWT.CanIssue() {
					t.Fatalf("JWT enabled %v, can issue %v", o.JWT.Enabled(), o.JWT.CanIssue())
				}
				claims := jwt.MapClaims{"iss": "nexus", "aud": "nexus", "sub": "alice", "exp": now.Add(time.Minute).Unix(),
					"groups": []string{"ops", "dev"}}
				for _, tc := range []struct {
					key *ecdsa.PrivateKey
					kid string
				}{{k.pemKey, ""}, {k.jwksKey, "k1"}} {
					id, err := o.JWT.Verify(idpJWT(t, tc.key, tc.kid, claims), now)
					if err != nil || id.Subject != "alice" || !reflect.DeepEqual(id.Roles, []string{"dev", "ops"}) {
						t.Errorf("kid %q: %+v, %v", tc.kid, id, err)
					}
				}
				claims["iss"] = "someone-else"
				if _, err := o.JWT.Verify(idpJWT(t, k.pemKey, "", claims), now); err == nil {
					t.Errorf("a JWT of another issuer was accepted")
				}
			}},
		{name: "secret file missing", args: []string{"--acl-enabled", "--acl-jwt-secret-file", missing},
			setting: "acl_jwt_secret_file", substr: missing},
		{name: "secret file short", args: []string{"--acl-enabled", "--acl-jwt-secret-file", shortFile},
			setting: "acl_jwt_secret_file", substr: "11 bytes; want at least 32"},
		{name: "public key missing", args: []string{"--acl-enabled", "--acl-jwt-public-key-files", k.pemFile, "--acl-jwt-public-key-files", missing},
			setting: "acl_jwt_public_key_files", substr: missing},
		{name: "public key file holds a private key", args: []string{"--acl-enabled", "--acl-jwt-public-key-files", privFile},
			setting: "acl_jwt_public_key_files", substr: "private key"},
		{name: "jwks missing", args: []string{"--acl-enabled", "--acl-jwt-public-key-files", k.pemFile, "--acl-jwt-jwks-file", missing},
			setting: "acl_jwt_jwks_file", substr: missing},
		{name: "jwks malformed", args: []string{"--acl-enabled", "--acl-jwt-jwks-file", badJWKS},
			setting: "acl_jwt_jwks_file", substr: badJWKS},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := aclOptions(aclConfig(t, tc.args...), os.ReadFile)
			if tc.setting != "" {
				var se *agentconfig.SettingError
				if !errors.As(err, &se) || se.Setting != tc.setting || !strings.Contains(err.Error(), tc.substr) {
					t.Fatalf("err %v, want one naming %s with %q", err, tc.setting, tc.substr)
				}
				if strings.Contains(err.Error(), "tiny-secret") {
					t.Errorf("error shows the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

func TestLogACL(t *testing.T) {
	k := newACLKeys(t)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"off", nil, []string{`"level":"INFO"`, `"acl":false`}},
		{"off with settings", []string{"--acl-jwt-secret", testJWTSecret}, []string{`"level":"WARN"`, "ignored", `"acl":false`}},
		{"on", []string{"--acl-enabled", "--acl-jwt-secret", testJWTSecret, "--acl-jwt-public-key-files", k.pemFile},
			[]string{`"acl":true`, `"jwt_secret":"set"`, k.pemFile, `"jwt_login":true`, `"jwt_issuer":"nexus"`}},
		{"on, secret file", []string{"--acl-enabled", "--acl-jwt-secret-file", k.write(t, "s", []byte(testJWTSecret))},
			[]string{`"acl":true`, `"jwt_secret":"file ` + k.dir}},
		{"on, tokens only", []string{"--acl-enabled"}, []string{`"acl":true`, `"jwt_secret":"none"`, `"jwt_login":false`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := aclConfig(t, tc.args...)
			o, err := aclOptions(cfg, os.ReadFile)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			logACL(slog.New(slog.NewJSONHandler(&buf, nil)), cfg, o)
			out := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("log %s lacks %s", out, w)
				}
			}
			if strings.Contains(out, testJWTSecret) {
				t.Errorf("log shows the secret: %s", out)
			}
		})
	}
}

// The options reach the admin API: with ACLs on, a request without a
// token is refused; acl_metrics_public opens /metrics.
func TestACLWiringEnforces(t *testing.T) {
	cases := []struct {
		name                 string
		args                 []string
		services, metricsMsg int
	}{
		{"off", nil, 200, 200},
		{"on", []string{"--acl-enabled"}, 401, 401},
		{"on, public metrics", []string{"--acl-enabled", "--acl-metrics-public"}, 401, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := aclOptions(aclConfig(t, tc.args...), os.ReadFile)
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			srv, err := api.New(api.Deps{Writer: stubWriter{}, Reader: stubReader{registry.NewStore()}, Cluster: stubCluster{},
				Registry: reg, Gatherer: reg, ACL: o})
			if err != nil {
				t.Fatal(err)
			}
			h := srv.Handler()
			for path, want := range map[string]int{"/services": tc.services, "/metrics": tc.metricsMsg, "/health": 200} {
				var ctx fasthttp.RequestCtx
				ctx.Request.Header.SetMethod("GET")
				ctx.Request.SetRequestURI(path)
				h(&ctx)
				if got := ctx.Response.StatusCode(); got != want {
					t.Errorf("GET %s = %d, want %d: %s", path, got, want, ctx.Response.Body())
				}
			}
		})
	}
}

type stubWriter struct{ api.Writer }

type stubReader struct{ s *registry.Store }

func (r stubReader) Store() *registry.Store { return r.s }

// stubCluster answers what reads ask; anything else panics (embedded nil).
type stubCluster struct{ api.Cluster }

func (stubCluster) NodeName() string               { return "n1" }
func (stubCluster) Raft() api.RaftStatus           { return api.RaftStatus{State: "Leader"} }
func (stubCluster) Members() []api.Member          { return []api.Member{{Name: "n1", Status: "alive"}} }
func (stubCluster) Leader() (api.LeaderInfo, bool) { return api.LeaderInfo{Node: "n1"}, true }
func (stubCluster) Ready() bool                    { return true }
func (stubCluster) Contact() (bool, time.Duration) { return true, 0 }
