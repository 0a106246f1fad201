package fsm_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// aclFSM returns an FSM with ACLs bootstrapped, a policy "web" (write on
// services web*) and a token "t-web" holding it, at index 4.
func aclFSM(t *testing.T) *fsm.FSM {
	t.Helper()
	f := mustNewFSM(t)
	wantErrCode(t, applyResult(t, f, logAt(t, 1, command.TypeACLBootstrap, &command.ACLBootstrap{Meta: meta(1),
		Token: registry.ACLToken{AccessorID: "root", SecretHash: acl.HashSecret("root")}})), "")
	wantErrCode(t, applyResult(t, f, logAt(t, 2, command.TypeACLPolicyUpsert, &command.ACLPolicyUpsert{Meta: meta(2), CreateOnly: true,
		Policy: registry.ACLPolicy{Name: "web", Rules: []registry.ACLRule{{Resource: "service", Prefix: "web", Access: "write"}}}})), "")
	wantErrCode(t, applyResult(t, f, logAt(t, 3, command.TypeACLTokenCreate, &command.ACLTokenCreate{Meta: meta(3),
		Token: registry.ACLToken{AccessorID: "t-web", SecretHash: acl.HashSecret("web"), Policies: []string{"web"}}})), "")
	return f
}

func as(i int, kind acl.Kind, accessor string) command.Meta {
	m := meta(i)
	m.Actor = accessor
	m.Auth = &command.Auth{Enforce: true, Kind: uint8(kind), Accessor: accessor}
	return m
}

// TestFSM_ACLCheckedOnApply: whatever the proposer decided, Apply refuses a
// write its caller has no right to, and the refusal changes neither the
// state nor the audit trail.
func TestFSM_ACLCheckedOnApply(t *testing.T) {
	cases := []struct {
		name string
		ty   command.Type
		msg  func(m command.Meta) any
		code string
	}{
		{"allowed service write", command.TypeRegisterInstance, func(m command.Meta) any {
			return &command.RegisterInstance{Meta: m, Instance: instance("web", "w1", "http", 80)}
		}, ""},
		{"service outside the prefix", command.TypeRegisterInstance, func(m command.Meta) any {
			return &command.RegisterInstance{Meta: m, Instance: instance("db", "d1", "pg", 5432)}
		}, fsm.CodePermissionDenied},
		{"config without a rule", command.TypeConfigSet, func(m command.Meta) any {
			return &command.ConfigSet{Meta: m, Entries: []command.ConfigOp{{Key: "app/x", Value: []byte(`1`)}}}
		}, fsm.CodePermissionDenied},
		{"acl write", command.TypeACLPolicyDelete, func(m command.Meta) any {
			return &command.ACLPolicyDelete{Meta: m, Name: "web"}
		}, fsm.CodePermissionDenied},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := aclFSM(t)
			before := dump(f)
			r := applyResult(t, f, logAt(t, 4, c.ty, c.msg(as(4, acl.Token, "t-web"))))
			wantErrCode(t, r, c.code)
			if c.code != "" {
				after := dump(f)
				if !reflect.DeepEqual(before, after) {
					t.Fatalf("a refused write changed the state or the audit backlog")
				}
			}
		})
	}
}

func TestFSM_ACLRevokedTokenAndAnonymous(t *testing.T) {
	f := aclFSM(t)
	// The token is revoked at 4; a write its (stale) proposer authorized
	// lands at 5 and is refused.
	wantErrCode(t, applyResult(t, f, logAt(t, 4, command.TypeACLTokenDelete, &command.ACLTokenDelete{Meta: as(4, acl.Token, "root"), Accessor: "t-web"})), "")
	before := dump(f)
	r := applyResult(t, f, logAt(t, 5, command.TypeRegisterInstance, &command.RegisterInstance{Meta: as(5, acl.Token, "t-web"), Instance: instance("web", "w1", "http", 80)}))
	wantErrCode(t, r, fsm.CodeUnauthenticated)
	// Anonymous without an anonymous policy: unauthenticated.
	r = applyResult(t, f, logAt(t, 6, command.TypeRegisterInstance, &command.RegisterInstance{Meta: as(6, acl.Anonymous, ""), Instance: instance("web", "w1", "http", 80)}))
	wantErrCode(t, r, fsm.CodeUnauthenticated)
	// An expired external JWT.
	m := meta(7)
	m.Auth = &command.Auth{Enforce: true, Kind: uint8(acl.External), Subject: "alice", Roles: []string{"x"}, Expires: m.Time - 1}
	r = applyResult(t, f, logAt(t, 7, command.TypeRegisterInstance, &command.RegisterInstance{Meta: m, Instance: instance("web", "w1", "http", 80)}))
	wantErrCode(t, r, fsm.CodeUnauthenticated)
	if !reflect.DeepEqual(before, dump(f)) {
		t.Fatal("refused writes changed the state")
	}
	// Without Enforce (ACLs off on the proposer), nothing is checked.
	r = applyResult(t, f, logAt(t, 8, command.TypeRegisterInstance, &command.RegisterInstance{Meta: meta(8), Instance: instance("web", "w1", "http", 80)}))
	wantErrCode(t, r, "")
}

// TestFSM_ACLNoSecretInSnapshotOrAudit: only hashes are stored; the audit
// documents of tokens carry neither the secret nor its hash.
func TestFSM_ACLNoSecretInSnapshotOrAudit(t *testing.T) {
	f := aclFSM(t)
	snap := string(snapshotBytes(t, f))
	for _, secret := range []string{"root", "web"} {
		if !strings.Contains(snap, acl.HashSecret(secret)) {
			t.Errorf("snapshot lacks the hash of %q", secret)
		}
	}
	tx := f.Store().ReadTxn()
	defer tx.Abort()
	recs := tx.Dump().Audit
	if len(recs) == 0 {
		t.Fatal("no audit records for ACL changes")
	}
	for _, r := range recs {
		if r.ResourceType != registry.AuditACL {
			t.Errorf("audit record of type %q", r.ResourceType)
		}
		doc := string(r.Before) + string(r.After)
		if strings.Contains(doc, acl.HashSecret("web")) || strings.Contains(doc, acl.HashSecret("root")) || strings.Contains(doc, "secret") {
			t.Errorf("audit record %s %s holds a secret hash: %s", r.Action, r.Resource, doc)
		}
	}
}
