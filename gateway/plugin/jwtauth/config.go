// Package jwtauth verifies JSON Web Tokens for gateway routes with
// auth.type "jwt": HS256/384/512 shared secrets, RS256/384/512 and
// ES256/384/512 public keys, read from the replicated configuration
// (config key gateway/jwt/<route-id>, else gateway/jwt/default).
package jwtauth

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ConfigPrefix is the config-store prefix of JWT settings.
const ConfigPrefix = "gateway/jwt/"

// Config is the JSON value of a gateway/jwt/* config key. Either Keys, or
// the fields of one key at the top level.
type Config struct {
	Keys     []KeyConfig `json:"keys"`
	Issuer   string      `json:"issuer"`
	Audience string      `json:"audience"`
	Leeway   string      `json:"leeway"` // clock skew allowed on exp/nbf (default 0)
	KeyConfig
}

// KeyConfig is one verification key.
type KeyConfig struct {
	KID       string `json:"kid"`
	Alg       string `json:"alg"`        // HS256 (default with secret), RS256, ES256, ...
	Secret    string `json:"secret"`     // HMAC secret
	PublicKey string `json:"public_key"` // PEM, for RS* and ES*
}

type key struct {
	kid string
	alg string
	key any
}

// Parse reads a gateway/jwt/* value.
func Parse(raw []byte) (*Verifier, error) {
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("invalid JWT configuration: %w", err)
	}
	keys := c.Keys
	if c.Secret != "" || c.PublicKey != "" {
		keys = append(keys, c.KeyConfig)
	}
	if len(keys) == 0 {
		return nil, errors.New("JWT configuration has no keys")
	}
	v := &Verifier{issuer: c.Issuer, audience: c.Audience}
	if c.Leeway != "" {
		d, err := time.ParseDuration(c.Leeway)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("JWT leeway %q is not a duration", c.Leeway)
		}
		v.leeway = d
	}
	algs := map[string]bool{}
	for i, kc := range keys {
		k, err := parseKey(kc)
		if err != nil {
			return nil, fmt.Errorf("JWT key %d: %w", i, err)
		}
		v.keys = append(v.keys, k)
		if !algs[k.alg] {
			algs[k.alg] = true
			v.algs = append(v.algs, k.alg)
		}
	}
	return v, nil
}

func parseKey(kc KeyConfig) (key, error) {
	alg := strings.ToUpper(kc.Alg)
	if alg == "" && kc.Secret != "" {
		alg = "HS256"
	}
	k := key{kid: kc.KID, alg: alg}
	switch alg {
	case "HS256", "HS384", "HS512":
		if kc.Secret == "" {
			return k, fmt.Errorf("%s needs a secret", alg)
		}
		k.key = []byte(kc.Secret)
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		pub, err := jwt.ParseRSAPublicKeyFromPEM([]byte(kc.PublicKey))
		if err != nil {
			return k, fmt.Errorf("%s public_key: %w", alg, err)
		}
		k.key = pub
	case "ES256", "ES384", "ES512":
		pub, err := jwt.ParseECPublicKeyFromPEM([]byte(kc.PublicKey))
		if err != nil {
			return k, fmt.Errorf("%s public_key: %w", alg, err)
		}
		k.key = pub
	case "EDDSA":
		pub, err := jwt.ParseEdPublicKeyFromPEM([]byte(kc.PublicKey))
		if err != nil {
			return k, fmt.Errorf("EdDSA public_key: %w", err)
		}
		k.alg, k.key = "EdDSA", crypto.PublicKey(pub)
	default:
		return k, fmt.Errorf("unsupported alg %q", kc.Alg)
	}
	return k, nil
}
