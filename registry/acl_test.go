package registry

import (
	"reflect"
	"strings"
	"testing"
)

const hashA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
const hashB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

func TestACLBootstrapOnce(t *testing.T) {
	st := NewStore()
	tx := st.WriteTxn(5)
	tok, e := tx.ACLBootstrap(ACLToken{AccessorID: "root", SecretHash: hashA, Policies: []string{"ignored"}})
	if e != nil {
		t.Fatal(e)
	}
	if !reflect.DeepEqual(tok.Policies, []string{PolicyGlobalManagement}) || tok.CreateIndex != 5 {
		t.Fatalf("bootstrap token %+v", tok)
	}
	if tx.ACLToken(nil, AnonymousAccessor) == nil || tx.ACLPolicy(nil, PolicyGlobalManagement) == nil {
		t.Fatal("anonymous token or management policy missing")
	}
	if got := tx.ACLTokenBySecretHash(hashA); got == nil || got.AccessorID != "root" {
		t.Fatalf("lookup by hash: %+v", got)
	}
	tx.Commit()
	tx = st.WriteTxn(6)
	if _, e := tx.ACLBootstrap(ACLToken{AccessorID: "root2", SecretHash: hashB}); e == nil || e.Code != CodeACLBootstrapped {
		t.Fatalf("second bootstrap: %v", e)
	}
	tx.Abort()
}

func TestACLObjectRules(t *testing.T) {
	st := NewStore()
	tx := st.WriteTxn(1)
	if _, e := tx.ACLBootstrap(ACLToken{AccessorID: "root", SecretHash: hashA}); e != nil {
		t.Fatal(e)
	}
	p := ACLPolicy{Name: "ops", Rules: []ACLRule{{Resource: "service", Prefix: "web", Access: "write"}}}
	if _, _, e := tx.UpsertACLPolicy(p, true); e != nil {
		t.Fatal(e)
	}
	cases := []struct {
		name string
		do   func() *Error
		code string
		msg  string
	}{
		{"policy exists", func() *Error { _, _, e := tx.UpsertACLPolicy(p, true); return e }, CodeConflict, "already exists"},
		{"role with unknown policy", func() *Error {
			_, _, e := tx.UpsertACLRole(ACLRole{Name: "r", Policies: []string{"nope"}}, true)
			return e
		}, CodeInvalid, "policies[0]"},
		{"token with unknown role", func() *Error {
			_, e := tx.CreateACLToken(ACLToken{AccessorID: "t1", SecretHash: hashB, Roles: []string{"nope"}})
			return e
		}, CodeInvalid, "roles[0]"},
		{"token reusing a secret", func() *Error {
			_, e := tx.CreateACLToken(ACLToken{AccessorID: "t2", SecretHash: hashA})
			return e
		}, CodeConflict, "exists"},
		{"delete built-in policy", func() *Error { _, e := tx.DeleteACLPolicy(PolicyGlobalManagement); return e }, CodeConflict, "built in"},
		{"delete anonymous token", func() *Error { _, e := tx.DeleteACLToken(AnonymousAccessor); return e }, CodeConflict, "anonymous"},
		{"delete unknown token", func() *Error { _, e := tx.DeleteACLToken("ghost"); return e }, CodeNotFound, "not found"},
	}
	for _, c := range cases {
		e := c.do()
		if e == nil || e.Code != c.code || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s: %v, want %s containing %q", c.name, e, c.code, c.msg)
		}
	}
	// A policy in use cannot be deleted until its users let go of it.
	if _, e := tx.CreateACLToken(ACLToken{AccessorID: "t3", SecretHash: hashB, Policies: []string{"ops"}}); e != nil {
		t.Fatal(e)
	}
	if _, e := tx.DeleteACLPolicy("ops"); e == nil || e.Code != CodeConflict || !strings.Contains(e.Message, "token t3") {
		t.Fatalf("delete used policy: %v", e)
	}
	empty := []string{}
	if _, _, e := tx.UpdateACLToken("t3", ACLTokenPatch{Policies: &empty}); e != nil {
		t.Fatal(e)
	}
	if _, e := tx.DeleteACLPolicy("ops"); e != nil {
		t.Fatal(e)
	}
	tx.Commit()
}

func TestValidateACLPolicy(t *testing.T) {
	cases := []struct {
		p     ACLPolicy
		field string
	}{
		{ACLPolicy{Name: ""}, "name"},
		{ACLPolicy{Name: "a b"}, "name"},
		{ACLPolicy{Name: "p", Rules: []ACLRule{{Resource: "node", Access: "read"}}}, "rules[0].resource"},
		{ACLPolicy{Name: "p", Rules: []ACLRule{{Resource: "service", Access: "admin"}}}, "rules[0].access"},
		{ACLPolicy{Name: "p", Rules: []ACLRule{{Resource: "service", Access: "read"}, {Resource: "cluster", Prefix: "x", Access: "read"}}}, "rules[1].prefix"},
		{ACLPolicy{Name: "p", Description: strings.Repeat("d", 300)}, "description"},
		{ACLPolicy{Name: "p", Rules: []ACLRule{{Resource: "config", Prefix: "app/", Access: "deny"}}}, ""},
	}
	for _, c := range cases {
		e := ValidateACLPolicy(&c.p)
		switch {
		case c.field == "" && e != nil:
			t.Errorf("%+v: unexpected %v", c.p, e)
		case c.field != "" && (e == nil || e.Field != c.field):
			t.Errorf("%+v: %v, want field %s", c.p, e, c.field)
		}
	}
}

func TestACLSurvivesDumpAndLoad(t *testing.T) {
	st := NewStore()
	tx := st.WriteTxn(1)
	if _, e := tx.ACLBootstrap(ACLToken{AccessorID: "root", SecretHash: hashA}); e != nil {
		t.Fatal(e)
	}
	if _, _, e := tx.UpsertACLRole(ACLRole{Name: "r", Policies: []string{PolicyGlobalManagement}}, true); e != nil {
		t.Fatal(e)
	}
	tx.Commit()
	d := st.ReadTxn().Dump()
	st2 := NewStore()
	if err := st2.Restore(func(tx *Tx) error { return tx.Load(d) }); err != nil {
		t.Fatal(err)
	}
	d2 := st2.ReadTxn().Dump()
	if !reflect.DeepEqual(d, d2) {
		t.Fatalf("dump differs after load:\n%+v\n%+v", d, d2)
	}
	if len(d2.ACLTokens) != 2 || len(d2.ACLRoles) != 1 || d2.ACL == nil || st2.ReadTxn().ACLMeta() == nil {
		t.Fatalf("acl state not restored: %+v", d2)
	}
}
