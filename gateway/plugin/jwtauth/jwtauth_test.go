package jwtauth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestParseConfig(t *testing.T) {
	cases := []struct {
		name, cfg string
		ok        bool
	}{
		{"hs256 shorthand", `{"secret":"s3cret"}`, true},
		{"keys", `{"keys":[{"alg":"HS512","secret":"x","kid":"a"}],"issuer":"i","audience":"a","leeway":"5s"}`, true},
		{"no keys", `{}`, false},
		{"bad pem", `{"alg":"RS256","public_key":"nope"}`, false},
		{"unknown alg", `{"alg":"XX1","secret":"s"}`, false},
		{"bad leeway", `{"secret":"s","leeway":"soon"}`, false},
		{"not json", `[`, false},
	}
	for _, c := range cases {
		if _, err := Parse([]byte(c.cfg)); (err == nil) != c.ok {
			t.Errorf("%s: err %v", c.name, err)
		}
	}
}

func TestVerify(t *testing.T) {
	v, err := Parse([]byte(`{"keys":[{"alg":"HS256","secret":"k1","kid":"one"},{"alg":"HS256","secret":"k2","kid":"two"}],"issuer":"nexus","leeway":"10s"}`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	sign := func(kid, secret string, claims jwt.MapClaims) []byte {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, _ := tok.SignedString([]byte(secret))
		return []byte(s)
	}
	base := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "nexus", "sub": "u"}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	cases := []struct {
		name  string
		token []byte
		ok    bool
	}{
		{"kid one", sign("one", "k1", base(nil)), true},
		{"kid two", sign("two", "k2", base(nil)), true},
		{"kid mismatch", sign("one", "k2", base(nil)), false},
		{"no kid tries all keys", sign("", "k2", base(nil)), true},
		{"expired within leeway", sign("one", "k1", base(jwt.MapClaims{"exp": now.Add(-5 * time.Second).Unix()})), true},
		{"expired", sign("one", "k1", base(jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()})), false},
		{"wrong issuer", sign("one", "k1", jwt.MapClaims{"iss": "other"}), false},
		{"empty", nil, false},
	}
	for _, c := range cases {
		if _, err := v.Verify(c.token, now); (err == nil) != c.ok {
			t.Errorf("%s: err %v", c.name, err)
		}
	}
	// A cached token still expires.
	tok := sign("one", "k1", base(jwt.MapClaims{"exp": now.Add(30 * time.Second).Unix()}))
	if _, err := v.Verify(tok, now); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok, now.Add(41*time.Second)); err == nil {
		t.Fatal("cached token accepted after exp + leeway")
	}
}
