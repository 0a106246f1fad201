package registry

import (
	"fmt"
	"regexp"
	"sort"

	"github.com/hashicorp/go-memdb"
)

// ACL tables. Tokens are stored by accessor id with a unique index on the
// SHA-256 of their secret: the secret itself is never stored, replicated
// or written into a snapshot.
const (
	tableACLTokens   = "acl_tokens"
	tableACLPolicies = "acl_policies"
	tableACLRoles    = "acl_roles"
	// TableACL is the table-index key bumped by every ACL change (the
	// X-Nexus-Index of the ACL lists).
	TableACL = "acl"
)

// ACL resource kinds a rule can name.
const (
	ACLResourceService = "service"
	ACLResourceConfig  = "config"
	ACLResourceRoute   = "route"
	ACLResourceCluster = "cluster"
	ACLResourceAudit   = "audit"
	ACLResourceACL     = "acl"
	// ACLResourceSession names sessions by their name (docs/sessions.md).
	ACLResourceSession = "session"
)

// ACL access levels of a rule.
const (
	ACLAccessRead  = "read"
	ACLAccessWrite = "write"
	ACLAccessDeny  = "deny"
)

// Built-in ACL objects, created by the bootstrap.
const (
	// PolicyGlobalManagement grants write on every resource.
	PolicyGlobalManagement = "global-management"
	// AnonymousAccessor is the token of requests without a token; its
	// policies (none at first) are the anonymous policy.
	AnonymousAccessor = "anonymous"
)

// CodeACLBootstrapped answers a second bootstrap.
const CodeACLBootstrapped = "acl_bootstrapped"

// ACLRule grants or denies one access level on the resources of a kind
// whose name starts with Prefix (service name, config key, route id). Kinds
// without names (cluster, audit, acl) take the empty prefix only.
type ACLRule struct {
	Resource string `msgpack:"resource" json:"resource"`
	Prefix   string `msgpack:"prefix" json:"prefix"`
	Access   string `msgpack:"access" json:"access"`
}

// ACLPolicy is a named set of rules.
type ACLPolicy struct {
	Name        string    `msgpack:"name" json:"name"`
	Description string    `msgpack:"description" json:"description"`
	Rules       []ACLRule `msgpack:"rules" json:"rules"`
	CreateIndex uint64    `msgpack:"create_index" json:"create_index"`
	ModifyIndex uint64    `msgpack:"modify_index" json:"modify_index"`
}

// ACLRole is a named set of policies; JWT claims map to roles.
type ACLRole struct {
	Name        string   `msgpack:"name" json:"name"`
	Description string   `msgpack:"description" json:"description"`
	Policies    []string `msgpack:"policies" json:"policies"`
	CreateIndex uint64   `msgpack:"create_index" json:"create_index"`
	ModifyIndex uint64   `msgpack:"modify_index" json:"modify_index"`
}

// ACLToken is a token as stored: the hash of its secret, never the secret.
type ACLToken struct {
	AccessorID  string   `msgpack:"accessor_id"`
	SecretHash  string   `msgpack:"secret_hash"`
	Description string   `msgpack:"description"`
	Policies    []string `msgpack:"policies"`
	Roles       []string `msgpack:"roles"`
	// CreateTime and ExpirationTime are Unix nanoseconds of the proposer's
	// clock; ExpirationTime 0 never expires.
	CreateTime     int64  `msgpack:"create_time"`
	ExpirationTime int64  `msgpack:"expiration_time"`
	CreateIndex    uint64 `msgpack:"create_index"`
	ModifyIndex    uint64 `msgpack:"modify_index"`
}

// Expired reports whether the token has expired at now (Unix ns).
func (t *ACLToken) Expired(now int64) bool {
	return t.ExpirationTime != 0 && now >= t.ExpirationTime
}

// ACLMeta records the bootstrap, which happens once in a cluster's life.
type ACLMeta struct {
	Key              string `msgpack:"key"` // always "acl"
	BootstrapIndex   uint64 `msgpack:"bootstrap_index"`
	BootstrapAccount string `msgpack:"bootstrap_accessor"`
}

func aclTables() map[string]*memdb.TableSchema {
	return map[string]*memdb.TableSchema{
		tableACLTokens: {Name: tableACLTokens, Indexes: map[string]*memdb.IndexSchema{
			"id":     {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "AccessorID"}},
			"secret": {Name: "secret", Unique: true, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "SecretHash"}},
		}},
		tableACLPolicies: {Name: tableACLPolicies, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
		}},
		tableACLRoles: {Name: tableACLRoles, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
		}},
	}
}

// ---- validation (the proposer validates; Apply validates again) ----

var (
	aclNamePattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	aclAccessorPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
)

const (
	maxACLDescription = 256
	maxACLRules       = 256
	maxACLRefs        = 64
	maxACLPrefix      = 512
)

// ValidateACLPolicy checks a policy; field names follow the JSON body.
func ValidateACLPolicy(p *ACLPolicy) *Error {
	if !aclNamePattern.MatchString(p.Name) {
		return invalid("name", "must be 1-128 characters of letters, digits, '_', '.', '-', starting with a letter or digit")
	}
	if len(p.Description) > maxACLDescription {
		return invalid("description", "longer than %d bytes", maxACLDescription)
	}
	if len(p.Rules) > maxACLRules {
		return invalid("rules", "more than %d rules", maxACLRules)
	}
	for i, r := range p.Rules {
		f := fmt.Sprintf("rules[%d]", i)
		switch r.Resource {
		case ACLResourceService, ACLResourceConfig, ACLResourceRoute, ACLResourceSession:
			if len(r.Prefix) > maxACLPrefix {
				return invalid(f+".prefix", "longer than %d bytes", maxACLPrefix)
			}
		case ACLResourceCluster, ACLResourceAudit, ACLResourceACL:
			if r.Prefix != "" {
				return invalid(f+".prefix", "must be empty for resource %q (it has no names)", r.Resource)
			}
		default:
			return invalid(f+".resource", "must be one of service, config, route, session, cluster, audit, acl")
		}
		switch r.Access {
		case ACLAccessRead, ACLAccessWrite, ACLAccessDeny:
		default:
			return invalid(f+".access", "must be read, write or deny")
		}
	}
	return nil
}

// ValidateACLRole checks a role's shape (references are checked on apply).
func ValidateACLRole(r *ACLRole) *Error {
	if !aclNamePattern.MatchString(r.Name) {
		return invalid("name", "must be 1-128 characters of letters, digits, '_', '.', '-', starting with a letter or digit")
	}
	if len(r.Description) > maxACLDescription {
		return invalid("description", "longer than %d bytes", maxACLDescription)
	}
	return validateRefs("policies", r.Policies)
}

// ValidateACLToken checks a token's shape (references are checked on apply).
func ValidateACLToken(t *ACLToken) *Error {
	if !aclAccessorPattern.MatchString(t.AccessorID) {
		return invalid("accessor_id", "must be 1-64 characters of letters, digits, '_', '-'")
	}
	if t.AccessorID != AnonymousAccessor && len(t.SecretHash) != 64 {
		return invalid("secret_id", "missing secret hash")
	}
	if len(t.Description) > maxACLDescription {
		return invalid("description", "longer than %d bytes", maxACLDescription)
	}
	if e := validateRefs("policies", t.Policies); e != nil {
		return e
	}
	return validateRefs("roles", t.Roles)
}

func validateRefs(field string, names []string) *Error {
	if len(names) > maxACLRefs {
		return invalid(field, "more than %d names", maxACLRefs)
	}
	seen := map[string]bool{}
	for i, n := range names {
		if !aclNamePattern.MatchString(n) {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "%q is not a valid name", n)
		}
		if seen[n] {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "%q is listed twice", n)
		}
		seen[n] = true
	}
	return nil
}

// ---- reads ----

// ACLMeta returns the bootstrap record, or nil before the bootstrap.
func (tx *Tx) ACLMeta() *ACLMeta {
	raw, err := tx.txn.First(tableMeta, "id", "acl")
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*ACLMeta)
}

// ACLToken returns a token by accessor id, or nil.
func (tx *Tx) ACLToken(ws memdb.WatchSet, accessor string) *ACLToken {
	ch, raw, err := tx.txn.FirstWatch(tableACLTokens, "id", accessor)
	if err != nil {
		return nil
	}
	ws.Add(ch)
	if raw == nil {
		return nil
	}
	return raw.(*ACLToken)
}

// ACLTokenBySecretHash returns the token whose secret hashes to hash, or nil.
func (tx *Tx) ACLTokenBySecretHash(hash string) *ACLToken {
	if hash == "" {
		return nil
	}
	raw, err := tx.txn.First(tableACLTokens, "secret", hash)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*ACLToken)
}

// ACLTokens returns every token sorted by accessor id.
func (tx *Tx) ACLTokens(ws memdb.WatchSet) []ACLToken {
	var out []ACLToken
	it, err := tx.txn.Get(tableACLTokens, "id")
	if err != nil {
		return nil
	}
	ws.Add(it.WatchCh())
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, *raw.(*ACLToken))
	}
	return out
}

// ACLPolicy returns a policy by name, or nil.
func (tx *Tx) ACLPolicy(ws memdb.WatchSet, name string) *ACLPolicy {
	ch, raw, err := tx.txn.FirstWatch(tableACLPolicies, "id", name)
	if err != nil {
		return nil
	}
	ws.Add(ch)
	if raw == nil {
		return nil
	}
	return raw.(*ACLPolicy)
}

// ACLPolicies returns every policy sorted by name.
func (tx *Tx) ACLPolicies(ws memdb.WatchSet) []ACLPolicy {
	var out []ACLPolicy
	it, err := tx.txn.Get(tableACLPolicies, "id")
	if err != nil {
		return nil
	}
	ws.Add(it.WatchCh())
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, *raw.(*ACLPolicy))
	}
	return out
}

// ACLRole returns a role by name, or nil.
func (tx *Tx) ACLRole(ws memdb.WatchSet, name string) *ACLRole {
	ch, raw, err := tx.txn.FirstWatch(tableACLRoles, "id", name)
	if err != nil {
		return nil
	}
	ws.Add(ch)
	if raw == nil {
		return nil
	}
	return raw.(*ACLRole)
}

// ACLRoles returns every role sorted by name.
func (tx *Tx) ACLRoles(ws memdb.WatchSet) []ACLRole {
	var out []ACLRole
	it, err := tx.txn.Get(tableACLRoles, "id")
	if err != nil {
		return nil
	}
	ws.Add(it.WatchCh())
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, *raw.(*ACLRole))
	}
	return out
}

// ---- writes (FSM only) ----

// ACLBootstrap creates the global-management policy, the anonymous token
// and the first management token, once in a cluster's life.
func (tx *Tx) ACLBootstrap(token ACLToken) (*ACLToken, *Error) {
	if m := tx.ACLMeta(); m != nil {
		return nil, errorf(CodeACLBootstrapped, "ACLs were bootstrapped already (at index %d); use an existing management token", m.BootstrapIndex)
	}
	token.Policies = []string{PolicyGlobalManagement}
	token.Roles = nil
	if e := ValidateACLToken(&token); e != nil {
		return nil, e
	}
	if tx.ACLToken(nil, token.AccessorID) != nil || tx.ACLTokenBySecretHash(token.SecretHash) != nil {
		return nil, errorf(CodeConflict, "token %q exists already", token.AccessorID)
	}
	mgmt := ACLPolicy{Name: PolicyGlobalManagement, Description: "Built-in: write on every resource"}
	for _, r := range []string{ACLResourceService, ACLResourceConfig, ACLResourceRoute, ACLResourceSession, ACLResourceCluster, ACLResourceAudit, ACLResourceACL} {
		mgmt.Rules = append(mgmt.Rules, ACLRule{Resource: r, Access: ACLAccessWrite})
	}
	if _, _, e := tx.UpsertACLPolicy(mgmt, false); e != nil {
		return nil, e
	}
	if tx.ACLToken(nil, AnonymousAccessor) == nil {
		anon := ACLToken{AccessorID: AnonymousAccessor, Description: "Built-in: requests without a token", CreateTime: token.CreateTime}
		if _, _, e := tx.putACLToken(anon, nil); e != nil {
			return nil, e
		}
	}
	_, stored, e := tx.putACLToken(token, nil)
	if e != nil {
		return nil, e
	}
	if err := tx.txn.Insert(tableMeta, &ACLMeta{Key: "acl", BootstrapIndex: tx.index, BootstrapAccount: token.AccessorID}); err != nil {
		return nil, internal(err)
	}
	return stored, nil
}

// UpsertACLPolicy creates or replaces a policy; createOnly refuses to
// replace one. It returns the previous and the stored policy.
func (tx *Tx) UpsertACLPolicy(p ACLPolicy, createOnly bool) (*ACLPolicy, *ACLPolicy, *Error) {
	if e := ValidateACLPolicy(&p); e != nil {
		return nil, nil, e
	}
	prev := tx.ACLPolicy(nil, p.Name)
	if prev != nil && createOnly {
		return nil, nil, errorf(CodeConflict, "policy %q already exists", p.Name)
	}
	p.CreateIndex, p.ModifyIndex = tx.index, tx.index
	if prev != nil {
		p.CreateIndex = prev.CreateIndex
	}
	p.Rules = append([]ACLRule(nil), p.Rules...)
	if err := tx.txn.Insert(tableACLPolicies, &p); err != nil {
		return nil, nil, internal(err)
	}
	if err := tx.bumpIndex(TableACL); err != nil {
		return nil, nil, internal(err)
	}
	return prev, &p, nil
}

// DeleteACLPolicy deletes a policy that no token or role uses.
func (tx *Tx) DeleteACLPolicy(name string) (*ACLPolicy, *Error) {
	prev := tx.ACLPolicy(nil, name)
	if prev == nil {
		return nil, errorf(CodeNotFound, "policy %q not found", name)
	}
	if name == PolicyGlobalManagement {
		return nil, errorf(CodeConflict, "policy %q is built in and cannot be deleted", name)
	}
	if user := tx.policyUser(name); user != "" {
		return nil, errorf(CodeConflict, "policy %q is used by %s; remove it there first", name, user)
	}
	if err := tx.txn.Delete(tableACLPolicies, prev); err != nil {
		return nil, internal(err)
	}
	if err := tx.bumpIndex(TableACL); err != nil {
		return nil, internal(err)
	}
	return prev, nil
}

// policyUser names a token or role that uses policy name, or "".
func (tx *Tx) policyUser(name string) string {
	for _, t := range tx.ACLTokens(nil) {
		if contains(t.Policies, name) {
			return "token " + t.AccessorID
		}
	}
	for _, r := range tx.ACLRoles(nil) {
		if contains(r.Policies, name) {
			return "role " + r.Name
		}
	}
	return ""
}

// UpsertACLRole creates or replaces a role whose policies all exist.
func (tx *Tx) UpsertACLRole(r ACLRole, createOnly bool) (*ACLRole, *ACLRole, *Error) {
	if e := ValidateACLRole(&r); e != nil {
		return nil, nil, e
	}
	if e := tx.checkPolicies(r.Policies); e != nil {
		return nil, nil, e
	}
	prev := tx.ACLRole(nil, r.Name)
	if prev != nil && createOnly {
		return nil, nil, errorf(CodeConflict, "role %q already exists", r.Name)
	}
	r.CreateIndex, r.ModifyIndex = tx.index, tx.index
	if prev != nil {
		r.CreateIndex = prev.CreateIndex
	}
	r.Policies = sortedNames(r.Policies)
	if err := tx.txn.Insert(tableACLRoles, &r); err != nil {
		return nil, nil, internal(err)
	}
	if err := tx.bumpIndex(TableACL); err != nil {
		return nil, nil, internal(err)
	}
	return prev, &r, nil
}

// DeleteACLRole deletes a role that no token uses.
func (tx *Tx) DeleteACLRole(name string) (*ACLRole, *Error) {
	prev := tx.ACLRole(nil, name)
	if prev == nil {
		return nil, errorf(CodeNotFound, "role %q not found", name)
	}
	for _, t := range tx.ACLTokens(nil) {
		if contains(t.Roles, name) {
			return nil, errorf(CodeConflict, "role %q is used by token %s; remove it there first", name, t.AccessorID)
		}
	}
	if err := tx.txn.Delete(tableACLRoles, prev); err != nil {
		return nil, internal(err)
	}
	if err := tx.bumpIndex(TableACL); err != nil {
		return nil, internal(err)
	}
	return prev, nil
}

// CreateACLToken stores a new token whose policies and roles all exist.
func (tx *Tx) CreateACLToken(t ACLToken) (*ACLToken, *Error) {
	if e := ValidateACLToken(&t); e != nil {
		return nil, e
	}
	if t.AccessorID == AnonymousAccessor || tx.ACLToken(nil, t.AccessorID) != nil || tx.ACLTokenBySecretHash(t.SecretHash) != nil {
		return nil, errorf(CodeConflict, "token %q exists already", t.AccessorID)
	}
	_, stored, e := tx.putACLToken(t, nil)
	return stored, e
}

// ACLTokenPatch changes a token's description, policies or roles; nil
// fields keep their value. The secret and the expiry never change.
type ACLTokenPatch struct {
	Description *string
	Policies    *[]string
	Roles       *[]string
}

// UpdateACLToken applies a patch to an existing token.
func (tx *Tx) UpdateACLToken(accessor string, p ACLTokenPatch) (*ACLToken, *ACLToken, *Error) {
	prev := tx.ACLToken(nil, accessor)
	if prev == nil {
		return nil, nil, errorf(CodeNotFound, "token %q not found", accessor)
	}
	next := *prev
	if p.Description != nil {
		next.Description = *p.Description
	}
	if p.Policies != nil {
		next.Policies = *p.Policies
	}
	if p.Roles != nil {
		next.Roles = *p.Roles
	}
	if e := ValidateACLToken(&next); e != nil {
		return nil, nil, e
	}
	return tx.putACLToken(next, prev)
}

func (tx *Tx) putACLToken(t ACLToken, prev *ACLToken) (*ACLToken, *ACLToken, *Error) {
	if e := tx.checkPolicies(t.Policies); e != nil {
		return nil, nil, e
	}
	for i, r := range t.Roles {
		if tx.ACLRole(nil, r) == nil {
			return nil, nil, invalid(fmt.Sprintf("roles[%d]", i), "role %q does not exist", r)
		}
	}
	t.CreateIndex, t.ModifyIndex = tx.index, tx.index
	if prev != nil {
		t.CreateIndex = prev.CreateIndex
	}
	t.Policies, t.Roles = sortedNames(t.Policies), sortedNames(t.Roles)
	if err := tx.txn.Insert(tableACLTokens, &t); err != nil {
		return nil, nil, internal(err)
	}
	if err := tx.bumpIndex(TableACL); err != nil {
		return nil, nil, internal(err)
	}
	return prev, &t, nil
}

// DeleteACLToken revokes a token. The anonymous token cannot be deleted
// (give it no policies instead).
func (tx *Tx) DeleteACLToken(accessor string) (*ACLToken, *Error) {
	prev := tx.ACLToken(nil, accessor)
	if prev == nil {
		return nil, errorf(CodeNotFound, "token %q not found", accessor)
	}
	if accessor == AnonymousAccessor {
		return nil, errorf(CodeConflict, "the anonymous token cannot be deleted; update its policies instead")
	}
	if err := tx.txn.Delete(tableACLTokens, prev); err != nil {
		return nil, internal(err)
	}
	if err := tx.bumpIndex(TableACL); err != nil {
		return nil, internal(err)
	}
	return prev, nil
}

func (tx *Tx) checkPolicies(names []string) *Error {
	for i, n := range names {
		if tx.ACLPolicy(nil, n) == nil {
			return invalid(fmt.Sprintf("policies[%d]", i), "policy %q does not exist", n)
		}
	}
	return nil
}

// ---- snapshots ----

func (tx *Tx) dumpACL(d *Dump) {
	d.ACLTokens = tx.ACLTokens(nil)
	d.ACLPolicies = tx.ACLPolicies(nil)
	d.ACLRoles = tx.ACLRoles(nil)
	d.ACL = tx.ACLMeta()
}

func (tx *Tx) loadACL(d *Dump) error {
	for i := range d.ACLTokens {
		if err := tx.txn.Insert(tableACLTokens, &d.ACLTokens[i]); err != nil {
			return err
		}
	}
	for i := range d.ACLPolicies {
		if err := tx.txn.Insert(tableACLPolicies, &d.ACLPolicies[i]); err != nil {
			return err
		}
	}
	for i := range d.ACLRoles {
		if err := tx.txn.Insert(tableACLRoles, &d.ACLRoles[i]); err != nil {
			return err
		}
	}
	if d.ACL != nil {
		if err := tx.txn.Insert(tableMeta, d.ACL); err != nil {
			return err
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedNames(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}
