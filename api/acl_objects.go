package api

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Token, policy and role management (api.md, Access control). Every
// object is validated here with the field named, and again by Apply.

const maxTokenTTL = 10 * 365 * 24 * time.Hour

// ---- policies ----

type policyBody struct {
	Name        string             `json:"name"`
	Description string             `json:"description"`
	Rules       []registry.ACLRule `json:"rules"`
}

// GET /acl/policies
func (s *Server) listPolicies(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	serveACLList(s, ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) []registry.ACLPolicy { return tx.ACLPolicies(ws) })
}

// GET /acl/policies/{name}
func (s *Server) getPolicy(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	s.serveACLObject(ctx, rc, "policy", func(tx *registry.Tx, ws memdb.WatchSet) (any, uint64) {
		if p := tx.ACLPolicy(ws, rc.name); p != nil {
			return p, p.ModifyIndex
		}
		return nil, 0
	})
}

// POST /acl/policies (create) and PUT /acl/policies/{name} (replace).
func (s *Server) postPolicy(ctx *fasthttp.RequestCtx, rc *reqCtx) { s.upsertPolicy(ctx, rc, true) }
func (s *Server) putPolicy(ctx *fasthttp.RequestCtx, rc *reqCtx)  { s.upsertPolicy(ctx, rc, false) }

func (s *Server) upsertPolicy(ctx *fasthttp.RequestCtx, rc *reqCtx, create bool) {
	if !s.aclEnabled(ctx) {
		return
	}
	var b policyBody
	if e := decodeJSON(ctx.PostBody(), &b); e != nil {
		s.reject(ctx, e)
		return
	}
	if !create {
		if e := nameFromPath(&b.Name, rc.name); e != nil {
			s.reject(ctx, e)
			return
		}
	}
	p := registry.ACLPolicy{Name: b.Name, Description: b.Description, Rules: b.Rules}
	if e := registry.ValidateACLPolicy(&p); e != nil {
		s.reject(ctx, fromRegistry(e))
		return
	}
	if p.Name == registry.PolicyGlobalManagement {
		s.reject(ctx, &apiError{status: fasthttp.StatusConflict, code: registry.CodeConflict,
			message: "policy " + p.Name + " is built in and cannot be changed"})
		return
	}
	s.commit(ctx, rc, command.TypeACLPolicyUpsert, &command.ACLPolicyUpsert{Meta: s.meta(rc), Policy: p, CreateOnly: create}, true)
}

// DELETE /acl/policies/{name}
func (s *Server) deletePolicy(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	s.commit(ctx, rc, command.TypeACLPolicyDelete, &command.ACLPolicyDelete{Meta: s.meta(rc), Name: rc.name}, false)
}

// ---- roles ----

type roleBody struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Policies    []string `json:"policies"`
}

// GET /acl/roles
func (s *Server) listRoles(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	serveACLList(s, ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) []registry.ACLRole { return tx.ACLRoles(ws) })
}

// GET /acl/roles/{name}
func (s *Server) getRole(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	s.serveACLObject(ctx, rc, "role", func(tx *registry.Tx, ws memdb.WatchSet) (any, uint64) {
		if r := tx.ACLRole(ws, rc.name); r != nil {
			return r, r.ModifyIndex
		}
		return nil, 0
	})
}

func (s *Server) postRole(ctx *fasthttp.RequestCtx, rc *reqCtx) { s.upsertRole(ctx, rc, true) }
func (s *Server) putRole(ctx *fasthttp.RequestCtx, rc *reqCtx)  { s.upsertRole(ctx, rc, false) }

func (s *Server) upsertRole(ctx *fasthttp.RequestCtx, rc *reqCtx, create bool) {
	if !s.aclEnabled(ctx) {
		return
	}
	var b roleBody
	if e := decodeJSON(ctx.PostBody(), &b); e != nil {
		s.reject(ctx, e)
		return
	}
	if !create {
		if e := nameFromPath(&b.Name, rc.name); e != nil {
			s.reject(ctx, e)
			return
		}
	}
	r := registry.ACLRole{Name: b.Name, Description: b.Description, Policies: b.Policies}
	if e := registry.ValidateACLRole(&r); e != nil {
		s.reject(ctx, fromRegistry(e))
		return
	}
	if e := s.checkRefs("policies", r.Policies, nil); e != nil {
		s.reject(ctx, e)
		return
	}
	s.commit(ctx, rc, command.TypeACLRoleUpsert, &command.ACLRoleUpsert{Meta: s.meta(rc), Role: r, CreateOnly: create}, true)
}

// DELETE /acl/roles/{name}
func (s *Server) deleteRole(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	s.commit(ctx, rc, command.TypeACLRoleDelete, &command.ACLRoleDelete{Meta: s.meta(rc), Name: rc.name}, false)
}

// checkRefs names the first policy (or role) of names that this replica
// does not know, for a 400 with the field; Apply checks again.
func (s *Server) checkRefs(field string, policies, roles []string) *apiError {
	tx := s.reader.Store().ReadTxn()
	defer tx.Abort()
	for i, n := range policies {
		if tx.ACLPolicy(nil, n) == nil {
			return errInvalid(fmt.Sprintf("%s[%d]", field, i), "policy %q does not exist", n)
		}
	}
	for i, n := range roles {
		if tx.ACLRole(nil, n) == nil {
			return errInvalid(fmt.Sprintf("roles[%d]", i), "role %q does not exist", n)
		}
	}
	return nil
}

// ---- tokens ----

type tokenCreateBody struct {
	Description string   `json:"description"`
	Policies    []string `json:"policies"`
	Roles       []string `json:"roles"`
	ExpiresIn   string   `json:"expires_in"`
}

type tokenUpdateBody struct {
	Description *string   `json:"description"`
	Policies    *[]string `json:"policies"`
	Roles       *[]string `json:"roles"`
}

// GET /acl/tokens: never a secret.
func (s *Server) listTokens(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	serveACLList(s, ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) []any {
		ts := tx.ACLTokens(ws)
		out := make([]any, len(ts))
		for i := range ts {
			out[i] = fsm.TokenView(&ts[i])
		}
		return out
	})
}

// GET /acl/tokens/{accessor_id}
func (s *Server) getToken(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	s.serveACLObject(ctx, rc, "token", func(tx *registry.Tx, ws memdb.WatchSet) (any, uint64) {
		if t := tx.ACLToken(ws, rc.name); t != nil {
			return fsm.TokenView(t), t.ModifyIndex
		}
		return nil, 0
	})
}

// serveACLList answers a list of ACL objects (never null) at the ACL
// tables' index.
func serveACLList[T any](s *Server, ctx *fasthttp.RequestCtx, rc *reqCtx, list func(*registry.Tx, memdb.WatchSet) []T) {
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		out := list(tx, ws)
		if out == nil {
			out = []T{}
		}
		return readResult{index: tx.TableIndex(ws, registry.TableACL), body: out}
	})
}

// serveACLObject answers the ACL object of the path that lookup finds
// (nil: 404 naming the kind).
func (s *Server) serveACLObject(ctx *fasthttp.RequestCtx, rc *reqCtx, kind string, lookup func(*registry.Tx, memdb.WatchSet) (any, uint64)) {
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		body, idx := lookup(tx, ws)
		if body == nil {
			return readResult{index: tx.TableIndex(ws, registry.TableACL), err: errNotFound(fmt.Sprintf("%s %q not found", kind, rc.name))}
		}
		return readResult{index: idx, body: body}
	})
}

// POST /acl/tokens: the secret is in this answer only.
func (s *Server) postToken(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	var b tokenCreateBody
	if e := decodeJSON(ctx.PostBody(), &b); e != nil {
		s.reject(ctx, e)
		return
	}
	now := s.now()
	t := registry.ACLToken{Description: b.Description, Policies: b.Policies, Roles: b.Roles, CreateTime: now.UnixNano()}
	if b.ExpiresIn != "" {
		d, err := time.ParseDuration(b.ExpiresIn)
		if err != nil || d < time.Second || d > maxTokenTTL {
			s.reject(ctx, errInvalid("expires_in", "%q must be a duration between 1s and 87600h, like 24h", b.ExpiresIn))
			return
		}
		t.ExpirationTime = now.Add(d).UnixNano()
	}
	accessor, err1 := acl.NewSecret()
	secret, err2 := acl.NewSecret()
	if err1 != nil || err2 != nil {
		s.reject(ctx, errInternal("cannot generate a secret"))
		return
	}
	t.AccessorID, t.SecretHash = accessor, acl.HashSecret(secret)
	if e := registry.ValidateACLToken(&t); e != nil {
		s.reject(ctx, fromRegistry(e))
		return
	}
	if e := s.checkRefs("policies", t.Policies, t.Roles); e != nil {
		s.reject(ctx, e)
		return
	}
	res := s.apply(ctx, rc, command.TypeACLTokenCreate, &command.ACLTokenCreate{Meta: s.meta(rc), Token: t})
	if res == nil {
		return
	}
	raw, err := res.RawValue()
	var view map[string]any
	if err == nil {
		err = json.Unmarshal(raw, &view)
	}
	if err != nil || view == nil {
		s.log.Error("encode token answer", "request_id", rc.id, "err", err)
		writeError(ctx, errInternal("the token was created but its answer could not be encoded; accessor "+accessor))
		return
	}
	view["secret_id"] = secret
	writeJSON(ctx, fasthttp.StatusCreated, view)
}

// PUT /acl/tokens/{accessor_id}: description, policies, roles.
func (s *Server) putToken(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	var b tokenUpdateBody
	if e := decodeJSON(ctx.PostBody(), &b); e != nil {
		s.reject(ctx, e)
		return
	}
	probe := registry.ACLToken{AccessorID: rc.name, SecretHash: acl.HashSecret(rc.name)}
	if b.Description != nil {
		probe.Description = *b.Description
	}
	if b.Policies != nil {
		probe.Policies = *b.Policies
	}
	if b.Roles != nil {
		probe.Roles = *b.Roles
	}
	if e := registry.ValidateACLToken(&probe); e != nil {
		s.reject(ctx, fromRegistry(e))
		return
	}
	if e := s.checkRefs("policies", probe.Policies, probe.Roles); e != nil {
		s.reject(ctx, e)
		return
	}
	s.commit(ctx, rc, command.TypeACLTokenUpdate, &command.ACLTokenUpdate{Meta: s.meta(rc), Accessor: rc.name,
		Description: b.Description, Policies: b.Policies, Roles: b.Roles}, false)
}

// DELETE /acl/tokens/{accessor_id}: revocation.
func (s *Server) deleteToken(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.aclEnabled(ctx) {
		return
	}
	s.commit(ctx, rc, command.TypeACLTokenDelete, &command.ACLTokenDelete{Meta: s.meta(rc), Accessor: rc.name}, false)
}

// nameFromPath makes the path's name the object's: a body naming
// another object is refused.
func nameFromPath(body *string, path string) *apiError {
	if *body != "" && *body != path {
		return errInvalid("name", "%q differs from the name %q of the path", *body, path)
	}
	*body = path
	return nil
}
