package acl

import (
	"context"
	"strings"
	"testing"

	"github.com/nexus/nexus/registry"
)

func pol(name string, rules ...string) *registry.ACLPolicy {
	p := &registry.ACLPolicy{Name: name}
	for _, r := range rules {
		parts := strings.SplitN(r, ":", 3)
		p.Rules = append(p.Rules, registry.ACLRule{Resource: parts[0], Prefix: parts[1], Access: parts[2]})
	}
	return p
}

func TestAuthorizerMostSpecificRuleWins(t *testing.T) {
	a := NewAuthorizer([]*registry.ACLPolicy{
		pol("p1", "service::read", "service:web:write", "service:web-secret:deny", "config:app/:read"),
		pol("p2", "config:app/db/:write", "config:app/:deny", "cluster::read"),
	})
	cases := []struct {
		resource, name string
		access         Access
		want           bool
	}{
		{"service", "api", Read, true},
		{"service", "api", Write, false},
		{"service", "web", Write, true},
		{"service", "web-frontend", Write, true},
		{"service", "web-secret", Read, false},
		{"service", "web-secret-2", Write, false},
		// equal prefixes: deny beats read
		{"config", "app/x", Read, false},
		{"config", "app/db/url", Write, true},
		{"config", "other", Read, false},
		{"route", "r1", Read, false},
		{"cluster", "", Read, true},
		{"cluster", "", Write, false},
		{"acl", "", Read, false},
	}
	for _, c := range cases {
		if got := a.Allowed(c.resource, c.name, c.access); got != c.want {
			t.Errorf("Allowed(%s, %q, %s) = %v, want %v", c.resource, c.name, c.access, got, c.want)
		}
	}
	if a.IsManagement() {
		t.Error("IsManagement of a partial authorizer")
	}
	if !AllowAll().IsManagement() || !AllowAll().Allowed("acl", "", Write) {
		t.Error("AllowAll does not allow everything")
	}
	var none *Authorizer
	if none.Allowed("service", "x", Read) {
		t.Error("nil authorizer allowed a read")
	}
	if NewAuthorizer(nil).Allowed("service", "x", Read) {
		t.Error("empty authorizer allowed a read")
	}
}

// state builds a store holding a bootstrap, policies, a role and tokens.
func state(t *testing.T) *registry.Store {
	t.Helper()
	st := registry.NewStore()
	tx := st.WriteTxn(1)
	if _, e := tx.ACLBootstrap(registry.ACLToken{AccessorID: "root", SecretHash: HashSecret("root-secret")}); e != nil {
		t.Fatal(e)
	}
	tx.SetIndex(2)
	for _, p := range []*registry.ACLPolicy{pol("web-write", "service:web:write"), pol("read-all", "service::read", "config::read")} {
		if _, _, e := tx.UpsertACLPolicy(*p, true); e != nil {
			t.Fatal(e)
		}
	}
	if _, _, e := tx.UpsertACLRole(registry.ACLRole{Name: "readers", Policies: []string{"read-all"}}, true); e != nil {
		t.Fatal(e)
	}
	for _, tok := range []registry.ACLToken{
		{AccessorID: "web", SecretHash: HashSecret("web-secret"), Policies: []string{"web-write"}},
		{AccessorID: "reader", SecretHash: HashSecret("reader-secret"), Roles: []string{"readers"}},
		{AccessorID: "old", SecretHash: HashSecret("old-secret"), Policies: []string{"web-write"}, ExpirationTime: 1000},
	} {
		if _, e := tx.CreateACLToken(tok); e != nil {
			t.Fatal(e)
		}
	}
	tx.Commit()
	return st
}

func TestCheck(t *testing.T) {
	st := state(t)
	tx := st.ReadTxn()
	defer tx.Abort()
	cases := []struct {
		name     string
		id       Identity
		now      int64
		resource string
		res      string
		access   Access
		wantErr  bool
		unauth   bool
	}{
		{"management writes acl", Identity{Kind: Token, Accessor: "root"}, 10, "acl", "", Write, false, false},
		{"web token writes web", Identity{Kind: Token, Accessor: "web"}, 10, "service", "web", Write, false, false},
		{"web token cannot write api", Identity{Kind: Token, Accessor: "web"}, 10, "service", "api", Write, true, false},
		{"role grants read", Identity{Kind: Token, Accessor: "reader"}, 10, "config", "k", Read, false, false},
		{"role grants no write", Identity{Kind: Token, Accessor: "reader"}, 10, "config", "k", Write, true, false},
		{"unknown token", Identity{Kind: Token, Accessor: "nobody"}, 10, "service", "web", Read, true, true},
		{"expired token", Identity{Kind: Token, Accessor: "old"}, 1000, "service", "web", Write, true, true},
		{"not yet expired token", Identity{Kind: Token, Accessor: "old"}, 999, "service", "web", Write, false, false},
		{"anonymous has nothing", Identity{Kind: Anonymous}, 10, "service", "web", Read, true, true},
		{"anonymous accessor is not a token", Identity{Kind: Token, Accessor: registry.AnonymousAccessor}, 10, "service", "web", Read, true, true},
		{"external jwt with role", Identity{Kind: External, Subject: "alice", Roles: []string{"readers"}}, 10, "service", "x", Read, false, false},
		{"external jwt unknown role", Identity{Kind: External, Subject: "bob", Roles: []string{"admins"}}, 10, "service", "x", Read, true, false},
		{"expired jwt", Identity{Kind: External, Subject: "alice", Roles: []string{"readers"}, ExpiresAt: 5}, 10, "service", "x", Read, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Check(tx, c.id, c.now, c.resource, c.res, c.access)
			if (d != nil) != c.wantErr {
				t.Fatalf("Check = %v, want error %v", d, c.wantErr)
			}
			if d != nil && d.Unauthenticated != c.unauth {
				t.Fatalf("Unauthenticated = %v, want %v (%s)", d.Unauthenticated, c.unauth, d.Message)
			}
		})
	}
}

func TestAnonymousPolicy(t *testing.T) {
	st := state(t)
	tx := st.WriteTxn(3)
	ro := []string{"read-all"}
	if _, _, e := tx.UpdateACLToken(registry.AnonymousAccessor, registry.ACLTokenPatch{Policies: &ro}); e != nil {
		t.Fatal(e)
	}
	tx.Commit()
	rtx := st.ReadTxn()
	defer rtx.Abort()
	if d := Check(rtx, Identity{}, 10, "service", "web", Read); d != nil {
		t.Fatalf("anonymous read refused: %v", d)
	}
	if d := Check(rtx, Identity{}, 10, "service", "web", Write); d == nil || !d.Unauthenticated {
		t.Fatalf("anonymous write: %v, want unauthenticated", d)
	}
}

func TestSecretsAndActor(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSecret()
	if a == b || len(a) != 36 || strings.Count(a, "-") != 4 {
		t.Fatalf("secrets %q %q", a, b)
	}
	if HashSecret(a) == HashSecret(b) || len(HashSecret(a)) != 64 || HashSecret(a) == a {
		t.Fatal("hash")
	}
	for _, c := range []struct {
		id   Identity
		want string
	}{
		{Identity{}, "anonymous"},
		{Identity{Kind: Token, Accessor: "abc", Subject: "abc"}, "abc"},
		{Identity{Kind: External, Subject: "alice"}, "jwt:alice"},
	} {
		if got := c.id.Actor(); got != c.want {
			t.Errorf("Actor = %q, want %q", got, c.want)
		}
	}
	ctx := WithCredential(context.Background(), "s3cret")
	if CredentialFrom(ctx) != "s3cret" || CredentialFrom(context.Background()) != "" {
		t.Fatal("credential context")
	}
}
