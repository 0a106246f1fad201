package jwtauth

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary tokens to a Verifier (HS256 with kid, issuer
// and audience): no panic, and an accepted token carries the configured
// issuer and audience. Seeds are valid, tampered and truncated tokens.
//
//	go test ./gateway/plugin/jwtauth -run=^$ -fuzz=FuzzVerify -fuzztime=30s
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	sign := func(m jwt.SigningMethod, secret string, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(m, claims)
		tok.Header["kid"] = "one"
		s, err := tok.SignedString([]byte(secret))
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	good := sign(jwt.SigningMethodHS256, "k1", jwt.MapClaims{"iss": "nexus", "aud": "api", "sub": "u", "exp": now.Add(time.Hour).Unix()})
	for _, s := range []string{
		good,
		good[:len(good)/2],
		good + "x",
		strings.Replace(good, ".", "..", 1),
		sign(jwt.SigningMethodHS512, "k1", jwt.MapClaims{"iss": "nexus", "aud": "api"}),
		sign(jwt.SigningMethodHS256, "wrong", jwt.MapClaims{"iss": "nexus", "aud": "api"}),
		sign(jwt.SigningMethodHS256, "k1", jwt.MapClaims{"iss": "nexus", "aud": []any{"api", 1}, "exp": "soon", "nbf": 1e300}),
		"eyJhbGciOiJub25lIn0.e30.",
		"..",
		"a.b.c",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, token []byte) {
		v, err := Parse([]byte(`{"keys":[{"alg":"HS256","secret":"k1","kid":"one"}],"issuer":"nexus","audience":"api","leeway":"1s"}`))
		if err != nil {
			t.Fatal(err)
		}
		claims, err := v.Verify(token, now)
		if err != nil {
			if claims != nil {
				t.Fatalf("claims %v with error %v", claims, err)
			}
			return
		}
		if iss, _ := claims.GetIssuer(); iss != "nexus" {
			t.Fatalf("accepted token with issuer %q", iss)
		}
		if aud, _ := claims.GetAudience(); !contains(aud, "api") {
			t.Fatalf("accepted token with audience %q", aud)
		}
		// A second call (cached) agrees.
		if _, err := v.Verify(token, now); err != nil {
			t.Fatalf("cached verification failed: %v", err)
		}
	})
}

// FuzzParse feeds arbitrary JSON configurations (the gateway/jwt/* config
// values anyone with config write access sets) to Parse: no panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"secret":"s3cret"}`,
		`{"keys":[{"alg":"HS512","secret":"x","kid":"a"}],"issuer":"i","audience":"a","leeway":"5s"}`,
		`{"alg":"RS256","public_key":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}`,
		`{"alg":"ES256","public_key":"nope"}`,
		`{"secret":"s","leeway":"-1s"}`,
		`[`, `null`, `{"keys":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := Parse(raw)
		if err == nil && v == nil {
			t.Fatal("nil Verifier without an error")
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
