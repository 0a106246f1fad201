package acl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerifyJWT feeds arbitrary strings to Verify (HS256 secret, RS256 and
// ES256 PEM keys, a JWKS): it must never panic; every error wraps
// ErrJWTInvalid and comes with a zero identity; and whatever it accepts
// passes an independent check written with the standard library only
// (signature by a configured key for the header's alg, iss, aud, exp, sub).
// Seeds are valid, expired, tampered, truncated, alg-confused and garbage
// tokens.
//
//	go test ./acl -run='^$' -fuzz=FuzzVerifyJWT -fuzztime=30s
func FuzzVerifyJWT(f *testing.F) {
	k := jwtTestKeys()
	files := jwtTestFiles(f)
	secret := []byte(jwtTestSecret)
	a := jwtTestAuth(f, JWTConfig{
		Secret:         secret,
		PublicKeyFiles: []string{files.rsaPEM, files.ecPEM},
		JWKSFile:       files.jwks,
		RoleMap:        map[string]string{"a": "admin", "b": "operator"},
	})
	now := jwtTestNow

	hs, rs, es := jwt.SigningMethodHS256, jwt.SigningMethodRS256, jwt.SigningMethodES256
	issued, _, err := a.Issue("acc-1", []string{"admin"}, now)
	if err != nil {
		f.Fatal(err)
	}
	valid := []string{
		issued,
		jwtTestSign(f, hs, secret, "", jwtTestClaims("roles", []string{"a", "b", "c"})),
		jwtTestSign(f, rs, k.rsa1, "", jwtTestClaims("roles", "a")),
		jwtTestSign(f, es, k.ec1, "", jwtTestClaims()),
		jwtTestSign(f, rs, k.rsa2, "r2", jwtTestClaims("aud", []string{"x", "nexus"})),
		jwtTestSign(f, es, k.ec2, "e2", jwtTestClaims("nbf", now.Unix())),
	}
	for _, s := range valid {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(s + "x")
		f.Add(s[:len(s)-1])
		f.Add(strings.Replace(s, ".", "..", 1))
		p := strings.Split(s, ".")
		f.Add(p[0] + "." + p[1] + ".")
		f.Add(p[1] + "." + p[0] + "." + p[2])
	}
	rsaPEM := jwtTestPublicPEM(f, &k.rsa1.PublicKey)
	for _, s := range []string{
		jwtTestSign(f, hs, secret, "", jwtTestClaims("exp", now.Add(-time.Hour).Unix())),
		jwtTestSign(f, hs, secret, "", jwtTestClaims("nbf", now.Add(time.Hour).Unix())),
		jwtTestSign(f, hs, secret, "", jwtTestClaims("iss", "x", "aud", []any{"y", 1}, "exp", "soon", "nbf", 1e300)),
		jwtTestSign(f, hs, secret, "", jwtTestClaims("exp", 1e300, "sub", 5, "roles", map[string]any{})),
		jwtTestSign(f, hs, secret, "", jwtTestClaims("exp", -1e300, "nexus_accessor", []any{})),
		jwtTestSign(f, hs, []byte("wrong secret"), "", jwtTestClaims()),
		jwtTestSign(f, hs, rsaPEM, "", jwtTestClaims()),
		jwtTestSign(f, rs, k.rsaOther, "r2", jwtTestClaims()),
		jwtTestSign(f, es, k.ecOther, "", jwtTestClaims()),
		jwtTestSign(f, jwt.SigningMethodPS256, k.rsa1, "", jwtTestClaims()),
		jwtTestSign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", jwtTestClaims()),
		"eyJhbGciOiJub25lIn0.e30.",
		"eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiZXhwIl19.e30.AA",
		"eyJhbGciOiJSUzI1NiIsImtpZCI6MX0.e30.AA",
		"6f1c0a52-8a3e-4c55-9f8e-2d6b1a7c9e01",
		"..", "a.b.c", "", ".", "e30.e30.e30", "bnVsbA.bnVsbA.bnVsbA",
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		id, err := a.Verify(raw, now)
		if err != nil {
			if !errors.Is(err, ErrJWTInvalid) {
				t.Fatalf("error %v does not wrap ErrJWTInvalid", err)
			}
			if !strings.HasPrefix(err.Error(), "jwt: ") {
				t.Fatalf("error %q lacks the jwt: prefix", err)
			}
			if id.Subject != "" || id.Accessor != "" || id.Roles != nil || !id.ExpiresAt.IsZero() {
				t.Fatalf("identity %+v with error %v", id, err)
			}
			return
		}
		if !LooksLikeJWT(raw) {
			t.Fatalf("accepted %q, which does not look like a JWT", raw)
		}
		alg, err := jwtFuzzOracle(a, raw, now)
		if err != nil {
			t.Fatalf("accepted %q: %v", raw, err)
		}
		if id.Subject == "" || !id.ExpiresAt.After(now) {
			t.Fatalf("accepted %q with identity %+v", raw, id)
		}
		if id.Accessor != "" && alg != jwtAlgHS256 {
			t.Fatalf("accepted %q (%s) with accessor %q", raw, alg, id.Accessor)
		}
		if id.Roles == nil || !slices.IsSorted(id.Roles) || len(slices.Compact(slices.Clone(id.Roles))) != len(id.Roles) || slices.Contains(id.Roles, "") {
			t.Fatalf("accepted %q with roles %#v", raw, id.Roles)
		}
		if again, err := a.Verify(raw, now); err != nil || !jwtFuzzSameIdentity(id, again) {
			t.Fatalf("second Verify of %q: %+v, %v", raw, again, err)
		}
	})
}

// FuzzVerifyJWTClaims signs arbitrary claim sets (JSON) with the secret,
// so that they get past the signature check, and verifies them: no panic,
// and an accepted claim set has the required iss, aud, sub and a future exp.
//
//	go test ./acl -run='^$' -fuzz=FuzzVerifyJWTClaims -fuzztime=30s
func FuzzVerifyJWTClaims(f *testing.F) {
	secret := []byte(jwtTestSecret)
	a := jwtTestAuth(f, JWTConfig{Secret: secret, Leeway: time.Second, RoleMap: map[string]string{"a": "admin"}})
	now := jwtTestNow
	for _, c := range []jwt.MapClaims{
		jwtTestClaims(),
		jwtTestClaims("roles", []any{"a", "b", 1}),
		jwtTestClaims("roles", "a", "nexus_accessor", "acc"),
		jwtTestClaims("exp", "soon"),
		jwtTestClaims("exp", 1e300, "nbf", -1e300),
		jwtTestClaims("exp", now.Unix()+1, "nbf", now.Unix()+1),
		jwtTestClaims("aud", []any{}, "sub", ""),
		jwtTestClaims("iss", nil, "sub", map[string]any{}),
	} {
		b, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"exp":9e18,"iss":"nexus","aud":"nexus","sub":"x"}`))
	f.Add([]byte(`{"exp":1700000000.5,"iss":"nexus","aud":["nexus",null],"sub":"x"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"exp":1e400}`))

	b64 := base64.RawURLEncoding.EncodeToString
	header := b64([]byte(`{"alg":"HS256","typ":"JWT"}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		s := header + "." + b64(payload)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(s))
		raw := s + "." + b64(m.Sum(nil))
		id, err := a.Verify(raw, now)
		if err != nil {
			if !errors.Is(err, ErrJWTInvalid) || id.Subject != "" || id.Roles != nil {
				t.Fatalf("error %v with identity %+v", err, id)
			}
			return
		}
		if _, err := jwtFuzzOracle(a, raw, now); err != nil {
			t.Fatalf("accepted %s: %v", payload, err)
		}
		if id.Subject == "" || id.Roles == nil || !id.ExpiresAt.After(now.Add(-time.Second)) {
			t.Fatalf("accepted %s with identity %+v", payload, id)
		}
	})
}

func jwtFuzzSameIdentity(x, y JWTIdentity) bool {
	return x.Subject == y.Subject && x.Accessor == y.Accessor && slices.Equal(x.Roles, y.Roles) && x.ExpiresAt.Equal(y.ExpiresAt)
}

// jwtFuzzOracle checks an accepted JWT independently of golang-jwt: the
// signature verifies with a key of a for the header's alg, and iss, aud,
// sub and exp are as required at now (allowing a's leeway). It returns the
// alg.
func jwtFuzzOracle(a *JWTAuth, raw string, now time.Time) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", errors.New("not three segments")
	}
	dec := base64.RawURLEncoding.Strict()
	hb, err := dec.DecodeString(parts[0])
	if err != nil {
		return "", err
	}
	pb, err := dec.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	sig, err := dec.DecodeString(parts[2])
	if err != nil {
		return "", err
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hb, &header); err != nil {
		return "", err
	}
	signed := []byte(parts[0] + "." + parts[1])
	digest := sha256.Sum256(signed)
	ok := false
	switch header.Alg {
	case jwtAlgHS256:
		m := hmac.New(sha256.New, a.secret)
		m.Write(signed)
		ok = len(a.secret) > 0 && hmac.Equal(m.Sum(nil), sig)
	case jwtAlgRS256:
		for _, k := range a.keys {
			if pub, isRSA := k.key.(*rsa.PublicKey); isRSA && rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil {
				ok = true
			}
		}
	case jwtAlgES256:
		for _, k := range a.keys {
			if pub, isEC := k.key.(*ecdsa.PublicKey); isEC && len(sig) == 64 &&
				ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
				ok = true
			}
		}
	default:
		return header.Alg, errors.New("unexpected alg " + header.Alg)
	}
	if !ok {
		return header.Alg, errors.New("signature does not verify")
	}
	var c map[string]any
	if err := json.Unmarshal(pb, &c); err != nil {
		return header.Alg, err
	}
	if c["iss"] != a.issuer {
		return header.Alg, errors.New("wrong iss")
	}
	audOK := c["aud"] == a.audience
	if list, isList := c["aud"].([]any); isList {
		audOK = slices.Contains(list, any(a.audience))
	}
	if !audOK {
		return header.Alg, errors.New("wrong aud")
	}
	if sub, _ := c["sub"].(string); sub == "" {
		return header.Alg, errors.New("no sub")
	}
	exp, isNum := c["exp"].(float64)
	if !isNum || math.Floor(exp)+a.leeway.Seconds() <= float64(now.Unix()) {
		return header.Alg, errors.New("bad exp")
	}
	if nbf, present := c["nbf"]; present {
		n, isNum := nbf.(float64)
		if !isNum {
			return header.Alg, errors.New("bad nbf")
		}
		if math.Floor(n)-a.leeway.Seconds() > float64(now.Unix()) && n < 1e18 { // huge values overflow in golang-jwt
			return header.Alg, errors.New("nbf in the future")
		}
	}
	return header.Alg, nil
}
