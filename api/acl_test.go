package api

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

const testJWTSecret = "0123456789abcdef0123456789abcdef-test"

func aclHarness(t *testing.T, mod ...func(*Deps)) (*harness, string) {
	t.Helper()
	j, err := acl.NewJWTAuth(acl.JWTConfig{Secret: []byte(testJWTSecret), Expiry: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, append([]func(*Deps){func(d *Deps) { d.ACL = ACLOptions{Enabled: true, JWT: j} }}, mod...)...)
	var boot bootstrapAnswer
	h.must(h.do("POST", "/acl/bootstrap", nil), 200, &boot)
	if boot.SecretID == "" || boot.AccessorID == "" {
		t.Fatalf("bootstrap answer %+v", boot)
	}
	return h, boot.SecretID
}

// token creates a policy with rules and a token holding it; it returns
// the token's secret and accessor id.
func (h *harness) token(root, policy string, rules ...registry.ACLRule) (string, string) {
	h.t.Helper()
	h.must(h.do("POST", "/acl/policies", map[string]any{"name": policy, "rules": rules}, "X-Nexus-Token", root), 201, nil)
	var tok map[string]any
	h.must(h.do("POST", "/acl/tokens", map[string]any{"policies": []string{policy}, "description": policy}, "Authorization", "Bearer "+root), 201, &tok)
	secret, _ := tok["secret_id"].(string)
	accessor, _ := tok["accessor_id"].(string)
	if secret == "" || accessor == "" {
		h.t.Fatalf("token answer %v", tok)
	}
	return secret, accessor
}

func TestACLBootstrapOnlyOnce(t *testing.T) {
	h, root := aclHarness(t)
	before := h.dump()
	h.mustErr(h.do("POST", "/acl/bootstrap", nil), 403, registry.CodeACLBootstrapped)
	h.mustErr(h.do("POST", "/acl/bootstrap", nil, "X-Nexus-Token", root), 403, registry.CodeACLBootstrapped)
	h.assertUnchanged(before)
	// The management token works; the secret is stored as a hash only.
	h.must(h.do("GET", "/acl/tokens", nil, "X-Nexus-Token", root), 200, nil)
	if strings.Contains(string(h.do("GET", "/acl/tokens", nil, "X-Nexus-Token", root).body), root) {
		t.Fatal("a token list shows a secret")
	}
	tx := h.store.ReadTxn()
	defer tx.Abort()
	for _, tk := range tx.ACLTokens(nil) {
		if tk.SecretHash == root {
			t.Fatal("secret stored in clear")
		}
	}
}

func TestACLDisabledAnswers(t *testing.T) {
	h := newHarness(t)
	h.mustErr(h.do("POST", "/acl/bootstrap", nil), 400, CodeACLDisabled)
	// Everything else is open, as before.
	h.must(h.do("GET", "/services", nil), 200, nil)
}

func TestACLUnauthenticatedAndForbidden(t *testing.T) {
	h, root := aclHarness(t)
	web, webAccessor := h.token(root, "web-writer", registry.ACLRule{Resource: "service", Prefix: "web", Access: "write"})
	before := h.dump()
	cases := []struct {
		name         string
		method, path string
		body         any
		hdr          []string
		status       int
		code         string
	}{
		{"no token, write", "POST", "/services/register", reg("web", "http", "10.0.0.1", 80), nil, 401, CodeUnauthenticated},
		{"no token, named read", "GET", "/services/web", nil, nil, 401, CodeUnauthenticated},
		{"no token, list", "GET", "/services", nil, nil, 401, CodeUnauthenticated},
		{"no token, config", "PUT", "/config/app", `{"value":1}`, nil, 401, CodeUnauthenticated},
		{"unknown token", "GET", "/services/web", nil, []string{"X-Nexus-Token", "d0d0d0d0-0000-4000-8000-000000000000"}, 401, CodeUnauthenticated},
		{"other service", "POST", "/services/register", reg("db", "pg", "10.0.0.2", 5432), []string{"X-Nexus-Token", web}, 403, CodePermissionDenied},
		{"config", "PUT", "/config/app", `{"value":1}`, []string{"X-Nexus-Token", web}, 403, CodePermissionDenied},
		{"batch config", "POST", "/config", `{"entries":[{"key":"a","value":1}]}`, []string{"X-Nexus-Token", web}, 403, CodePermissionDenied},
		{"route", "POST", "/gateway/routes", `{"id":"r1","service":"web","paths":["/"]}`, []string{"X-Nexus-Token", web}, 403, CodePermissionDenied},
		{"acl", "POST", "/acl/tokens", `{}`, []string{"X-Nexus-Token", web}, 403, CodePermissionDenied},
		{"cluster", "GET", "/cluster/members", nil, []string{"X-Nexus-Token", web}, 403, CodePermissionDenied},
		{"metrics", "GET", "/metrics", nil, []string{"X-Nexus-Token", web}, 403, CodePermissionDenied},
		{"audit", "GET", "/audit", nil, []string{"X-Nexus-Token", web}, 403, CodePermissionDenied},
		{"snapshot", "GET", "/cluster/snapshot", nil, []string{"X-Nexus-Token", web}, 403, CodePermissionDenied},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			h.mustErr(h.do(c.method, c.path, c.body, c.hdr...), c.status, c.code)
			h.assertUnchanged(before)
		})
	}
	h.t = t
	// Open endpoints stay open.
	for _, p := range []string{"/health", "/cluster/leader"} {
		if r := h.do("GET", p, nil); r.status == 401 || r.status == 403 {
			t.Fatalf("%s: %d", p, r.status)
		}
	}
	// The token writes what it may; the audit actor is its accessor id.
	h.must(h.do("POST", "/services/register", reg("web", "http", "10.0.0.1", 80), "X-Nexus-Token", web), 201, nil)
	tx := h.store.ReadTxn()
	recs := tx.Dump().Audit
	tx.Abort()
	last := recs[len(recs)-1]
	if last.Actor != webAccessor || last.ResourceType != registry.AuditInstance {
		t.Fatalf("last audit record %+v, want actor %s", last, webAccessor)
	}
	// Lists are filtered to what the caller may read.
	h.must(h.do("POST", "/services/register", reg("db", "pg", "10.0.0.9", 5432), "X-Nexus-Token", root), 201, nil)
	var svcs []map[string]any
	h.must(h.do("GET", "/services", nil, "X-Nexus-Token", web), 200, &svcs)
	if len(svcs) != 1 || svcs[0]["name"] != "web" {
		t.Fatalf("filtered list %v", svcs)
	}
	h.must(h.do("GET", "/services", nil, "X-Nexus-Token", root), 200, &svcs)
	if len(svcs) != 2 {
		t.Fatalf("management list %v", svcs)
	}
}

func TestACLRevocationAndExpiry(t *testing.T) {
	h, root := aclHarness(t)
	web, accessor := h.token(root, "web-writer", registry.ACLRule{Resource: "service", Prefix: "", Access: "write"})
	h.must(h.do("GET", "/services", nil, "X-Nexus-Token", web), 200, nil)
	h.must(h.do("DELETE", "/acl/tokens/"+accessor, nil, "X-Nexus-Token", root), 200, nil)
	h.mustErr(h.do("GET", "/services", nil, "X-Nexus-Token", web), 401, CodeUnauthenticated)

	var tok map[string]any
	h.must(h.do("POST", "/acl/tokens", map[string]any{"policies": []string{"web-writer"}, "expires_in": "1m"}, "X-Nexus-Token", root), 201, &tok)
	short := tok["secret_id"].(string)
	h.must(h.do("GET", "/services", nil, "X-Nexus-Token", short), 200, nil)
	h.now = h.now.Add(2 * time.Minute)
	h.mustErr(h.do("GET", "/services", nil, "X-Nexus-Token", short), 401, CodeUnauthenticated)

	for _, b := range []string{`{"expires_in":"soon"}`, `{"expires_in":"1ms"}`, `{"policies":["nope"]}`, `{"roles":["nope"]}`, `{"policies":"x"}`} {
		r := h.do("POST", "/acl/tokens", b, "X-Nexus-Token", root)
		if r.status != 400 {
			t.Fatalf("%s: %d %s", b, r.status, r.body)
		}
		var e apiErr
		_ = json.Unmarshal(r.body, &e)
		if e.Error.Field == "" {
			t.Fatalf("%s: no field named: %s", b, r.body)
		}
	}
}

// TestACLUnknownTokenAskedOfLeader: a token this replica does not know
// yet is resolved after catching up with the leader, before any 401.
func TestACLUnknownTokenAskedOfLeader(t *testing.T) {
	var calls atomic.Int32
	var pending []byte
	var h *harness
	h, root := aclHarness(t, func(d *Deps) {
		d.Consistency = fakeConsistency{fn: func(ctx context.Context) error {
			calls.Add(1)
			if pending != nil {
				// Catching up applies the token created on the leader.
				h.writer.mu.Lock()
				h.writer.index++
				h.fsm.Apply(&raft.Log{Index: h.writer.index, Type: raft.LogCommand, Data: pending})
				h.writer.mu.Unlock()
				pending = nil
			}
			return nil
		}}
	})
	_ = root
	secret, _ := acl.NewSecret()
	accessor, _ := acl.NewSecret()
	m := command.Meta{Actor: "leader", Time: h.now.UnixNano()}
	cmd, err := command.NewCodec().Encode(command.TypeACLTokenCreate, &command.ACLTokenCreate{Meta: m, Token: registry.ACLToken{
		AccessorID: accessor, SecretHash: acl.HashSecret(secret), Policies: []string{registry.PolicyGlobalManagement}}})
	if err != nil {
		t.Fatal(err)
	}
	pending = cmd
	h.must(h.do("GET", "/services", nil, "X-Nexus-Token", secret), 200, nil)
	if calls.Load() != 1 {
		t.Fatalf("consistent reads = %d, want 1", calls.Load())
	}
	h.mustErr(h.do("GET", "/services", nil, "X-Nexus-Token", "11111111-1111-4111-8111-111111111111"), 401, CodeUnauthenticated)
	if calls.Load() != 2 {
		t.Fatalf("consistent reads = %d, want 2", calls.Load())
	}
}

func TestACLJWTLoginAndExternal(t *testing.T) {
	h, root := aclHarness(t)
	web, _ := h.token(root, "svc-read", registry.ACLRule{Resource: "service", Access: "read"})
	var login loginAnswer
	h.must(h.do("POST", "/acl/login", nil, "X-Nexus-Token", web), 200, &login)
	if !acl.LooksLikeJWT(login.Token) {
		t.Fatalf("login token %q", login.Token)
	}
	h.must(h.do("GET", "/services", nil, "Authorization", "Bearer "+login.Token), 200, nil)
	h.mustErr(h.do("PUT", "/config/x", `{"value":1}`, "Authorization", "Bearer "+login.Token), 403, CodePermissionDenied)
	var self map[string]any
	h.must(h.do("GET", "/acl/token/self", nil, "Authorization", "Bearer "+login.Token), 200, &self)
	if self["description"] != "svc-read" {
		t.Fatalf("self %v", self)
	}
	h.mustErr(h.do("POST", "/acl/login", nil), 401, CodeUnauthenticated)

	// An identity provider's JWT: its roles claim maps to Nexus roles.
	h.must(h.do("POST", "/acl/roles", map[string]any{"name": "operators", "policies": []string{"svc-read"}}, "X-Nexus-Token", root), 201, nil)
	ext := signHS256(t, map[string]any{"sub": "alice", "iss": "nexus", "aud": "nexus", "roles": []string{"operators"},
		"exp": h.now.Add(time.Minute).Unix(), "nbf": h.now.Add(-time.Minute).Unix()})
	h.must(h.do("GET", "/services", nil, "Authorization", "Bearer "+ext), 200, nil)
	h.mustErr(h.do("DELETE", "/services/web", nil, "Authorization", "Bearer "+ext), 403, CodePermissionDenied)
	bad := []struct {
		name   string
		claims map[string]any
	}{
		{"expired", map[string]any{"sub": "alice", "iss": "nexus", "aud": "nexus", "exp": h.now.Add(-time.Minute).Unix()}},
		{"not yet valid", map[string]any{"sub": "alice", "iss": "nexus", "aud": "nexus", "exp": h.now.Add(time.Hour).Unix(), "nbf": h.now.Add(time.Minute).Unix()}},
		{"wrong issuer", map[string]any{"sub": "alice", "iss": "evil", "aud": "nexus", "exp": h.now.Add(time.Hour).Unix()}},
	}
	for _, b := range bad {
		h.mustErr(h.do("GET", "/services", nil, "Authorization", "Bearer "+signHS256(t, b.claims)), 401, CodeUnauthenticated)
	}
	wrongSig := signHS256With(t, []byte("another-secret-another-secret-xx"), map[string]any{"sub": "alice", "iss": "nexus", "aud": "nexus", "exp": h.now.Add(time.Hour).Unix()})
	h.mustErr(h.do("GET", "/services", nil, "Authorization", "Bearer "+wrongSig), 401, CodeUnauthenticated)
}

func signHS256(t *testing.T, claims map[string]any) string {
	return signHS256With(t, []byte(testJWTSecret), claims)
}

func signHS256With(t *testing.T, key []byte, claims map[string]any) string {
	t.Helper()
	raw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
