package fsm

import (
	"time"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Error codes of a write refused by the ACL check on apply.
const (
	CodePermissionDenied = "permission_denied"
	CodeUnauthenticated  = "unauthenticated"
)

// need is one access a command requires.
type need struct {
	resource, name string
}

// needs lists what msg writes; nil for commands that are not checked
// (the nodes' own duties and the bootstrap, which is once-only anyway).
func needs(msg any) []need {
	switch m := msg.(type) {
	case *command.RegisterInstance:
		return []need{{registry.ACLResourceService, m.Instance.Service}}
	case *command.DeregisterInstance:
		return []need{{registry.ACLResourceService, m.Service}}
	case *command.DeregisterService:
		return []need{{registry.ACLResourceService, m.Service}}
	case *command.SetStatus:
		return []need{{registry.ACLResourceService, m.Service}}
	case *command.ConfigSet:
		out := make([]need, len(m.Entries))
		for i, e := range m.Entries {
			out[i] = need{registry.ACLResourceConfig, e.Key}
		}
		return out
	case *command.ConfigDelete:
		return []need{{registry.ACLResourceConfig, m.Key}}
	case *command.RouteUpsert:
		return []need{{registry.ACLResourceRoute, m.Route.ID}}
	case *command.RouteDelete:
		return []need{{registry.ACLResourceRoute, m.ID}}
	case *command.AuditSettings:
		return []need{{registry.ACLResourceAudit, ""}}
	case *command.ACLPolicyUpsert, *command.ACLPolicyDelete, *command.ACLRoleUpsert, *command.ACLRoleDelete,
		*command.ACLTokenCreate, *command.ACLTokenUpdate, *command.ACLTokenDelete:
		return []need{{registry.ACLResourceACL, ""}}
	case *command.Maintenance:
		if m.Record.Scope == registry.MaintNode {
			return []need{{registry.ACLResourceCluster, ""}}
		}
		return []need{{registry.ACLResourceService, m.Record.Service}}
	}
	return sessionNeeds(msg)
}

// authorize re-checks the caller of a write against this entry's state. It
// runs on every replica with the same inputs (the entry and the state
// before it), so all reach the same answer.
func authorize(tx *registry.Tx, msg any, m command.Meta) *command.Error {
	if m.Auth == nil || !m.Auth.Enforce {
		return nil
	}
	ns := needs(msg)
	if d, ok := msg.(*command.ConfigDelete); ok && d.Prefix {
		// Write access to every key the prefix delete removes.
		ns = ns[:0]
		for _, e := range tx.ConfigList(nil, d.Key) {
			ns = append(ns, need{registry.ACLResourceConfig, e.Key})
		}
	}
	if len(ns) == 0 {
		return nil
	}
	a, id, e := caller(tx, m)
	if e != nil {
		return e
	}
	for _, n := range ns {
		if !a.Allowed(n.resource, n.name, acl.Write) {
			return deniedErr(acl.Denied(id, n.resource, n.name, acl.Write))
		}
	}
	return nil
}

// caller resolves the caller a write carries against this entry's state
// (m.Auth must be set).
func caller(tx *registry.Tx, m command.Meta) (*acl.Authorizer, acl.Identity, *command.Error) {
	id := acl.Identity{Kind: acl.Kind(m.Auth.Kind), Accessor: m.Auth.Accessor, Subject: m.Auth.Subject,
		Roles: m.Auth.Roles, ExpiresAt: m.Auth.Expires}
	a, d := acl.Authorize(tx, id, m.Time)
	if d != nil {
		return nil, id, deniedErr(d)
	}
	return a, id, nil
}

func deniedErr(d *acl.Denial) *command.Error {
	if d.Unauthenticated {
		return &command.Error{Code: CodeUnauthenticated, Message: d.Message}
	}
	return &command.Error{Code: CodePermissionDenied, Message: d.Message}
}

// tokenDoc is a token as audit records and answers show it: never the
// secret, nor its hash.
type tokenDoc struct {
	AccessorID     string   `json:"accessor_id"`
	Description    string   `json:"description"`
	Policies       []string `json:"policies"`
	Roles          []string `json:"roles"`
	CreateTime     string   `json:"create_time"`
	ExpirationTime string   `json:"expiration_time,omitempty"`
	CreateIndex    uint64   `json:"create_index"`
	ModifyIndex    uint64   `json:"modify_index"`
}

// TokenView returns the public part of a stored token.
func TokenView(t *registry.ACLToken) any {
	if t == nil {
		return nil
	}
	d := tokenDoc{AccessorID: t.AccessorID, Description: t.Description, Policies: orEmpty(t.Policies),
		Roles: orEmpty(t.Roles), CreateTime: rfc3339(t.CreateTime), CreateIndex: t.CreateIndex, ModifyIndex: t.ModifyIndex}
	if t.ExpirationTime != 0 {
		d.ExpirationTime = rfc3339(t.ExpirationTime)
	}
	return d
}

// rfc3339 formats Unix ns in UTC: the same text on every replica.
func rfc3339(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ACL answers of commands that do not return a stored object.
type (
	// DeletedACL answers a delete of a policy, role (Name) or token (AccessorID).
	DeletedACL struct {
		Name        string `json:"name,omitempty"`
		AccessorID  string `json:"accessor_id,omitempty"`
		ModifyIndex uint64 `json:"modify_index"`
	}
)

// dispatchACL applies the ACL commands; it reports whether msg was one.
func dispatchACL(tx *registry.Tx, idx uint64, msg any, res *command.Result, au *entryAudit) bool {
	switch m := msg.(type) {
	case *command.ACLBootstrap:
		t, e := tx.ACLBootstrap(m.Token)
		if e != nil {
			res.Err = toErr(e)
			return true
		}
		res.Created, res.Value = true, TokenView(t)
		au.add(registry.ActionBootstrap, registry.AuditACL, "token:"+t.AccessorID, nil, TokenView(t))
	case *command.ACLPolicyUpsert:
		prev, p, e := tx.UpsertACLPolicy(m.Policy, m.CreateOnly)
		if e != nil {
			res.Err = toErr(e)
			return true
		}
		res.Created, res.Value = prev == nil, p
		au.add(upsertAction(prev == nil), registry.AuditACL, "policy:"+p.Name, policyDoc(prev), p)
	case *command.ACLPolicyDelete:
		prev, e := tx.DeleteACLPolicy(m.Name)
		if e != nil {
			res.Err = toErr(e)
			return true
		}
		res.Value = DeletedACL{Name: m.Name, ModifyIndex: idx}
		au.add(registry.ActionDelete, registry.AuditACL, "policy:"+m.Name, prev, nil)
	case *command.ACLRoleUpsert:
		prev, r, e := tx.UpsertACLRole(m.Role, m.CreateOnly)
		if e != nil {
			res.Err = toErr(e)
			return true
		}
		res.Created, res.Value = prev == nil, r
		au.add(upsertAction(prev == nil), registry.AuditACL, "role:"+r.Name, roleDoc(prev), r)
	case *command.ACLRoleDelete:
		prev, e := tx.DeleteACLRole(m.Name)
		if e != nil {
			res.Err = toErr(e)
			return true
		}
		res.Value = DeletedACL{Name: m.Name, ModifyIndex: idx}
		au.add(registry.ActionDelete, registry.AuditACL, "role:"+m.Name, prev, nil)
	case *command.ACLTokenCreate:
		t, e := tx.CreateACLToken(m.Token)
		if e != nil {
			res.Err = toErr(e)
			return true
		}
		res.Created, res.Value = true, TokenView(t)
		au.add(registry.ActionCreate, registry.AuditACL, "token:"+t.AccessorID, nil, TokenView(t))
	case *command.ACLTokenUpdate:
		prev, t, e := tx.UpdateACLToken(m.Accessor, registry.ACLTokenPatch{Description: m.Description, Policies: m.Policies, Roles: m.Roles})
		if e != nil {
			res.Err = toErr(e)
			return true
		}
		res.Value = TokenView(t)
		au.add(registry.ActionUpdate, registry.AuditACL, "token:"+t.AccessorID, TokenView(prev), TokenView(t))
	case *command.ACLTokenDelete:
		prev, e := tx.DeleteACLToken(m.Accessor)
		if e != nil {
			res.Err = toErr(e)
			return true
		}
		res.Value = DeletedACL{AccessorID: m.Accessor, ModifyIndex: idx}
		au.add(registry.ActionRevoke, registry.AuditACL, "token:"+m.Accessor, TokenView(prev), nil)
	default:
		return false
	}
	return true
}

func upsertAction(created bool) string {
	if created {
		return registry.ActionCreate
	}
	return registry.ActionUpdate
}

// policyDoc and roleDoc keep a typed nil out of the audit documents.
func policyDoc(p *registry.ACLPolicy) any {
	if p == nil {
		return nil
	}
	return p
}

func roleDoc(r *registry.ACLRole) any {
	if r == nil {
		return nil
	}
	return r
}

// aclMetaOf returns the Meta of an ACL command.
func aclMetaOf(msg any) (command.Meta, bool) {
	switch m := msg.(type) {
	case *command.ACLBootstrap:
		return m.Meta, true
	case *command.ACLPolicyUpsert:
		return m.Meta, true
	case *command.ACLPolicyDelete:
		return m.Meta, true
	case *command.ACLRoleUpsert:
		return m.Meta, true
	case *command.ACLRoleDelete:
		return m.Meta, true
	case *command.ACLTokenCreate:
		return m.Meta, true
	case *command.ACLTokenUpdate:
		return m.Meta, true
	case *command.ACLTokenDelete:
		return m.Meta, true
	}
	return command.Meta{}, false
}
