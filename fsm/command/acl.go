package command

import "github.com/nexus/nexus/registry"

// ACL command types (appended; never renumbered).
const (
	TypeACLBootstrap    Type = 12
	TypeACLPolicyUpsert Type = 13
	TypeACLPolicyDelete Type = 14
	TypeACLRoleUpsert   Type = 15
	TypeACLRoleDelete   Type = 16
	TypeACLTokenCreate  Type = 17
	TypeACLTokenUpdate  Type = 18
	TypeACLTokenDelete  Type = 19
)

// Auth is the caller of a write as the proposing node resolved it. When
// Enforce is set (the proposer runs with ACLs on) Apply checks it again
// against the replicated tokens, roles and policies as of this entry, so
// a write authorized by a stale node with a token revoked since is refused
// by every replica alike.
type Auth struct {
	Enforce bool `msgpack:"enforce"`
	// Kind is acl.Kind: 0 anonymous, 1 token, 2 external JWT.
	Kind     uint8    `msgpack:"kind"`
	Accessor string   `msgpack:"accessor,omitempty"`
	Subject  string   `msgpack:"subject,omitempty"`
	Roles    []string `msgpack:"roles,omitempty"`
	// Expires is the credential's expiry in Unix ns (0: none), checked
	// against Meta.Time.
	Expires int64 `msgpack:"expires,omitempty"`
}

// ACLBootstrap creates the global-management policy, the anonymous token
// and Token (its secret hash only) — once in a cluster's life.
type ACLBootstrap struct {
	Meta  Meta              `msgpack:"meta"`
	Token registry.ACLToken `msgpack:"token"`
}

// ACLPolicyUpsert creates (CreateOnly) or replaces a policy.
type ACLPolicyUpsert struct {
	Meta       Meta               `msgpack:"meta"`
	Policy     registry.ACLPolicy `msgpack:"policy"`
	CreateOnly bool               `msgpack:"create_only"`
}

// ACLPolicyDelete deletes a policy.
type ACLPolicyDelete struct {
	Meta Meta   `msgpack:"meta"`
	Name string `msgpack:"name"`
}

// ACLRoleUpsert creates (CreateOnly) or replaces a role.
type ACLRoleUpsert struct {
	Meta       Meta             `msgpack:"meta"`
	Role       registry.ACLRole `msgpack:"role"`
	CreateOnly bool             `msgpack:"create_only"`
}

// ACLRoleDelete deletes a role.
type ACLRoleDelete struct {
	Meta Meta   `msgpack:"meta"`
	Name string `msgpack:"name"`
}

// ACLTokenCreate stores a new token (the hash of its secret).
type ACLTokenCreate struct {
	Meta  Meta              `msgpack:"meta"`
	Token registry.ACLToken `msgpack:"token"`
}

// ACLTokenUpdate changes a token's description, policies or roles; nil
// fields keep their value.
type ACLTokenUpdate struct {
	Meta        Meta      `msgpack:"meta"`
	Accessor    string    `msgpack:"accessor"`
	Description *string   `msgpack:"description"`
	Policies    *[]string `msgpack:"policies"`
	Roles       *[]string `msgpack:"roles"`
}

// ACLTokenDelete revokes a token.
type ACLTokenDelete struct {
	Meta     Meta   `msgpack:"meta"`
	Accessor string `msgpack:"accessor"`
}

func aclTypeString(t Type) (string, bool) {
	switch t {
	case TypeACLBootstrap:
		return "acl_bootstrap", true
	case TypeACLPolicyUpsert:
		return "acl_policy_upsert", true
	case TypeACLPolicyDelete:
		return "acl_policy_delete", true
	case TypeACLRoleUpsert:
		return "acl_role_upsert", true
	case TypeACLRoleDelete:
		return "acl_role_delete", true
	case TypeACLTokenCreate:
		return "acl_token_create", true
	case TypeACLTokenUpdate:
		return "acl_token_update", true
	case TypeACLTokenDelete:
		return "acl_token_delete", true
	}
	return "", false
}

func newACLMessage(t Type) any {
	switch t {
	case TypeACLBootstrap:
		return &ACLBootstrap{}
	case TypeACLPolicyUpsert:
		return &ACLPolicyUpsert{}
	case TypeACLPolicyDelete:
		return &ACLPolicyDelete{}
	case TypeACLRoleUpsert:
		return &ACLRoleUpsert{}
	case TypeACLRoleDelete:
		return &ACLRoleDelete{}
	case TypeACLTokenCreate:
		return &ACLTokenCreate{}
	case TypeACLTokenUpdate:
		return &ACLTokenUpdate{}
	case TypeACLTokenDelete:
		return &ACLTokenDelete{}
	}
	return nil
}
