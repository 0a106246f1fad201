package acl

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWT defaults and limits.
const (
	DefaultJWTIssuer     = "nexus"
	DefaultJWTAudience   = "nexus"
	DefaultJWTRolesClaim = "roles"
	DefaultJWTExpiry     = time.Hour

	// JWTAccessorClaim carries the accessor id of the token a JWT was
	// issued for by POST /acl/login.
	JWTAccessorClaim = "nexus_accessor"

	// MaxJWTLeeway bounds JWTConfig.Leeway.
	MaxJWTLeeway = 5 * time.Minute
	// MaxJWTLength bounds the size of a JWT Verify accepts to parse.
	MaxJWTLength = 16 << 10
	// minJWTRSABits is the smallest RSA modulus accepted for RS256.
	minJWTRSABits = 2048
)

// JWT signing algorithms accepted by Verify (each restricted to its key type).
const (
	jwtAlgHS256 = "HS256"
	jwtAlgRS256 = "RS256"
	jwtAlgES256 = "ES256"
)

// ErrJWTInvalid is wrapped by every error Verify returns.
var ErrJWTInvalid = errors.New("jwt: invalid token")

// JWTConfig configures the JWTs the admin API accepts and issues.
type JWTConfig struct {
	Secret         []byte            // HS256 key: signs the JWTs of POST /acl/login and verifies HS256 JWTs; empty: no HS256
	PublicKeyFiles []string          // PEM files: RSA (RS256) or ECDSA P-256 (ES256) public keys (PKIX "PUBLIC KEY", PKCS#1 "RSA PUBLIC KEY" or certificates)
	JWKSFile       string            // a JSON Web Key Set file (RSA and EC P-256 keys, "kid" matched against the JWT header kid; a key without kid matches any)
	Issuer         string            // required "iss" of accepted JWTs, and the iss of issued ones; default "nexus"
	Audience       string            // required "aud" of accepted JWTs (one of), and the aud of issued ones; default "nexus"
	RolesClaim     string            // claim mapped to Nexus role names (string or array of strings); default "roles"
	RoleMap        map[string]string // optional: claim value -> Nexus role name; values absent from a non-empty map are dropped
	Expiry         time.Duration     // lifetime of issued JWTs; default 3600 s
	Leeway         time.Duration     // clock skew allowed on exp/nbf; default 0, at most MaxJWTLeeway
}

// JWTIdentity is what a verified JWT says about its bearer.
type JWTIdentity struct {
	Subject   string    // "sub" (required, non-empty)
	Accessor  string    // claim "nexus_accessor" of JWTs verified with Secret (issued by POST /acl/login); "" otherwise
	Roles     []string  // from RolesClaim, mapped through RoleMap, deduplicated, sorted; never nil
	ExpiresAt time.Time // "exp" (required)
}

// JWTAuth verifies and issues JWTs. Safe for concurrent use; immutable after
// NewJWTAuth.
type JWTAuth struct {
	secret     []byte
	keys       []jwtKey // public keys (RS256, ES256)
	algs       []string // algorithms with at least one key
	issuer     string
	audience   string
	rolesClaim string
	roleMap    map[string]string
	expiry     time.Duration
	leeway     time.Duration
}

// jwtKey is one public verification key.
type jwtKey struct {
	kid    string // "" matches any JWT kid
	alg    string // jwtAlgRS256 or jwtAlgES256
	key    any    // *rsa.PublicKey or *ecdsa.PublicKey
	source string // file (and key index) it came from
}

// jwtReservedClaims cannot be used as RolesClaim: Issue would overwrite them.
var jwtReservedClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", JWTAccessorClaim}

// NewJWTAuth loads keys (reading the files once) and validates the config.
// A config with neither Secret nor keys is valid, but Enabled is false.
func NewJWTAuth(cfg JWTConfig) (*JWTAuth, error) {
	a := &JWTAuth{
		issuer:     cfg.Issuer,
		audience:   cfg.Audience,
		rolesClaim: cfg.RolesClaim,
		expiry:     cfg.Expiry,
		leeway:     cfg.Leeway,
	}
	if a.issuer == "" {
		a.issuer = DefaultJWTIssuer
	}
	if a.audience == "" {
		a.audience = DefaultJWTAudience
	}
	if a.rolesClaim == "" {
		a.rolesClaim = DefaultJWTRolesClaim
	}
	if slices.Contains(jwtReservedClaims, a.rolesClaim) {
		return nil, fmt.Errorf("jwt: roles claim %q is a reserved claim", a.rolesClaim)
	}
	if a.expiry == 0 {
		a.expiry = DefaultJWTExpiry
	}
	if a.expiry < time.Second {
		return nil, fmt.Errorf("jwt: expiry %s must be at least 1s", a.expiry)
	}
	if a.leeway < 0 || a.leeway > MaxJWTLeeway {
		return nil, fmt.Errorf("jwt: leeway %s must be between 0 and %s", a.leeway, MaxJWTLeeway)
	}
	if len(cfg.RoleMap) > 0 {
		a.roleMap = make(map[string]string, len(cfg.RoleMap))
		for k, v := range cfg.RoleMap {
			a.roleMap[k] = v
		}
	}
	if len(cfg.Secret) > 0 {
		a.secret = slices.Clone(cfg.Secret)
		a.algs = append(a.algs, jwtAlgHS256)
	}
	for _, path := range cfg.PublicKeyFiles {
		keys, err := loadJWTPEMFile(path)
		if err != nil {
			return nil, err
		}
		a.keys = append(a.keys, keys...)
	}
	if cfg.JWKSFile != "" {
		keys, err := loadJWKSFile(cfg.JWKSFile)
		if err != nil {
			return nil, err
		}
		a.keys = append(a.keys, keys...)
	}
	for _, k := range a.keys {
		if !slices.Contains(a.algs, k.alg) {
			a.algs = append(a.algs, k.alg)
		}
	}
	return a, nil
}

// Enabled reports whether some verification key exists.
func (a *JWTAuth) Enabled() bool { return a != nil && len(a.algs) > 0 }

// CanIssue reports whether Issue can sign JWTs (Secret is set).
func (a *JWTAuth) CanIssue() bool { return a != nil && len(a.secret) > 0 }

// LooksLikeJWT reports whether a bearer credential is shaped like a JWT
// (three non-empty base64url segments separated by dots) rather than an
// opaque token secret (a UUID: no dots).
func LooksLikeJWT(s string) bool {
	segs := 0
	n := 0 // length of the current segment
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if n == 0 {
				return false
			}
			segs++
			n = 0
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			n++
		default:
			return false
		}
	}
	return segs == 2 && n > 0
}

// jwtError is a Verify failure: a message naming the failed check, wrapping
// ErrJWTInvalid and the underlying cause (if any).
type jwtError struct {
	msg   string
	cause error
}

func (e *jwtError) Error() string { return e.msg }

func (e *jwtError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrJWTInvalid}
	}
	return []error{ErrJWTInvalid, e.cause}
}

func jwtFail(cause error, format string, args ...any) error {
	return &jwtError{msg: "jwt: " + fmt.Sprintf(format, args...), cause: cause}
}

// Verify parses and checks raw at time now: signature (HS256 with Secret,
// RS256/ES256 with a configured public key of that type; never "none"),
// exp (required, not past), nbf (if present, not future), iss, aud (one of
// them equals Audience) and sub (non-empty); iat is ignored. Every error
// wraps ErrJWTInvalid and says which check failed.
func (a *JWTAuth) Verify(raw string, now time.Time) (JWTIdentity, error) {
	if !a.Enabled() {
		return JWTIdentity{}, jwtFail(nil, "no verification keys configured")
	}
	if len(raw) > MaxJWTLength {
		return JWTIdentity{}, jwtFail(jwt.ErrTokenMalformed, "malformed (longer than %d bytes)", MaxJWTLength)
	}
	claims := jwt.MapClaims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods(a.algs),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithLeeway(a.leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(a.issuer),
		jwt.WithAudience(a.audience),
		jwt.WithStrictDecoding(),
	)
	tok, err := parser.ParseWithClaims(raw, claims, a.keyFunc)
	if err != nil {
		return JWTIdentity{}, a.explain(tok, claims, now, err)
	}
	if !tok.Valid {
		return JWTIdentity{}, jwtFail(nil, "invalid")
	}

	var id JWTIdentity
	sub, err := claims.GetSubject()
	if err != nil {
		return JWTIdentity{}, jwtFail(err, "bad sub (not a string)")
	}
	if sub == "" {
		return JWTIdentity{}, jwtFail(jwt.ErrTokenRequiredClaimMissing, "missing sub")
	}
	id.Subject = sub
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil { // validated by the parser already
		return JWTIdentity{}, jwtFail(err, "missing exp")
	}
	id.ExpiresAt = exp.Time

	// Only JWTs signed with our own secret may name a token accessor: an
	// external identity provider must not be able to claim a token.
	own := tok.Method.Alg() == jwtAlgHS256
	if v, ok := claims[JWTAccessorClaim]; ok && own {
		s, isString := v.(string)
		if !isString {
			return JWTIdentity{}, jwtFail(jwt.ErrInvalidType, "bad %s claim (not a string)", JWTAccessorClaim)
		}
		id.Accessor = s
	}

	// Roles of JWTs we issued are Nexus role names already; RoleMap maps
	// the roles of external identity providers.
	id.Roles, err = a.jwtRoles(claims[a.rolesClaim], id.Accessor == "")
	if err != nil {
		return JWTIdentity{}, err
	}
	return id, nil
}

// jwtRoles turns the value of the roles claim into sorted, distinct Nexus
// role names, mapped through the RoleMap when mapped is set.
func (a *JWTAuth) jwtRoles(v any, mapped bool) ([]string, error) {
	var in []string
	switch v := v.(type) {
	case nil:
	case string:
		in = []string{v}
	case []any:
		in = make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, jwtFail(jwt.ErrInvalidType, "bad %s claim (not a string or an array of strings)", a.rolesClaim)
			}
			in = append(in, s)
		}
	default:
		return nil, jwtFail(jwt.ErrInvalidType, "bad %s claim (not a string or an array of strings)", a.rolesClaim)
	}
	out := make([]string, 0, len(in))
	for _, r := range in {
		if mapped && a.roleMap != nil {
			r = a.roleMap[r]
		}
		if r != "" {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// keyFunc returns the key(s) for the JWT's algorithm (already restricted to
// a.algs by the parser) and kid: the secret for HS256, else the public keys
// of that algorithm whose kid is empty or equal to the JWT's.
func (a *JWTAuth) keyFunc(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, jwtFail(nil, "unsupported crit header")
	}
	alg := t.Method.Alg()
	if alg == jwtAlgHS256 {
		if len(a.secret) == 0 { // unreachable: HS256 is in a.algs only with a secret
			return nil, jwtFail(nil, "unsupported algorithm %q", alg)
		}
		return a.secret, nil
	}
	var kid string
	if v, ok := t.Header["kid"]; ok {
		s, isString := v.(string)
		if !isString {
			return nil, jwtFail(jwt.ErrTokenMalformed, "malformed (kid is not a string)")
		}
		kid = s
	}
	var set jwt.VerificationKeySet
	for _, k := range a.keys {
		if k.alg == alg && (k.kid == "" || kid == "" || k.kid == kid) {
			set.Keys = append(set.Keys, k.key)
		}
	}
	switch len(set.Keys) {
	case 0:
		if len(kid) > 64 {
			kid = kid[:64] + "..."
		}
		return nil, jwtFail(nil, "no %s key with kid %q", alg, kid)
	case 1:
		return set.Keys[0], nil
	}
	return set, nil
}

// explain turns a parser error into a jwtError naming the failed check.
func (a *JWTAuth) explain(tok *jwt.Token, claims jwt.MapClaims, now time.Time, err error) error {
	var je *jwtError
	if errors.As(err, &je) { // from keyFunc
		return &jwtError{msg: je.msg, cause: err}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return jwtFail(err, "malformed")
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok == nil || tok.Method == nil {
			return jwtFail(err, "unsupported algorithm")
		}
		if alg := tok.Method.Alg(); !slices.Contains(a.algs, alg) {
			return jwtFail(err, "unsupported algorithm %q", alg)
		}
		if errors.Is(err, jwt.ErrTokenUnverifiable) {
			return jwtFail(err, "unverifiable")
		}
		return jwtFail(err, "bad signature")
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		if problems := a.claimProblems(claims, now); len(problems) > 0 {
			return jwtFail(err, "%s", strings.Join(problems, ", "))
		}
		return jwtFail(err, "invalid claims")
	}
	return jwtFail(err, "invalid")
}

// claimProblems lists the registered claims that fail validation at now,
// mirroring the parser's checks to name them.
func (a *JWTAuth) claimProblems(c jwt.MapClaims, now time.Time) []string {
	var p []string
	exp, err := c.GetExpirationTime()
	switch {
	case err != nil:
		p = append(p, "bad exp (not a number)")
	case exp == nil:
		p = append(p, "missing exp")
	case !now.Before(exp.Add(a.leeway)):
		p = append(p, "expired")
	}
	nbf, err := c.GetNotBefore()
	switch {
	case err != nil:
		p = append(p, "bad nbf (not a number)")
	case nbf != nil && now.Before(nbf.Add(-a.leeway)):
		p = append(p, "not valid yet")
	}
	if iss, err := c.GetIssuer(); err != nil || iss != a.issuer {
		p = append(p, "wrong issuer")
	}
	if aud, err := c.GetAudience(); err != nil || !slices.Contains(aud, a.audience) {
		p = append(p, "wrong audience")
	}
	return p
}

// Issue signs an HS256 JWT for a token: sub = nexus_accessor = accessor,
// the roles claim = roles (sorted, distinct), iss, aud, iat = nbf = now,
// exp = now + Expiry (times in whole seconds). expiresAt is the exp.
func (a *JWTAuth) Issue(accessor string, roles []string, now time.Time) (raw string, expiresAt time.Time, err error) {
	if !a.CanIssue() {
		return "", time.Time{}, errors.New("jwt: cannot issue JWTs: no secret configured")
	}
	if accessor == "" {
		return "", time.Time{}, errors.New("jwt: cannot issue a JWT without an accessor")
	}
	rs := make([]string, 0, len(roles))
	for _, r := range roles {
		if r != "" {
			rs = append(rs, r)
		}
	}
	slices.Sort(rs)
	rs = slices.Compact(rs)
	iat := now.Unix()
	expiresAt = time.Unix(now.Add(a.expiry).Unix(), 0)
	claims := jwt.MapClaims{
		"iss":            a.issuer,
		"aud":            a.audience,
		"sub":            accessor,
		JWTAccessorClaim: accessor,
		a.rolesClaim:     rs,
		"iat":            iat,
		"nbf":            iat,
		"exp":            expiresAt.Unix(),
	}
	raw, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("jwt: sign: %w", err)
	}
	return raw, expiresAt, nil
}

// loadJWTPEMFile reads the public keys (PKIX, PKCS#1 or certificates) of a
// PEM file.
func loadJWTPEMFile(path string) ([]jwtKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwt public key file %s: %w", path, err)
	}
	var keys []jwtKey
	rest := data
	for i := 1; ; i++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var pub any
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				err = fmt.Errorf("is a private key (%s); configure the public key", block.Type)
			} else {
				err = fmt.Errorf("unsupported PEM type %q (want PUBLIC KEY or CERTIFICATE)", block.Type)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("jwt public key file %s: PEM block %d: %w", path, i, err)
		}
		k, err := jwtKeyFromPublic(pub)
		if err != nil {
			return nil, fmt.Errorf("jwt public key file %s: PEM block %d: %w", path, i, err)
		}
		k.source = fmt.Sprintf("%s#%d", path, i)
		keys = append(keys, k)
	}
	if strings.Contains(string(rest), "-----BEGIN") {
		return nil, fmt.Errorf("jwt public key file %s: malformed PEM block after %d valid block(s)", path, len(keys))
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwt public key file %s: no PEM public key found", path)
	}
	return keys, nil
}

// jwtKeyFromPublic accepts RSA (>= 2048 bits) and ECDSA P-256 public keys.
func jwtKeyFromPublic(pub any) (jwtKey, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minJWTRSABits {
			return jwtKey{}, fmt.Errorf("RSA key of %d bits is too small (minimum %d)", p.N.BitLen(), minJWTRSABits)
		}
		return jwtKey{alg: jwtAlgRS256, key: p}, nil
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return jwtKey{}, fmt.Errorf("ECDSA curve %s is not supported (only P-256, for ES256)", p.Curve.Params().Name)
		}
		return jwtKey{alg: jwtAlgES256, key: p}, nil
	}
	return jwtKey{}, fmt.Errorf("unsupported key type %T (want RSA or ECDSA P-256)", pub)
}

// jwkJSON is one JSON Web Key (RFC 7517/7518) of a key set.
type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
}

// loadJWKSFile reads the signature keys of a JSON Web Key Set: RSA
// (RS256) and EC P-256 (ES256). Keys with "use" other than "sig" are
// skipped; any other unsupported or malformed key is an error.
func loadJWKSFile(path string) ([]jwtKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwt JWKS file %s: %w", path, err)
	}
	var set struct {
		Keys *[]jwkJSON `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwt JWKS file %s: invalid JSON: %w", path, err)
	}
	if set.Keys == nil {
		return nil, fmt.Errorf("jwt JWKS file %s: not a JSON Web Key Set (no \"keys\")", path)
	}
	var keys []jwtKey
	for i, j := range *set.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, err := jwtKeyFromJWK(j)
		if err != nil {
			name := fmt.Sprintf("key %d", i)
			if j.Kid != "" {
				name += fmt.Sprintf(" (kid %q)", j.Kid)
			}
			return nil, fmt.Errorf("jwt JWKS file %s: %s: %w", path, name, err)
		}
		k.kid = j.Kid
		k.source = fmt.Sprintf("%s#%d", path, i)
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwt JWKS file %s: no signature keys", path)
	}
	return keys, nil
}

func jwtKeyFromJWK(j jwkJSON) (jwtKey, error) {
	if j.D != "" {
		return jwtKey{}, errors.New("is a private key; configure the public key set")
	}
	switch j.Kty {
	case "RSA":
		if j.Alg != "" && j.Alg != jwtAlgRS256 {
			return jwtKey{}, fmt.Errorf("alg %q is not supported for RSA keys (only RS256)", j.Alg)
		}
		n, err := jwkBytes("n", j.N)
		if err != nil {
			return jwtKey{}, err
		}
		e, err := jwkBytes("e", j.E)
		if err != nil {
			return jwtKey{}, err
		}
		eb := new(big.Int).SetBytes(e)
		if eb.BitLen() > 31 || eb.Int64() < 3 || eb.Bit(0) == 0 {
			return jwtKey{}, errors.New("invalid RSA exponent \"e\"")
		}
		return jwtKeyFromPublic(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(eb.Int64())})
	case "EC":
		if j.Crv != "P-256" {
			return jwtKey{}, fmt.Errorf("curve %q is not supported (only P-256, for ES256)", j.Crv)
		}
		if j.Alg != "" && j.Alg != jwtAlgES256 {
			return jwtKey{}, fmt.Errorf("alg %q is not supported for P-256 keys (only ES256)", j.Alg)
		}
		x, err := jwkBytes("x", j.X)
		if err != nil {
			return jwtKey{}, err
		}
		y, err := jwkBytes("y", j.Y)
		if err != nil {
			return jwtKey{}, err
		}
		if len(x) > 32 || len(y) > 32 {
			return jwtKey{}, errors.New("EC coordinates longer than 32 bytes")
		}
		point := make([]byte, 65)
		point[0] = 4
		copy(point[33-len(x):33], x)
		copy(point[65-len(y):], y)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return jwtKey{}, fmt.Errorf("invalid EC point: %w", err)
		}
		return jwtKeyFromPublic(pub)
	case "":
		return jwtKey{}, errors.New("missing \"kty\"")
	}
	return jwtKey{}, fmt.Errorf("unsupported kty %q (want RSA or EC)", j.Kty)
}

// jwkBytes decodes a base64url JWK member (padding tolerated).
func jwkBytes(name, s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("missing %q", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("%q is not base64url: %w", name, err)
	}
	return b, nil
}
