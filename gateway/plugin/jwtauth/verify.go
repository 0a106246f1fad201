package jwtauth

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// cacheTTL bounds how long a verified token is trusted without verifying
// its signature again; cacheMax bounds the number of cached tokens.
const (
	cacheTTL = time.Minute
	cacheMax = 10000
)

// Verifier checks tokens against a set of keys. Safe for concurrent use.
type Verifier struct {
	keys     []key
	algs     []string
	issuer   string
	audience string
	leeway   time.Duration

	mu    sync.RWMutex
	cache map[string]cached
}

type cached struct {
	claims jwt.MapClaims
	until  int64 // unix ns: expiry (plus leeway) or cacheTTL after verification
}

// ErrNoToken is returned when the request carries no bearer token.
var ErrNoToken = errors.New("no bearer token")

// Verify checks the signature, exp, nbf, and issuer/audience when
// configured, and returns the token's claims. Verified tokens are cached
// until they expire or for at most a minute.
func (v *Verifier) Verify(token []byte, now time.Time) (jwt.MapClaims, error) {
	if len(token) == 0 {
		return nil, ErrNoToken
	}
	ns := now.UnixNano()
	v.mu.RLock()
	c, ok := v.cache[string(token)]
	v.mu.RUnlock()
	if ok && ns < c.until {
		return c.claims, nil
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(v.algs), jwt.WithLeeway(v.leeway), jwt.WithTimeFunc(func() time.Time { return now })}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(string(token), claims, v.keyFunc, opts...); err != nil {
		return nil, err
	}
	until := now.Add(cacheTTL)
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		until = minTime(until, exp.Add(v.leeway))
	}
	if nbf, err := claims.GetNotBefore(); err == nil && nbf != nil && nbf.After(now) {
		return claims, nil // valid within leeway only; do not cache
	}
	v.mu.Lock()
	if v.cache == nil || len(v.cache) >= cacheMax {
		v.cache = make(map[string]cached, 64)
	}
	v.cache[string(token)] = cached{claims: claims, until: until.UnixNano()}
	v.mu.Unlock()
	return claims, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// keyFunc selects the key by the token's kid, else every key of its alg.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	for _, k := range v.keys {
		if k.alg != alg {
			continue
		}
		if kid != "" && k.kid != "" {
			if k.kid == kid {
				return k.key, nil
			}
			continue
		}
		set.Keys = append(set.Keys, k.key)
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("no key for alg %s kid %q", alg, kid)
	}
	if len(set.Keys) == 1 {
		return set.Keys[0], nil
	}
	return set, nil
}
