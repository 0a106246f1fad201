package consul_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/nexus/nexus/api"
)

// TestHTTP_SessionsLocksTxnRefused: bad input to the session, lock and
// transaction endpoints is a 4xx naming the field, and changes nothing.
func TestHTTP_SessionsLocksTxnRefused(t *testing.T) {
	h := newHarness(t)
	if code, _, body := h.raw("PUT", "/v1/kv/app/k", "v"); code != 200 || body != "true" {
		t.Fatalf("seed: %d %s", code, body)
	}
	tx := h.store.ReadTxn()
	before := tx.Dump()
	tx.Abort()
	big := strings.Repeat("x", 512*1024+1)
	cases := []struct {
		name, method, path, body string
		status                   int
		field                    string // "" = no field, want is then a body substring
	}{
		{"create: malformed", "PUT", "/v1/session/create", `{"Name":`, 400, "invalid_json"},
		{"create: ttl too short", "PUT", "/v1/session/create", `{"TTL":"5s"}`, 400, "TTL"},
		{"create: ttl garbage", "PUT", "/v1/session/create", `{"TTL":"soon"}`, 400, "TTL"},
		{"create: behavior", "PUT", "/v1/session/create", `{"Behavior":"explode"}`, 400, "Behavior"},
		{"create: lock delay too long", "PUT", "/v1/session/create", `{"LockDelay":"61s"}`, 400, "LockDelay"},
		{"create: lock delay number too long", "PUT", "/v1/session/create", `{"LockDelay":61}`, 400, "LockDelay"},
		{"create: lock delay garbage", "PUT", "/v1/session/create", `{"LockDelay":"x"}`, 400, "LockDelay"},
		{"create: name", "PUT", "/v1/session/create", `{"Name":"a\tb"}`, 400, "Name"},
		{"create: unknown node", "PUT", "/v1/session/create", `{"Node":"n9"}`, 400, "Node"},
		{"create: no node checks", "PUT", "/v1/session/create", `{"NodeChecks":[]}`, 400, "NodeChecks"},
		{"create: another check", "PUT", "/v1/session/create", `{"Checks":["serfHealth","mem"]}`, 400, "Checks[1]"},
		{"create: service checks", "PUT", "/v1/session/create", `{"ServiceChecks":[{"ID":"service:web"}]}`, 400, "ServiceChecks"},
		{"create: namespace", "PUT", "/v1/session/create", `{"Namespace":"team"}`, 400, "Namespace"},
		{"create: an id of its own", "PUT", "/v1/session/create", `{"ID":"mine"}`, 400, "ID"},
		{"create: GET", "GET", "/v1/session/create", "", 405, "allowed: PUT"},
		{"destroy: bad id", "PUT", "/v1/session/destroy/a%20b", "", 400, "uuid"},
		{"renew: bad id", "PUT", "/v1/session/renew/a%20b", "", 400, "uuid"},
		{"info: bad id", "GET", "/v1/session/info/a%20b", "", 400, "uuid"},
		{"renew: unknown", "PUT", "/v1/session/renew/0b5e6c43-1f9a-4f2e-9d55-0e1c3e3c7a11", "", 404, "not_found"},
		{"list: unsupported parameter", "GET", "/v1/session/list?filter=x", "", 400, "filter"},
		{"acquire: bad session", "PUT", "/v1/kv/app/k?acquire=a%20b", "v", 400, "acquire"},
		{"acquire and release", "PUT", "/v1/kv/app/k?acquire=s&release=s", "v", 400, "release"},
		{"acquire: value too large", "PUT", "/v1/kv/app/k?acquire=s", big, 413, "value"},
		{"acquire: bad flags", "PUT", "/v1/kv/app/k?acquire=s&flags=x", "v", 400, "flags"},
		{"txn: not an array", "PUT", "/v1/txn", `{"KV":{}}`, 400, "invalid_json"},
		{"txn: verb", "PUT", "/v1/txn", `[{"KV":{"Verb":"nope","Key":"a"}}]`, 400, "[0].KV.Verb"},
		{"txn: key", "PUT", "/v1/txn", `[{"KV":{"Verb":"get","Key":"a b"}}]`, 400, "[0].KV.Key"},
		{"txn: unknown field", "PUT", "/v1/txn", `[{"KV":{"Verb":"get","Key":"a","Foo":1}}]`, 400, "[0].KV.Foo"},
		{"txn: namespace", "PUT", "/v1/txn", `[{"KV":{"Verb":"get","Key":"a","Namespace":"team"}}]`, 400, "[0].KV.Namespace"},
		{"txn: node op", "PUT", "/v1/txn", `[{"KV":{"Verb":"get","Key":"a"}},{"Node":{"Verb":"get","Node":{"Node":"n1"}}}]`, 400, "[1].Node"},
		{"txn: check op", "PUT", "/v1/txn", `[{"Check":{"Verb":"get"}}]`, 400, "[0].Check"},
		{"txn: no kind", "PUT", "/v1/txn", `[{}]`, 400, "[0]"},
		{"txn: bad base64", "PUT", "/v1/txn", `[{"KV":{"Verb":"set","Key":"a","Value":"!!"}}]`, 400, "[0].KV"},
		{"txn: session of a lock", "PUT", "/v1/txn", `[{"KV":{"Verb":"set","Key":"app/n","Value":"eA=="}},{"KV":{"Verb":"lock","Key":"a"}}]`, 400, "[1].KV.Session"},
		{"txn: blocking", "PUT", "/v1/txn?index=3", `[]`, 400, "index"},
		{"txn: value too large", "PUT", "/v1/txn", `[{"KV":{"Verb":"set","Key":"a","Value":"` + strings.Repeat("A", 700000) + `"}}]`, 413, "[0].KV.Value"},
		{"txn: GET", "GET", "/v1/txn", "", 405, "allowed: PUT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, hdr, body := h.raw(c.method, c.path, c.body)
			if code != c.status {
				t.Errorf("status %d, want %d: %s", code, c.status, body)
			}
			var e struct {
				Error struct{ Code, Field, Message string }
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("error body is not JSON: %s", body)
			}
			if e.Error.Field != c.field && e.Error.Code != c.field && !strings.Contains(body, c.field) {
				t.Errorf("answer %s does not name %q", body, c.field)
			}
			wantHeaders(t, hdr, true)
		})
	}
	tx = h.store.ReadTxn()
	defer tx.Abort()
	if after := tx.Dump(); !reflect.DeepEqual(before, after) {
		t.Fatalf("refused requests changed the store:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestACL_SessionsLocksTxn: the session resource names sessions by name;
// acquire needs write on the key; a transaction read or write on each.
func TestACL_SessionsLocksTxn(t *testing.T) {
	h := newHarness(t, func(o *harnessOpts) { o.acl = api.ACLOptions{Enabled: true} })
	root := h.bootstrap()
	tok := h.token(root, `{"name":"app","rules":[{"resource":"session","prefix":"app-","access":"write"},`+
		`{"resource":"config","prefix":"app/","access":"write"}]}`)
	as := func(token string) []string { return []string{"X-Consul-Token", token} }
	create := func(token, name string) (int, string) {
		code, _, body := h.raw("PUT", "/v1/session/create", `{"Name":"`+name+`"}`, as(token)...)
		var out struct{ ID string }
		_ = json.Unmarshal([]byte(body), &out)
		return code, out.ID
	}
	code, mine := create(tok, "app-1")
	if code != 200 || mine == "" {
		t.Fatalf("create app-1 with the token: %d", code)
	}
	_, theirs := create(root, "ops-1")
	if theirs == "" {
		t.Fatal("create ops-1 as root")
	}
	cases := []struct {
		name, method, path, body string
		token                    string
		status                   int
		want                     string
	}{
		{"create outside the prefix", "PUT", "/v1/session/create", `{"Name":"ops-2"}`, tok, 403, ""},
		{"anonymous create", "PUT", "/v1/session/create", `{"Name":"app-2"}`, "", 401, ""},
		{"anonymous list", "GET", "/v1/session/list", "", "", 401, ""},
		{"list is filtered", "GET", "/v1/session/list", "", tok, 200, `"Name":"app-1"`},
		{"node list is filtered", "GET", "/v1/session/node/n1", "", tok, 200, `"Name":"app-1"`},
		{"info of its own", "GET", "/v1/session/info/" + mine, "", tok, 200, mine},
		{"info of another's", "GET", "/v1/session/info/" + theirs, "", tok, 403, ""},
		{"renew another's", "PUT", "/v1/session/renew/" + theirs, "", tok, 403, ""},
		{"destroy another's", "PUT", "/v1/session/destroy/" + theirs, "", tok, 403, ""},
		{"renew its own", "PUT", "/v1/session/renew/" + mine, "", tok, 200, mine},
		{"acquire a key it may write", "PUT", "/v1/kv/app/leader?acquire=" + mine, "me", tok, 200, "true"},
		{"acquire a key it may not write", "PUT", "/v1/kv/ops/leader?acquire=" + mine, "me", tok, 403, ""},
		{"txn reading a key it may not read", "PUT", "/v1/txn", `[{"KV":{"Verb":"set","Key":"app/x","Value":"eA=="}},{"KV":{"Verb":"get","Key":"ops/x"}}]`, tok, 403, `"field":"[1].KV.Key"`},
		{"txn within its keys", "PUT", "/v1/txn", `[{"KV":{"Verb":"check-session","Key":"app/leader","Session":"` + mine + `"}}]`, tok, 200, `"Session":"` + mine},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.token != "" {
				hdr = as(c.token)
			}
			code, _, body := h.raw(c.method, c.path, c.body, hdr...)
			if code != c.status || !strings.Contains(body, c.want) {
				t.Errorf("%d %s, want %d with %q", code, body, c.status, c.want)
			}
			if c.name == "list is filtered" && strings.Contains(body, "ops-1") {
				t.Errorf("the list shows a session the token may not read: %s", body)
			}
		})
	}
	// The create is audited with the token's identity.
	code, _, body := h.raw("GET", "/audit?resource_type=session&resource="+mine, "", "X-Nexus-Token", root)
	var recs []struct {
		Actor  string `json:"actor"`
		Action string `json:"action"`
	}
	if err := json.Unmarshal([]byte(body), &recs); code != 200 || err != nil || len(recs) != 1 || recs[0].Action != "create" ||
		recs[0].Actor == "" || recs[0].Actor == "anonymous" {
		t.Fatalf("audit of a Consul session create: %d %s", code, body)
	}
}
