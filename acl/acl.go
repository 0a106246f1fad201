// Package acl decides who may do what: it resolves a caller (token secret,
// JWT or nobody) to an Identity and the Identity to an Authorizer built from
// the replicated policies, roles and tokens (registry), and evaluates rules.
// The admin API asks it for a fast answer; the FSM asks it again when a
// write applies, so that a write authorized by a stale node with a token
// revoked since is refused on every replica alike (docs/security.md).
package acl

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/nexus/nexus/registry"
)

// Access is what a request needs on a resource.
type Access uint8

// Access levels, ordered: write implies read.
const (
	Read Access = iota + 1
	Write
)

func (a Access) String() string {
	if a == Write {
		return registry.ACLAccessWrite
	}
	return registry.ACLAccessRead
}

// Kind of identity behind a request.
type Kind uint8

// Identity kinds.
const (
	// Anonymous: no credential; the anonymous token's policies apply.
	Anonymous Kind = iota
	// Token: a token secret, or a JWT issued by POST /acl/login for a token.
	Token
	// External: a JWT of an identity provider; its roles claim applies.
	External
)

// Identity is a resolved caller.
type Identity struct {
	Kind Kind
	// Accessor is the token's accessor id (Kind Token).
	Accessor string
	// Subject is the JWT subject (Kind External, and login JWTs).
	Subject string
	// Roles are the Nexus roles of an External identity.
	Roles []string
	// ExpiresAt is Unix ns (0: never): the token's or the JWT's expiry.
	ExpiresAt int64
}

// Actor is the audit actor of the identity: the token's accessor id or
// the JWT subject.
func (id Identity) Actor() string {
	switch id.Kind {
	case Token:
		return id.Accessor
	case External:
		return "jwt:" + id.Subject
	}
	return registry.AnonymousAccessor
}

// Authorizer answers whether an access is allowed. The zero value denies
// everything; AllowAll allows everything.
type Authorizer struct {
	all   bool
	rules map[string][]registry.ACLRule // by resource kind, longest prefix first
}

// AllowAll is the authorizer of a node without ACLs.
func AllowAll() *Authorizer { return &Authorizer{all: true} }

// NewAuthorizer merges the rules of policies. For each resource the most
// specific (longest) matching prefix wins; between equal prefixes deny
// wins over write over read.
func NewAuthorizer(policies []*registry.ACLPolicy) *Authorizer {
	a := &Authorizer{rules: map[string][]registry.ACLRule{}}
	for _, p := range policies {
		if p == nil {
			continue
		}
		if p.Name == registry.PolicyGlobalManagement {
			// Built in and unchangeable: write on every resource, also the
			// kinds added after a cluster's bootstrap stored its rules.
			return AllowAll()
		}
		for _, r := range p.Rules {
			a.rules[r.Resource] = append(a.rules[r.Resource], r)
		}
	}
	for k, rs := range a.rules {
		sort.SliceStable(rs, func(i, j int) bool {
			if len(rs[i].Prefix) != len(rs[j].Prefix) {
				return len(rs[i].Prefix) > len(rs[j].Prefix)
			}
			return strength(rs[i].Access) > strength(rs[j].Access)
		})
		a.rules[k] = rs
	}
	return a
}

func strength(access string) int {
	switch access {
	case registry.ACLAccessDeny:
		return 3
	case registry.ACLAccessWrite:
		return 2
	case registry.ACLAccessRead:
		return 1
	}
	return 0
}

// Allowed reports whether access on the resource kind's name is granted.
// Names are matched by prefix; the kinds without names use "".
func (a *Authorizer) Allowed(resource, name string, access Access) bool {
	if a == nil {
		return false
	}
	if a.all {
		return true
	}
	for _, r := range a.rules[resource] {
		if !strings.HasPrefix(name, r.Prefix) {
			continue
		}
		switch r.Access {
		case registry.ACLAccessWrite:
			return true
		case registry.ACLAccessRead:
			return access == Read
		default:
			return false
		}
	}
	return false
}

// ReadsAny reports whether some rule grants read or write on some names
// of the resource kind.
func (a *Authorizer) ReadsAny(resource string) bool {
	if a == nil {
		return false
	}
	if a.all {
		return true
	}
	for _, r := range a.rules[resource] {
		if r.Access != registry.ACLAccessDeny {
			return true
		}
	}
	return false
}

// IsManagement reports whether the authorizer allows everything.
func (a *Authorizer) IsManagement() bool {
	if a == nil {
		return false
	}
	if a.all {
		return true
	}
	for _, r := range []string{registry.ACLResourceService, registry.ACLResourceConfig, registry.ACLResourceRoute,
		registry.ACLResourceSession, registry.ACLResourceCluster, registry.ACLResourceAudit, registry.ACLResourceACL} {
		if !a.Allowed(r, "", Write) {
			return false
		}
	}
	return true
}

// Denial explains a refused access.
type Denial struct {
	// Unauthenticated: the caller has no valid credential (401), else it
	// lacks the right (403).
	Unauthenticated bool
	Message         string
}

func (d *Denial) Error() string { return d.Message }

// Authorize resolves id against the state in tx at time now (Unix ns) and
// returns its authorizer, or a denial when the identity is not valid
// (unknown or expired token, expired JWT).
func Authorize(tx *registry.Tx, id Identity, now int64) (*Authorizer, *Denial) {
	if id.ExpiresAt != 0 && now >= id.ExpiresAt {
		return nil, &Denial{Unauthenticated: true, Message: "the credential has expired"}
	}
	var policies []string
	var roles []string
	switch id.Kind {
	case Token:
		t := tx.ACLToken(nil, id.Accessor)
		if t == nil || t.AccessorID == registry.AnonymousAccessor {
			return nil, &Denial{Unauthenticated: true, Message: "unknown or revoked token"}
		}
		if t.Expired(now) {
			return nil, &Denial{Unauthenticated: true, Message: "the token has expired"}
		}
		policies, roles = t.Policies, t.Roles
	case External:
		roles = id.Roles
	default:
		if t := tx.ACLToken(nil, registry.AnonymousAccessor); t != nil {
			policies, roles = t.Policies, t.Roles
		}
	}
	seen := map[string]bool{}
	var ps []*registry.ACLPolicy
	add := func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		if p := tx.ACLPolicy(nil, name); p != nil {
			ps = append(ps, p)
		}
	}
	for _, p := range policies {
		add(p)
	}
	for _, rn := range roles {
		if r := tx.ACLRole(nil, rn); r != nil {
			for _, p := range r.Policies {
				add(p)
			}
		}
	}
	return NewAuthorizer(ps), nil
}

// Check is Authorize then Allowed: nil when allowed, else the denial. An
// anonymous caller refused is unauthenticated (401): it needs a token.
func Check(tx *registry.Tx, id Identity, now int64, resource, name string, access Access) *Denial {
	a, d := Authorize(tx, id, now)
	if d != nil {
		return d
	}
	if a.Allowed(resource, name, access) {
		return nil
	}
	return denied(id, resource, name, access)
}

func denied(id Identity, resource, name string, access Access) *Denial {
	what := resource
	if name != "" {
		what += " " + fmt.Sprintf("%q", name)
	}
	if id.Kind == Anonymous {
		return &Denial{Unauthenticated: true, Message: fmt.Sprintf("a token with %s access to %s is required", access, what)}
	}
	return &Denial{Message: fmt.Sprintf("%s lacks %s access to %s", id.Actor(), access, what)}
}

// Denied builds the denial of an access the authorizer refused.
func Denied(id Identity, resource, name string, access Access) *Denial {
	return denied(id, resource, name, access)
}

// NewSecret returns a random token secret and accessor id (UUIDv4 form).
func NewSecret() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

// HashSecret is how secrets are stored and looked up. Secrets are 122
// random bits, so a fast hash is enough: there is nothing to brute-force.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// credentialKey carries a caller's credential through a context to where a
// request is passed on to another node, whose API checks it again.
type credentialKey struct{}

// WithCredential returns ctx carrying cred (a token secret or a JWT).
func WithCredential(ctx context.Context, cred string) context.Context {
	if cred == "" {
		return ctx
	}
	return context.WithValue(ctx, credentialKey{}, cred)
}

// CredentialFrom returns the credential WithCredential stored, or "".
func CredentialFrom(ctx context.Context) string {
	s, _ := ctx.Value(credentialKey{}).(string)
	return s
}
