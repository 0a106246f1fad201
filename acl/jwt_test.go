package acl

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwtTestNow is the verification time of the JWT tests.
var jwtTestNow = time.Unix(1_700_000_000, 0)

const jwtTestSecret = "0123456789abcdef0123456789abcdef"

// jwtTestKeySet holds the keys shared by the JWT tests (RSA generation is slow).
type jwtTestKeySet struct {
	rsa1, rsa2, rsaOther *rsa.PrivateKey
	ec1, ec2, ecOther    *ecdsa.PrivateKey
}

var jwtTestKeys = sync.OnceValue(func() *jwtTestKeySet {
	genRSA := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	genEC := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	return &jwtTestKeySet{
		rsa1: genRSA(), rsa2: genRSA(), rsaOther: genRSA(),
		ec1: genEC(), ec2: genEC(), ecOther: genEC(),
	}
})

// jwtTestWrite writes data to name in dir and returns its path.
func jwtTestWrite(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// jwtTestPublicPEM encodes pub as a PKIX "PUBLIC KEY" PEM block.
func jwtTestPublicPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// jwtTestCertPEM encodes a self-signed certificate for priv.
func jwtTestCertPEM(t testing.TB, priv *rsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "idp"},
		NotBefore:    jwtTestNow.Add(-time.Hour),
		NotAfter:     jwtTestNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// jwtTestJWK returns the JWK (as a map) of a public key.
func jwtTestJWK(t testing.TB, kid string, pub any) map[string]string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	m := map[string]string{}
	if kid != "" {
		m["kid"] = kid
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		m["kty"], m["alg"], m["use"] = "RSA", "RS256", "sig"
		m["n"] = b64(p.N.Bytes())
		m["e"] = b64(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		pt, err := p.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		m["kty"], m["crv"] = "EC", "P-256"
		m["x"], m["y"] = b64(pt[1:33]), b64(pt[33:])
	default:
		t.Fatalf("jwk of %T", pub)
	}
	return m
}

func jwtTestJWKS(t testing.TB, keys ...map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwtTestSign signs claims with method and key, setting the header kid when
// non-empty.
func jwtTestSign(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwtTestClaims returns valid claims, changed by the given key/values (a
// nil value deletes the claim).
func jwtTestClaims(kv ...any) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": "nexus",
		"aud": "nexus",
		"sub": "alice",
		"iat": jwtTestNow.Add(-time.Minute).Unix(),
		"exp": jwtTestNow.Add(time.Hour).Unix(),
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(c, k)
		} else {
			c[k] = kv[i+1]
		}
	}
	return c
}

// jwtTestFiles writes the test keys: PEM files for rsa1 (PKIX), ec1 (PKIX)
// and rsa2 (certificate), and a JWKS with rsa2 (kid "r2") and ec2 (kid "e2").
type jwtTestFileSet struct {
	rsaPEM, ecPEM, certPEM, jwks string
}

func jwtTestFiles(t testing.TB) jwtTestFileSet {
	t.Helper()
	k := jwtTestKeys()
	dir := t.TempDir()
	return jwtTestFileSet{
		rsaPEM:  jwtTestWrite(t, dir, "rsa.pem", jwtTestPublicPEM(t, &k.rsa1.PublicKey)),
		ecPEM:   jwtTestWrite(t, dir, "ec.pem", jwtTestPublicPEM(t, &k.ec1.PublicKey)),
		certPEM: jwtTestWrite(t, dir, "cert.pem", jwtTestCertPEM(t, k.rsa2)),
		jwks: jwtTestWrite(t, dir, "jwks.json", jwtTestJWKS(t,
			jwtTestJWK(t, "r2", &k.rsa2.PublicKey),
			jwtTestJWK(t, "e2", &k.ec2.PublicKey))),
	}
}

func jwtTestAuth(t testing.TB, cfg JWTConfig) *JWTAuth {
	t.Helper()
	a, err := NewJWTAuth(cfg)
	if err != nil {
		t.Fatalf("NewJWTAuth: %v", err)
	}
	return a
}

func TestJWTVerifyValid(t *testing.T) {
	k := jwtTestKeys()
	f := jwtTestFiles(t)
	dir := t.TempDir()
	all := jwtTestAuth(t, JWTConfig{
		Secret:         []byte(jwtTestSecret),
		PublicKeyFiles: []string{f.rsaPEM, f.ecPEM},
		JWKSFile:       f.jwks,
	})
	pemOnly := jwtTestAuth(t, JWTConfig{PublicKeyFiles: []string{f.rsaPEM, f.ecPEM, f.certPEM}})
	jwksOnly := jwtTestAuth(t, JWTConfig{JWKSFile: f.jwks})
	// A key without kid matches any JWT kid.
	jwksNoKid := jwtTestAuth(t, JWTConfig{JWKSFile: jwtTestWrite(t, dir, "nokid.json",
		jwtTestJWKS(t, jwtTestJWK(t, "", &k.rsa1.PublicKey), jwtTestJWK(t, "", &k.ec1.PublicKey)))})
	custom := jwtTestAuth(t, JWTConfig{Secret: []byte(jwtTestSecret), Issuer: "https://idp.example", Audience: "admin", Leeway: 5 * time.Second})

	hs := jwt.SigningMethodHS256
	rs := jwt.SigningMethodRS256
	es := jwt.SigningMethodES256
	for _, tc := range []struct {
		name  string
		auth  *JWTAuth
		token string
		sub   string
	}{
		{"HS256", all, jwtTestSign(t, hs, []byte(jwtTestSecret), "", jwtTestClaims()), "alice"},
		{"HS256 with kid", all, jwtTestSign(t, hs, []byte(jwtTestSecret), "whatever", jwtTestClaims()), "alice"},
		{"RS256 PEM", all, jwtTestSign(t, rs, k.rsa1, "", jwtTestClaims()), "alice"},
		{"RS256 PEM any kid", all, jwtTestSign(t, rs, k.rsa1, "some-kid", jwtTestClaims()), "alice"},
		{"ES256 PEM", all, jwtTestSign(t, es, k.ec1, "", jwtTestClaims()), "alice"},
		{"RS256 JWKS kid", all, jwtTestSign(t, rs, k.rsa2, "r2", jwtTestClaims()), "alice"},
		{"ES256 JWKS kid", all, jwtTestSign(t, es, k.ec2, "e2", jwtTestClaims()), "alice"},
		{"RS256 JWKS only kid", jwksOnly, jwtTestSign(t, rs, k.rsa2, "r2", jwtTestClaims()), "alice"},
		{"ES256 JWKS only kid", jwksOnly, jwtTestSign(t, es, k.ec2, "e2", jwtTestClaims()), "alice"},
		{"RS256 JWKS no JWT kid", jwksOnly, jwtTestSign(t, rs, k.rsa2, "", jwtTestClaims()), "alice"},
		{"RS256 JWKS key without kid", jwksNoKid, jwtTestSign(t, rs, k.rsa1, "x", jwtTestClaims()), "alice"},
		{"ES256 JWKS key without kid", jwksNoKid, jwtTestSign(t, es, k.ec1, "y", jwtTestClaims()), "alice"},
		{"RS256 certificate", pemOnly, jwtTestSign(t, rs, k.rsa2, "", jwtTestClaims()), "alice"},
		{"ES256 PEM only", pemOnly, jwtTestSign(t, es, k.ec1, "", jwtTestClaims()), "alice"},
		{"aud array", all, jwtTestSign(t, hs, []byte(jwtTestSecret), "", jwtTestClaims("aud", []string{"other", "nexus"})), "alice"},
		{"nbf past", all, jwtTestSign(t, hs, []byte(jwtTestSecret), "", jwtTestClaims("nbf", jwtTestNow.Unix())), "alice"},
		{"iat future ignored", all, jwtTestSign(t, hs, []byte(jwtTestSecret), "", jwtTestClaims("iat", jwtTestNow.Add(time.Hour).Unix())), "alice"},
		{"iat garbage ignored", all, jwtTestSign(t, hs, []byte(jwtTestSecret), "", jwtTestClaims("iat", "yesterday")), "alice"},
		{"custom iss aud", custom, jwtTestSign(t, hs, []byte(jwtTestSecret), "", jwtTestClaims("iss", "https://idp.example", "aud", "admin", "sub", "bob")), "bob"},
		{"expired within leeway", custom, jwtTestSign(t, hs, []byte(jwtTestSecret), "", jwtTestClaims("iss", "https://idp.example", "aud", "admin", "exp", jwtTestNow.Add(-4*time.Second).Unix())), "alice"},
		{"nbf within leeway", custom, jwtTestSign(t, hs, []byte(jwtTestSecret), "", jwtTestClaims("iss", "https://idp.example", "aud", "admin", "nbf", jwtTestNow.Add(4*time.Second).Unix())), "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.auth.Verify(tc.token, jwtTestNow)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.Subject != tc.sub || id.Accessor != "" || id.Roles == nil || len(id.Roles) != 0 {
				t.Fatalf("identity %+v", id)
			}
			c := jwt.MapClaims{}
			if _, _, err := jwt.NewParser().ParseUnverified(tc.token, c); err != nil {
				t.Fatal(err)
			}
			if want := time.Unix(int64(c["exp"].(float64)), 0); !id.ExpiresAt.Equal(want) {
				t.Fatalf("ExpiresAt %v, want %v", id.ExpiresAt, want)
			}
		})
	}
}

func TestJWTVerifyErrors(t *testing.T) {
	k := jwtTestKeys()
	f := jwtTestFiles(t)
	rsaPEMBytes, err := os.ReadFile(f.rsaPEM)
	if err != nil {
		t.Fatal(err)
	}
	all := jwtTestAuth(t, JWTConfig{
		Secret:         []byte(jwtTestSecret),
		PublicKeyFiles: []string{f.rsaPEM, f.ecPEM},
		JWKSFile:       f.jwks,
	})
	pemOnly := jwtTestAuth(t, JWTConfig{PublicKeyFiles: []string{f.rsaPEM}})
	jwksOnly := jwtTestAuth(t, JWTConfig{JWKSFile: f.jwks})
	hsOnly := jwtTestAuth(t, JWTConfig{Secret: []byte(jwtTestSecret)})
	disabled := jwtTestAuth(t, JWTConfig{})

	hs := jwt.SigningMethodHS256
	rs := jwt.SigningMethodRS256
	es := jwt.SigningMethodES256
	secret := []byte(jwtTestSecret)
	good := jwtTestSign(t, hs, secret, "", jwtTestClaims())
	goodParts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	none := jwtTestSign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", jwtTestClaims())
	// A well-signed JWT with an arbitrary header.
	withHeader := func(header string) string {
		s := b64([]byte(header)) + "." + goodParts[1]
		sig, err := hs.Sign(s, secret)
		if err != nil {
			t.Fatal(err)
		}
		return s + "." + b64(sig)
	}

	for _, tc := range []struct {
		name  string
		auth  *JWTAuth
		token string
		want  string // substring of the error message
	}{
		{"expired", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("exp", jwtTestNow.Add(-time.Second).Unix())), "jwt: expired"},
		{"expires now", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("exp", jwtTestNow.Unix())), "jwt: expired"},
		{"expired RS256", all, jwtTestSign(t, rs, k.rsa1, "", jwtTestClaims("exp", jwtTestNow.Add(-time.Hour).Unix())), "jwt: expired"},
		{"not valid yet", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("nbf", jwtTestNow.Add(time.Second).Unix())), "jwt: not valid yet"},
		{"wrong issuer", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("iss", "evil")), "jwt: wrong issuer"},
		{"missing issuer", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("iss", nil)), "jwt: wrong issuer"},
		{"issuer not a string", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("iss", 7)), "jwt: wrong issuer"},
		{"wrong audience", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("aud", "other")), "jwt: wrong audience"},
		{"wrong audience array", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("aud", []string{"a", "b"})), "jwt: wrong audience"},
		{"missing audience", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("aud", nil)), "jwt: wrong audience"},
		{"expired and wrong issuer", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("iss", "x", "exp", jwtTestNow.Add(-time.Hour).Unix())), "jwt: expired, wrong issuer"},
		{"missing exp", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("exp", nil)), "jwt: missing exp"},
		{"zero exp", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("exp", 0)), "jwt: missing exp"},
		{"exp not a number", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("exp", "tomorrow")), "jwt: bad exp"},
		{"nbf not a number", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("nbf", "now")), "jwt: bad nbf"},
		{"missing sub", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("sub", nil)), "jwt: missing sub"},
		{"empty sub", all, jwtTestSign(t, rs, k.rsa1, "", jwtTestClaims("sub", "")), "jwt: missing sub"},
		{"sub not a string", all, jwtTestSign(t, hs, secret, "", jwtTestClaims("sub", 42)), "jwt: bad sub"},
		{"other secret", all, jwtTestSign(t, hs, []byte("another secret of enough length!"), "", jwtTestClaims()), "jwt: bad signature"},
		{"other RSA key", all, jwtTestSign(t, rs, k.rsaOther, "", jwtTestClaims()), "jwt: bad signature"},
		{"other RSA key JWKS kid", jwksOnly, jwtTestSign(t, rs, k.rsaOther, "r2", jwtTestClaims()), "jwt: bad signature"},
		{"other EC key", all, jwtTestSign(t, es, k.ecOther, "", jwtTestClaims()), "jwt: bad signature"},
		{"unknown kid", jwksOnly, jwtTestSign(t, rs, k.rsa2, "nope", jwtTestClaims()), "jwt: no RS256 key with kid \"nope\""},
		{"EC kid for RSA JWT", jwksOnly, jwtTestSign(t, rs, k.rsa2, "e2", jwtTestClaims()), "jwt: no RS256 key"},
		{"ES256 without EC key", pemOnly, jwtTestSign(t, es, k.ec1, "", jwtTestClaims()), "jwt: unsupported algorithm \"ES256\""},
		{"RS256 without RSA key", hsOnly, jwtTestSign(t, rs, k.rsa1, "", jwtTestClaims()), "jwt: unsupported algorithm \"RS256\""},
		{"tampered payload", all, goodParts[0] + "." + b64([]byte(`{"iss":"nexus","aud":"nexus","sub":"root","exp":9999999999}`)) + "." + goodParts[2], "jwt: bad signature"},
		{"alg none", all, none, "jwt: unsupported algorithm \"none\""},
		{"alg none with signature", all, strings.TrimSuffix(none, ".") + "." + goodParts[2], "jwt: unsupported algorithm \"none\""},
		{"alg none pem only", pemOnly, none, "jwt: unsupported algorithm \"none\""},
		{"alg missing", all, withHeader(`{"typ":"JWT"}`), "jwt: unsupported algorithm"},
		{"alg unknown", all, withHeader(`{"alg":"XX999"}`), "jwt: unsupported algorithm"},
		{"HS512", all, jwtTestSign(t, jwt.SigningMethodHS512, secret, "", jwtTestClaims()), "jwt: unsupported algorithm \"HS512\""},
		{"RS512", all, jwtTestSign(t, jwt.SigningMethodRS512, k.rsa1, "", jwtTestClaims()), "jwt: unsupported algorithm \"RS512\""},
		{"PS256", all, jwtTestSign(t, jwt.SigningMethodPS256, k.rsa1, "", jwtTestClaims()), "jwt: unsupported algorithm \"PS256\""},
		// Algorithm confusion: HS256 "signed" with the public key's PEM.
		{"HS256 with RSA PEM, no secret", pemOnly, jwtTestSign(t, hs, rsaPEMBytes, "", jwtTestClaims()), "jwt: unsupported algorithm \"HS256\""},
		{"HS256 with RSA PEM, secret", all, jwtTestSign(t, hs, rsaPEMBytes, "", jwtTestClaims()), "jwt: bad signature"},
		{"HS256 with RSA PEM, JWKS kid", jwksOnly, jwtTestSign(t, hs, rsaPEMBytes, "r2", jwtTestClaims()), "jwt: unsupported algorithm \"HS256\""},
		{"crit header", all, withHeader(`{"alg":"HS256","crit":["exp"]}`), "jwt: unsupported crit header"},
		{"kid not a string", jwksOnly, func() string {
			tok := jwt.NewWithClaims(rs, jwtTestClaims())
			tok.Header["kid"] = 5
			s, err := tok.SignedString(k.rsa2)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(), "jwt: malformed"},
		{"empty", all, "", "jwt: malformed"},
		{"opaque secret", all, "6f1c0a52-8a3e-4c55-9f8e-2d6b1a7c9e01", "jwt: malformed"},
		{"two segments", all, goodParts[0] + "." + goodParts[1], "jwt: malformed"},
		{"four segments", all, good + ".x", "jwt: malformed"},
		{"dots", all, "..", "jwt: malformed"},
		{"a.b.c", all, "a.b.c", "jwt: malformed"},
		{"header not JSON", all, b64([]byte("nope")) + "." + goodParts[1] + "." + goodParts[2], "jwt: malformed"},
		{"payload not JSON", all, goodParts[0] + "." + b64([]byte("[1,2")) + "." + goodParts[2], "jwt: malformed"},
		{"payload array", all, goodParts[0] + "." + b64([]byte("[1,2]")) + "." + goodParts[2], "jwt: malformed"},
		{"bad base64 signature", all, goodParts[0] + "." + goodParts[1] + ".*&^", "jwt: malformed"},
		{"padded segments", all, strings.ReplaceAll(good, ".", "==."), "jwt: malformed"},
		{"too long", all, good + strings.Repeat("A", MaxJWTLength), "jwt: malformed"},
		{"disabled", disabled, good, "jwt: no verification keys configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.auth.Verify(tc.token, jwtTestNow)
			if err == nil {
				t.Fatalf("Verify accepted: %+v", id)
			}
			if !errors.Is(err, ErrJWTInvalid) {
				t.Errorf("error %v does not wrap ErrJWTInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
			t.Logf("%s", err)
			if !reflect.DeepEqual(id, JWTIdentity{}) {
				t.Errorf("identity %+v with error", id)
			}
		})
	}

	// The cause stays inspectable.
	_, err = all.Verify(jwtTestSign(t, hs, secret, "", jwtTestClaims("exp", jwtTestNow.Add(-time.Second).Unix())), jwtTestNow)
	if !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("expired error %v does not wrap jwt.ErrTokenExpired", err)
	}
}

func TestJWTRoles(t *testing.T) {
	k := jwtTestKeys()
	f := jwtTestFiles(t)
	secret := []byte(jwtTestSecret)
	plain := jwtTestAuth(t, JWTConfig{Secret: secret, PublicKeyFiles: []string{f.rsaPEM}})
	mapped := jwtTestAuth(t, JWTConfig{Secret: secret, PublicKeyFiles: []string{f.rsaPEM}, RoleMap: map[string]string{
		"nexus-admins": "admin", "ops": "operator", "devs": "operator", "empty": "",
	}})
	groups := jwtTestAuth(t, JWTConfig{Secret: secret, RolesClaim: "https://nexus.example/groups"})
	hs := jwt.SigningMethodHS256
	rs := jwt.SigningMethodRS256
	for _, tc := range []struct {
		name  string
		auth  *JWTAuth
		token string
		want  []string
		err   string
	}{
		{"absent", plain, jwtTestSign(t, hs, secret, "", jwtTestClaims()), []string{}, ""},
		{"empty array", plain, jwtTestSign(t, hs, secret, "", jwtTestClaims("roles", []any{})), []string{}, ""},
		{"string", plain, jwtTestSign(t, hs, secret, "", jwtTestClaims("roles", "admin")), []string{"admin"}, ""},
		{"empty string", plain, jwtTestSign(t, hs, secret, "", jwtTestClaims("roles", "")), []string{}, ""},
		{"array sorted dedup", plain, jwtTestSign(t, rs, k.rsa1, "", jwtTestClaims("roles", []string{"b", "a", "b", "", "c"})), []string{"a", "b", "c"}, ""},
		{"array with number", plain, jwtTestSign(t, hs, secret, "", jwtTestClaims("roles", []any{"a", 1})), nil, "jwt: bad roles claim"},
		{"number", plain, jwtTestSign(t, hs, secret, "", jwtTestClaims("roles", 1)), nil, "jwt: bad roles claim"},
		{"object", plain, jwtTestSign(t, hs, secret, "", jwtTestClaims("roles", map[string]any{"a": true})), nil, "jwt: bad roles claim"},
		{"mapped array", mapped, jwtTestSign(t, rs, k.rsa1, "", jwtTestClaims("roles", []string{"ops", "nexus-admins", "devs", "unknown", "empty"})), []string{"admin", "operator"}, ""},
		{"mapped string", mapped, jwtTestSign(t, rs, k.rsa1, "", jwtTestClaims("roles", "nexus-admins")), []string{"admin"}, ""},
		{"mapped string dropped", mapped, jwtTestSign(t, rs, k.rsa1, "", jwtTestClaims("roles", "admin")), []string{}, ""},
		{"mapped external HS256", mapped, jwtTestSign(t, hs, secret, "", jwtTestClaims("roles", []string{"ops", "admin"})), []string{"operator"}, ""},
		{"custom claim", groups, jwtTestSign(t, hs, secret, "", jwtTestClaims("https://nexus.example/groups", []string{"g2", "g1"}, "roles", "ignored")), []string{"g1", "g2"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.auth.Verify(tc.token, jwtTestNow)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrJWTInvalid) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !reflect.DeepEqual(id.Roles, tc.want) {
				t.Fatalf("roles %#v, want %#v", id.Roles, tc.want)
			}
		})
	}
}

func TestJWTIssueVerify(t *testing.T) {
	k := jwtTestKeys()
	f := jwtTestFiles(t)
	secret := []byte(jwtTestSecret)
	a := jwtTestAuth(t, JWTConfig{
		Secret:         secret,
		PublicKeyFiles: []string{f.rsaPEM},
		RoleMap:        map[string]string{"idp-admins": "admin"}, // not applied to issued JWTs
		Expiry:         10 * time.Minute,
	})
	if !a.Enabled() || !a.CanIssue() {
		t.Fatal("not enabled / cannot issue")
	}
	now := jwtTestNow.Add(123 * time.Millisecond) // sub-second precision is truncated
	raw, exp, err := a.Issue("acc-1234", []string{"operator", "admin", "operator", ""}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !LooksLikeJWT(raw) {
		t.Fatalf("issued %q does not look like a JWT", raw)
	}
	if want := jwtTestNow.Add(10 * time.Minute); !exp.Equal(want) {
		t.Fatalf("expiresAt %v, want %v", exp, want)
	}
	id, err := a.Verify(raw, now)
	if err != nil {
		t.Fatalf("Verify issued: %v", err)
	}
	want := JWTIdentity{Subject: "acc-1234", Accessor: "acc-1234", Roles: []string{"admin", "operator"}, ExpiresAt: exp}
	if id.Subject != want.Subject || id.Accessor != want.Accessor || !reflect.DeepEqual(id.Roles, want.Roles) || !id.ExpiresAt.Equal(exp) {
		t.Fatalf("identity %+v, want %+v", id, want)
	}

	// The claims are the documented ones.
	c := jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(raw, c)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header["alg"] != "HS256" {
		t.Errorf("alg %v", tok.Header["alg"])
	}
	for key, v := range map[string]any{
		"iss": "nexus", "aud": "nexus", "sub": "acc-1234", "nexus_accessor": "acc-1234",
		"iat": float64(jwtTestNow.Unix()), "nbf": float64(jwtTestNow.Unix()), "exp": float64(exp.Unix()),
		"roles": []any{"admin", "operator"},
	} {
		if !reflect.DeepEqual(c[key], v) {
			t.Errorf("claim %s = %#v, want %#v", key, c[key], v)
		}
	}

	// Valid until exp, then expired.
	if _, err := a.Verify(raw, exp.Add(-time.Second)); err != nil {
		t.Errorf("Verify just before exp: %v", err)
	}
	if _, err := a.Verify(raw, exp); err == nil || !strings.Contains(err.Error(), "jwt: expired") {
		t.Errorf("Verify at exp: %v", err)
	}
	if _, err := a.Verify(raw, jwtTestNow.Add(-time.Second)); err == nil || !strings.Contains(err.Error(), "jwt: not valid yet") {
		t.Errorf("Verify before iat: %v", err)
	}

	// Another deployment (other secret) rejects it.
	other := jwtTestAuth(t, JWTConfig{Secret: []byte("another secret of enough length!")})
	if _, err := other.Verify(raw, now); err == nil || !strings.Contains(err.Error(), "jwt: bad signature") {
		t.Errorf("other secret: %v", err)
	}

	// An external identity provider cannot claim a token accessor.
	ext := jwtTestSign(t, jwt.SigningMethodRS256, k.rsa1, "", jwtTestClaims("nexus_accessor", "acc-1234", "roles", "idp-admins"))
	id, err = a.Verify(ext, jwtTestNow)
	if err != nil {
		t.Fatal(err)
	}
	if id.Accessor != "" || !reflect.DeepEqual(id.Roles, []string{"admin"}) {
		t.Errorf("external identity %+v", id)
	}
	// A non-string accessor in an HS256 JWT is rejected.
	bad := jwtTestSign(t, jwt.SigningMethodHS256, secret, "", jwtTestClaims("nexus_accessor", 5))
	if _, err := a.Verify(bad, jwtTestNow); err == nil || !strings.Contains(err.Error(), "nexus_accessor") {
		t.Errorf("non-string accessor: %v", err)
	}

	// Defaults and custom names.
	c2 := jwtTestAuth(t, JWTConfig{Secret: secret, Issuer: "iss2", Audience: "aud2", RolesClaim: "groups"})
	raw, exp, err = c2.Issue("acc-2", nil, jwtTestNow)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(jwtTestNow.Add(DefaultJWTExpiry)) {
		t.Errorf("default expiry: %v", exp)
	}
	id, err = c2.Verify(raw, jwtTestNow)
	if err != nil || id.Accessor != "acc-2" || id.Roles == nil || len(id.Roles) != 0 {
		t.Fatalf("custom: %+v, %v", id, err)
	}
	c = jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, c); err != nil {
		t.Fatal(err)
	}
	if c["iss"] != "iss2" || c["aud"] != "aud2" || !reflect.DeepEqual(c["groups"], []any{}) {
		t.Errorf("custom claims %v", c)
	}

	// Issue errors.
	if _, _, err := a.Issue("", nil, now); err == nil {
		t.Error("Issue without accessor succeeded")
	}
	pub := jwtTestAuth(t, JWTConfig{PublicKeyFiles: []string{f.rsaPEM}})
	if pub.CanIssue() || !pub.Enabled() {
		t.Error("public-key-only: CanIssue or !Enabled")
	}
	if _, _, err := pub.Issue("acc", nil, now); err == nil {
		t.Error("Issue without secret succeeded")
	}
}

func TestNewJWTAuthErrors(t *testing.T) {
	k := jwtTestKeys()
	dir := t.TempDir()
	w := func(name, data string) string { return jwtTestWrite(t, dir, name, []byte(data)) }

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER := x509.MarshalPKCS1PrivateKey(k.rsa1)
	good := string(jwtTestPublicPEM(t, &k.rsa1.PublicKey))
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := func(keys ...map[string]string) string { return string(jwtTestJWKS(t, keys...)) }
	rsaJWK := jwtTestJWK(t, "r", &k.rsa1.PublicKey)
	ecJWK := jwtTestJWK(t, "e", &k.ec1.PublicKey)
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}

	for _, tc := range []struct {
		name string
		cfg  JWTConfig
		want []string // substrings of the error
	}{
		{"missing PEM file", JWTConfig{PublicKeyFiles: []string{filepath.Join(dir, "nope.pem")}}, []string{"nope.pem", "no such file"}},
		{"garbage PEM", JWTConfig{PublicKeyFiles: []string{w("garbage.pem", "not a key")}}, []string{"garbage.pem", "no PEM public key"}},
		{"empty PEM", JWTConfig{PublicKeyFiles: []string{w("empty.pem", "")}}, []string{"empty.pem", "no PEM public key"}},
		{"bad base64 PEM", JWTConfig{PublicKeyFiles: []string{w("b64.pem", "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n")}}, []string{"b64.pem", "malformed PEM"}},
		{"bad DER PEM", JWTConfig{PublicKeyFiles: []string{w("der.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")}}, []string{"der.pem", "PEM block 1"}},
		{"truncated second block", JWTConfig{PublicKeyFiles: []string{w("trunc.pem", good+"-----BEGIN PUBLIC KEY-----\nAAAA\n")}}, []string{"trunc.pem", "malformed PEM"}},
		{"private key PEM", JWTConfig{PublicKeyFiles: []string{w("priv.pem", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: rsaDER})))}}, []string{"priv.pem", "private key"}},
		{"unknown PEM type", JWTConfig{PublicKeyFiles: []string{w("csr.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1}})))}}, []string{"csr.pem", "unsupported PEM type"}},
		{"small RSA", JWTConfig{PublicKeyFiles: []string{w("small.pem", string(jwtTestPublicPEM(t, &small.PublicKey)))}}, []string{"small.pem", "1024 bits"}},
		{"P-384", JWTConfig{PublicKeyFiles: []string{w("p384.pem", string(jwtTestPublicPEM(t, &p384.PublicKey)))}}, []string{"p384.pem", "P-384"}},
		{"ed25519", JWTConfig{PublicKeyFiles: []string{w("ed.pem", string(jwtTestPublicPEM(t, edPub)))}}, []string{"ed.pem", "unsupported key type"}},
		{"second file bad", JWTConfig{PublicKeyFiles: []string{w("good.pem", good), w("bad2.pem", "x")}}, []string{"bad2.pem"}},
		{"missing JWKS", JWTConfig{JWKSFile: filepath.Join(dir, "nope.json")}, []string{"nope.json", "no such file"}},
		{"JWKS not JSON", JWTConfig{JWKSFile: w("bad.json", "{")}, []string{"bad.json", "invalid JSON"}},
		{"JWKS no keys member", JWTConfig{JWKSFile: w("nokeys.json", `{"kty":"RSA"}`)}, []string{"nokeys.json", "not a JSON Web Key Set"}},
		{"JWKS empty", JWTConfig{JWKSFile: w("empty.json", `{"keys":[]}`)}, []string{"empty.json", "no signature keys"}},
		{"JWKS only enc keys", JWTConfig{JWKSFile: w("enc.json", jwks(with(rsaJWK, "use", "enc")))}, []string{"enc.json", "no signature keys"}},
		{"JWKS oct", JWTConfig{JWKSFile: w("oct.json", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)}, []string{"oct.json", "key 0", "unsupported kty \"oct\""}},
		{"JWKS no kty", JWTConfig{JWKSFile: w("nokty.json", `{"keys":[{"n":"AQAB"}]}`)}, []string{"nokty.json", "kty"}},
		{"JWKS RSA no n", JWTConfig{JWKSFile: w("non.json", jwks(rsaJWK, with(rsaJWK, "kid", "r9", "n", "")))}, []string{"non.json", "key 1 (kid \"r9\")", "missing \"n\""}},
		{"JWKS RSA bad e", JWTConfig{JWKSFile: w("bade.json", jwks(with(rsaJWK, "e", b64([]byte{2}))))}, []string{"bade.json", "exponent"}},
		{"JWKS RSA bad base64", JWTConfig{JWKSFile: w("b64.json", jwks(with(rsaJWK, "n", "***")))}, []string{"b64.json", "base64url"}},
		{"JWKS RSA small", JWTConfig{JWKSFile: w("smallj.json", jwks(jwtTestJWK(t, "s", &small.PublicKey)))}, []string{"smallj.json", "1024 bits"}},
		{"JWKS RSA RS512", JWTConfig{JWKSFile: w("rs512.json", jwks(with(rsaJWK, "alg", "RS512")))}, []string{"rs512.json", "RS512"}},
		{"JWKS private", JWTConfig{JWKSFile: w("priv.json", jwks(with(ecJWK, "d", "AAAA")))}, []string{"priv.json", "private key"}},
		{"JWKS EC P-384", JWTConfig{JWKSFile: w("p384.json", jwks(with(ecJWK, "crv", "P-384")))}, []string{"p384.json", "P-384"}},
		{"JWKS EC off curve", JWTConfig{JWKSFile: w("off.json", jwks(with(ecJWK, "y", ecJWK["x"])))}, []string{"off.json", "invalid EC point"}},
		{"JWKS EC long x", JWTConfig{JWKSFile: w("long.json", jwks(with(ecJWK, "x", b64(make([]byte, 33)))))}, []string{"long.json", "32 bytes"}},
		{"negative leeway", JWTConfig{Leeway: -time.Second}, []string{"leeway"}},
		{"huge leeway", JWTConfig{Leeway: time.Hour}, []string{"leeway"}},
		{"negative expiry", JWTConfig{Expiry: -time.Second}, []string{"expiry"}},
		{"reserved roles claim", JWTConfig{RolesClaim: "sub"}, []string{"roles claim", "sub"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewJWTAuth(tc.cfg)
			if err == nil {
				t.Fatalf("NewJWTAuth succeeded: %+v", a)
			}
			t.Logf("%s", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want %q", err, w)
				}
			}
		})
	}

	// Valid configurations.
	empty := jwtTestAuth(t, JWTConfig{})
	if empty.Enabled() || empty.CanIssue() {
		t.Error("empty config enabled")
	}
	var nilAuth *JWTAuth
	if nilAuth.Enabled() || nilAuth.CanIssue() {
		t.Error("nil JWTAuth enabled")
	}
	if _, err := nilAuth.Verify("a.b.c", jwtTestNow); !errors.Is(err, ErrJWTInvalid) {
		t.Errorf("nil Verify: %v", err)
	}
	mixed := w("mixed.pem", good+"some text between blocks\n"+string(jwtTestCertPEM(t, k.rsa2))+string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsaOther.PublicKey)})))
	a := jwtTestAuth(t, JWTConfig{PublicKeyFiles: []string{mixed}, JWKSFile: w("mixed.json", jwks(rsaJWK, with(ecJWK, "use", "enc"), with(ecJWK, "kid", "e2", "x", ecJWK["x"]+"==")))})
	if !a.Enabled() || a.CanIssue() || len(a.keys) != 5 {
		t.Errorf("mixed: enabled %v, can issue %v, %d keys", a.Enabled(), a.CanIssue(), len(a.keys))
	}
	for _, key := range []*rsa.PrivateKey{k.rsa1, k.rsa2, k.rsaOther} {
		if _, err := a.Verify(jwtTestSign(t, jwt.SigningMethodRS256, key, "", jwtTestClaims()), jwtTestNow); err != nil {
			t.Errorf("mixed PEM: %v", err)
		}
	}

	// The configuration is copied: later changes to the caller's slices
	// and maps do not affect the JWTAuth.
	secret := []byte(jwtTestSecret)
	roleMap := map[string]string{"x": "y"}
	c := jwtTestAuth(t, JWTConfig{Secret: secret, RoleMap: roleMap})
	raw := jwtTestSign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), "", jwtTestClaims("roles", "x"))
	secret[0]++
	roleMap["x"] = "z"
	if id, err := c.Verify(raw, jwtTestNow); err != nil || !reflect.DeepEqual(id.Roles, []string{"y"}) {
		t.Errorf("after caller mutation: %+v, %v", id, err)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", true},
		{"a.b.c", true},
		{"A-_.0-9.z_Z", true},
		{"6f1c0a52-8a3e-4c55-9f8e-2d6b1a7c9e01", false}, // token secret (UUID)
		{"", false},
		{"..", false},
		{"a..c", false},
		{".b.c", false},
		{"a.b.", false},
		{"a.b", false},
		{"a.b.c.d", false},
		{"a.b=.c", false},
		{"a.b/c.d", false},
		{"a.b+.c", false},
		{"a.b c.d", false},
		{"a.b.c\n", false},
		{"Bearer a.b.c", false},
		{"é.b.c", false},
	} {
		if got := LooksLikeJWT(tc.s); got != tc.want {
			t.Errorf("LooksLikeJWT(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
