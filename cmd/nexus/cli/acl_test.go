package cli

import (
	"os"
	"path/filepath"
	"testing"
)

const (
	policyWeb = `{"name":"web-read","description":"read web","rules":[{"resource":"service","prefix":"web","access":"read"},{"resource":"cluster","prefix":"","access":"read"}],"create_index":5,"modify_index":7}`
	roleOps   = `{"name":"ops","description":"operators","policies":["web-read","cfg-write"],"create_index":8,"modify_index":9}`
	tokenCI   = `{"accessor_id":"acc-1","description":"ci","policies":["web-read"],"roles":["ops"],"create_time":"2025-01-01T00:00:00Z","expiration_time":"2025-01-02T00:00:00Z","create_index":10,"modify_index":11}`
	tokenNew  = `{"accessor_id":"acc-1","secret_id":"sec-1","description":"ci","policies":["web-read"],"roles":["ops"],"create_time":"2025-01-01T00:00:00Z","expiration_time":"2025-01-02T00:00:00Z","create_index":10,"modify_index":10}`
)

func TestACLBootstrapAndLogin(t *testing.T) {
	for _, tc := range []cliCase{
		{
			name:   "bootstrap prints the secret and warns once",
			args:   []string{"acl", "bootstrap"},
			script: []exchange{{method: "POST", path: "/acl/bootstrap", resp: `{"accessor_id":"a1","secret_id":"s1","policies":["global-management"]}`}},
			stdout: "Accessor ID: a1\nSecret ID:   s1\nPolicies:    global-management\n",
			stderr: []string{"Secret ID is shown only once"},
		},
		{
			name:     "bootstrap json",
			args:     []string{"acl", "bootstrap", "--format", "json"},
			script:   []exchange{{method: "POST", path: "/acl/bootstrap", resp: `{"accessor_id":"a1","secret_id":"s1"}`}},
			stdout:   "{\n  \"accessor_id\": \"a1\",\n  \"secret_id\": \"s1\"\n}\n",
			noStderr: true,
		},
		{
			name: "bootstrap done already",
			args: []string{"acl", "bootstrap"},
			script: []exchange{{method: "POST", path: "/acl/bootstrap", status: 403,
				resp: `{"error":{"code":"acl_bootstrapped","message":"ACL bootstrap already done"}}`}},
			code:   1,
			stderr: []string{"Error: ACL bootstrap already done (acl_bootstrapped, HTTP 403)\n"},
		},
		{
			name: "login sends the token",
			args: []string{"acl", "login", "--token", "sec-1"},
			script: []exchange{{method: "POST", path: "/acl/login", token: "sec-1",
				resp: `{"token":"eyJ.x.y","expires_at":"2025-01-01T01:00:00Z","accessor_id":"acc-1"}`}},
			stdout:   "Token:       eyJ.x.y\nExpires at:  2025-01-01T01:00:00Z\nAccessor ID: acc-1\n",
			noStderr: true,
		},
		{
			name: "login token from env, json",
			args: []string{"acl", "login", "--format", "json"},
			env:  map[string]string{"NEXUS_TOKEN": "sec-env"},
			script: []exchange{{method: "POST", path: "/acl/login", token: "sec-env",
				resp: `{"token":"eyJ.x.y"}`}},
			stdout: "{\n  \"token\": \"eyJ.x.y\"\n}\n",
		},
		{
			name:   "login needs a token",
			args:   []string{"acl", "login"},
			code:   2,
			stderr: []string{"Error: --token (or $NEXUS_TOKEN) is required", "Usage: nexus acl login"},
		},
		{
			name: "login with an unknown token",
			args: []string{"acl", "login", "--token", "nope"},
			script: []exchange{{method: "POST", path: "/acl/login", token: "nope", status: 401,
				resp: `{"error":{"code":"unauthenticated","message":"unknown token"}}`}},
			code:   1,
			stderr: []string{"Error: unknown token (unauthenticated, HTTP 401)"},
		},
	} {
		t.Run(tc.name, tc.run)
	}
}

func TestACLPolicy(t *testing.T) {
	dir := t.TempDir()
	wholeFile := filepath.Join(dir, "policy.json")
	// as `acl policy get --format json` prints it: the indexes are dropped
	if err := os.WriteFile(wholeFile, []byte(policyWeb), 0o644); err != nil {
		t.Fatal(err)
	}
	const wholeBody = `{"name":"web-read","description":"read web","rules":[{"resource":"service","prefix":"web","access":"read"},{"resource":"cluster","prefix":"","access":"read"}]}`
	for _, tc := range []cliCase{
		{
			name: "create from --rule flags",
			args: []string{"acl", "policy", "create", "--name", "web-read", "--description", "read web",
				"--rule", "service:web:read", "--rule", "cluster::read", "--token", "mgmt"},
			script: []exchange{{method: "POST", path: "/acl/policies", token: "mgmt", status: 201, resp: policyWeb,
				body: wholeBody}},
			stdout:   "created policy web-read (modify_index 7)\n",
			noStderr: true,
		},
		{
			name: "create: a prefix may hold colons, no description",
			args: []string{"acl", "policy", "create", "--name", "db", "--rule", "config:app:db:write"},
			script: []exchange{{method: "POST", path: "/acl/policies", status: 201, resp: `{"name":"db","modify_index":3}`,
				body: `{"name":"db","description":"","rules":[{"resource":"config","prefix":"app:db","access":"write"}]}`}},
			stdout: "created policy db (modify_index 3)\n",
		},
		{
			name:  "create from a rules array on stdin",
			args:  []string{"acl", "policy", "create", "--name", "audit-read", "--rules-file", "-"},
			stdin: `[{"resource":"audit","prefix":"","access":"read"}]`,
			script: []exchange{{method: "POST", path: "/acl/policies", status: 201, resp: `{"name":"audit-read","modify_index":4}`,
				body: `{"name":"audit-read","description":"","rules":[{"resource":"audit","prefix":"","access":"read"}]}`}},
			stdout: "created policy audit-read (modify_index 4)\n",
		},
		{
			name:   "create from a whole policy file, json output",
			args:   []string{"acl", "policy", "create", "--rules-file", wholeFile, "--format", "json"},
			script: []exchange{{method: "POST", path: "/acl/policies", status: 201, resp: `{"name":"web-read"}`, body: wholeBody}},
			stdout: "{\n  \"name\": \"web-read\"\n}\n",
		},
		{
			name:  "create: flags beat the whole policy file",
			args:  []string{"acl", "policy", "create", "--rules-file", "-", "--name", "other", "--description", "d"},
			stdin: `{"name":"x","description":"y","rules":[]}`,
			script: []exchange{{method: "POST", path: "/acl/policies", status: 201, resp: `{"name":"other","modify_index":2}`,
				body: `{"name":"other","description":"d","rules":[]}`}},
			stdout: "created policy other (modify_index 2)\n",
		},
		{
			name:   "create needs --name",
			args:   []string{"acl", "policy", "create", "--rule", "service:web:read"},
			code:   2,
			stderr: []string{"Error: --name is required", "Usage: nexus acl policy create", "--rules-file FILE"},
		},
		{
			name:   "create needs rules",
			args:   []string{"acl", "policy", "create", "--name", "p"},
			code:   2,
			stderr: []string{"--rule or --rules-file is required"},
		},
		{
			name:   "unknown resource",
			args:   []string{"acl", "policy", "create", "--name", "p", "--rule", "svc:web:read"},
			code:   2,
			stderr: []string{`invalid value "svc:web:read" for flag -rule: unknown resource "svc" (want service, config, route, cluster, audit or acl)`},
		},
		{
			name:   "unknown access",
			args:   []string{"acl", "policy", "create", "--name", "p", "--rule", "service:web:admin"},
			code:   2,
			stderr: []string{`flag -rule: unknown access "admin" (want read, write or deny)`},
		},
		{
			name:   "rule without a prefix part",
			args:   []string{"acl", "policy", "create", "--name", "p", "--rule", "cluster:read"},
			code:   2,
			stderr: []string{`flag -rule: want RESOURCE:PREFIX:ACCESS (PREFIX may be empty, e.g. cluster::read), got "cluster:read"`},
		},
		{
			name:   "--rule and --rules-file exclude each other",
			args:   []string{"acl", "policy", "create", "--name", "p", "--rule", "acl::read", "--rules-file", wholeFile},
			code:   2,
			stderr: []string{"--rule and --rules-file exclude each other"},
		},
		{
			name:   "rules file is not JSON",
			args:   []string{"acl", "policy", "create", "--name", "p", "--rules-file", "-"},
			stdin:  "service:web:read",
			code:   1,
			stderr: []string{"stdin: not valid JSON"},
		},
		{
			name:   "rules file is neither rules nor a policy",
			args:   []string{"acl", "policy", "create", "--name", "p", "--rules-file", "-"},
			stdin:  `"service"`,
			code:   1,
			stderr: []string{"--rules-file -: want a JSON array of rules or a policy object"},
		},
		{
			name:   "rules file has the wrong shape",
			args:   []string{"acl", "policy", "create", "--name", "p", "--rules-file", "-"},
			stdin:  `{"rules":"all"}`,
			code:   1,
			stderr: []string{"--rules-file -: json: cannot unmarshal"},
		},
		{
			name: "create refused by the API",
			args: []string{"acl", "policy", "create", "--name", "web-read", "--rule", "route:r:deny"},
			script: []exchange{{method: "POST", path: "/acl/policies", status: 409,
				body: `{"name":"web-read","description":"","rules":[{"resource":"route","prefix":"r","access":"deny"}]}`,
				resp: `{"error":{"code":"conflict","message":"policy \"web-read\" exists"}}`}},
			code:   1,
			stderr: []string{`Error: policy "web-read" exists (conflict, HTTP 409)`},
		},
		{
			name: "list",
			args: []string{"acl", "policy", "list", "--token", "mgmt"},
			script: []exchange{{method: "GET", path: "/acl/policies", token: "mgmt",
				resp: `[{"name":"global-management","description":"everything","rules":[{"resource":"acl","prefix":"","access":"write"}]},` + policyWeb + `]`}},
			stdout: "NAME               DESCRIPTION  RULES\n" +
				"global-management  everything   acl::write\n" +
				"web-read           read web     service:web:read,cluster::read\n",
			noStderr: true,
		},
		{
			name:   "list json",
			args:   []string{"acl", "policy", "list", "--format", "json", "--consistent"},
			script: []exchange{{method: "GET", path: "/acl/policies", query: "consistent", resp: `[{"name":"p"}]`}},
			stdout: "[\n  {\n    \"name\": \"p\"\n  }\n]\n",
		},
		{
			name:   "get",
			args:   []string{"acl", "policy", "get", "web-read"},
			script: []exchange{{method: "GET", path: "/acl/policies/web-read", resp: policyWeb}},
			stdout: "Name:         web-read\nDescription:  read web\nRules:        service:web:read\n" +
				"              cluster::read\nCreate index: 5\nModify index: 7\n",
		},
		{
			name:   "get json",
			args:   []string{"acl", "policy", "get", "web-read", "--format", "json"},
			script: []exchange{{method: "GET", path: "/acl/policies/web-read", resp: `{"name":"web-read","rules":[]}`}},
			stdout: "{\n  \"name\": \"web-read\",\n  \"rules\": []\n}\n",
		},
		{
			name: "get not found",
			args: []string{"acl", "policy", "get", "nope"},
			script: []exchange{{method: "GET", path: "/acl/policies/nope", status: 404,
				resp: `{"error":{"code":"not_found","message":"policy \"nope\" not found"}}`}},
			code:   1,
			stderr: []string{`Error: policy "nope" not found (not_found, HTTP 404)`},
		},
		{
			name:   "get needs a name",
			args:   []string{"acl", "policy", "get"},
			code:   2,
			stderr: []string{"missing NAME"},
		},
		{
			name: "update rules keeps the description",
			args: []string{"acl", "policy", "update", "web-read", "--rule", "service:web:write", "--token", "mgmt"},
			script: []exchange{
				{method: "GET", path: "/acl/policies/web-read", token: "mgmt", resp: policyWeb},
				{method: "PUT", path: "/acl/policies/web-read", token: "mgmt", resp: `{"name":"web-read","modify_index":12}`,
					body: `{"description":"read web","rules":[{"resource":"service","prefix":"web","access":"write"}]}`},
			},
			stdout: "updated policy web-read (modify_index 12)\n",
		},
		{
			name: "update description keeps the rules",
			args: []string{"acl", "policy", "update", "web-read", "--description", ""},
			script: []exchange{
				{method: "GET", path: "/acl/policies/web-read", resp: policyWeb},
				{method: "PUT", path: "/acl/policies/web-read", resp: `{"name":"web-read","modify_index":13}`,
					body: `{"description":"","rules":[{"resource":"service","prefix":"web","access":"read"},{"resource":"cluster","prefix":"","access":"read"}]}`},
			},
			stdout: "updated policy web-read (modify_index 13)\n",
		},
		{
			name: "update everything: no read first",
			args: []string{"acl", "policy", "update", "web-read", "--description", "d", "--rule", "acl::deny"},
			script: []exchange{{method: "PUT", path: "/acl/policies/web-read", resp: `{"name":"web-read","modify_index":14}`,
				body: `{"description":"d","rules":[{"resource":"acl","prefix":"","access":"deny"}]}`}},
			stdout: "updated policy web-read (modify_index 14)\n",
		},
		{
			name: "update from a whole policy file",
			args: []string{"acl", "policy", "update", "web-read", "--rules-file", wholeFile, "--format", "json"},
			script: []exchange{{method: "PUT", path: "/acl/policies/web-read", resp: `{"name":"web-read"}`,
				body: `{"description":"read web","rules":[{"resource":"service","prefix":"web","access":"read"},{"resource":"cluster","prefix":"","access":"read"}]}`}},
			stdout: "{\n  \"name\": \"web-read\"\n}\n",
		},
		{
			name:   "update from a file naming another policy",
			args:   []string{"acl", "policy", "update", "other", "--rules-file", wholeFile},
			code:   2,
			stderr: []string{`--rules-file holds policy "web-read", not "other"`},
		},
		{
			name:   "update with nothing to change",
			args:   []string{"acl", "policy", "update", "web-read"},
			code:   2,
			stderr: []string{"nothing to update"},
		},
		{
			name:   "update has no --name",
			args:   []string{"acl", "policy", "update", "web-read", "--name", "x"},
			code:   2,
			stderr: []string{"flag provided but not defined: -name"},
		},
		{
			name: "update of a missing policy stops at the read",
			args: []string{"acl", "policy", "update", "nope", "--rule", "acl::read"},
			script: []exchange{{method: "GET", path: "/acl/policies/nope", status: 404,
				resp: `{"error":{"code":"not_found","message":"policy \"nope\" not found"}}`}},
			code:   1,
			stderr: []string{"(not_found, HTTP 404)"},
		},
		{
			name:   "delete escapes the name",
			args:   []string{"acl", "policy", "delete", "a b"},
			script: []exchange{{method: "DELETE", path: "/acl/policies/a%20b", resp: `{"name":"a b","modify_index":15}`}},
			stdout: "deleted policy a b\n",
		},
		{
			name:   "delete json",
			args:   []string{"acl", "policy", "delete", "web-read", "--format", "json"},
			script: []exchange{{method: "DELETE", path: "/acl/policies/web-read", resp: `{"name":"web-read","modify_index":15}`}},
			stdout: "{\n  \"name\": \"web-read\",\n  \"modify_index\": 15\n}\n",
		},
		{
			name: "delete without the right",
			args: []string{"acl", "policy", "delete", "web-read", "--token", "weak"},
			script: []exchange{{method: "DELETE", path: "/acl/policies/web-read", token: "weak", status: 403,
				resp: `{"error":{"code":"permission_denied","message":"acl:write needed"}}`}},
			code:   1,
			stderr: []string{"Error: acl:write needed (permission_denied, HTTP 403)"},
		},
		{
			name:   "policy without a subcommand",
			args:   []string{"acl", "policy"},
			code:   2,
			stderr: []string{`unknown command "acl policy"`, "acl policy create"},
		},
	} {
		t.Run(tc.name, tc.run)
	}
}

func TestACLRole(t *testing.T) {
	for _, tc := range []cliCase{
		{
			name: "create",
			args: []string{"acl", "role", "create", "--name", "ops", "--description", "operators",
				"--policy", "web-read", "--policy", "cfg-write", "--token", "mgmt"},
			script: []exchange{{method: "POST", path: "/acl/roles", token: "mgmt", status: 201, resp: roleOps,
				body: `{"name":"ops","description":"operators","policies":["web-read","cfg-write"]}`}},
			stdout:   "created role ops (modify_index 9)\n",
			noStderr: true,
		},
		{
			name:   "create json",
			args:   []string{"acl", "role", "create", "--name", "ops", "--policy", "p", "--format", "json"},
			script: []exchange{{method: "POST", path: "/acl/roles", status: 201, resp: `{"name":"ops"}`, body: `{"name":"ops","description":"","policies":["p"]}`}},
			stdout: "{\n  \"name\": \"ops\"\n}\n",
		},
		{
			name:   "create needs --name",
			args:   []string{"acl", "role", "create", "--policy", "p"},
			code:   2,
			stderr: []string{"Error: --name is required", "Usage: nexus acl role create"},
		},
		{
			name:   "create needs --policy",
			args:   []string{"acl", "role", "create", "--name", "ops"},
			code:   2,
			stderr: []string{"--policy is required"},
		},
		{
			name: "create with an unknown policy",
			args: []string{"acl", "role", "create", "--name", "ops", "--policy", "nope"},
			script: []exchange{{method: "POST", path: "/acl/roles", status: 400, body: `{"name":"ops","description":"","policies":["nope"]}`,
				resp: `{"error":{"code":"invalid","message":"unknown policy \"nope\"","field":"policies"}}`}},
			code:   1,
			stderr: []string{`Error: unknown policy "nope" (invalid, HTTP 400)`},
		},
		{
			name:   "list",
			args:   []string{"acl", "role", "list"},
			script: []exchange{{method: "GET", path: "/acl/roles", resp: `[` + roleOps + `,{"name":"empty","policies":[]}]`}},
			stdout: "NAME   DESCRIPTION  POLICIES\n" +
				"ops    operators    web-read,cfg-write\n" +
				"empty\n",
		},
		{
			name: "list follows paging",
			args: []string{"acl", "role", "list", "--format", "json"},
			script: []exchange{
				{method: "GET", path: "/acl/roles", header: map[string]string{"X-Nexus-Next": "b"}, resp: `[{"name":"a"}]`},
				{method: "GET", path: "/acl/roles", query: "after=b", resp: `[{"name":"b"}]`},
			},
			stdout: "[\n  {\n    \"name\": \"a\"\n  },\n  {\n    \"name\": \"b\"\n  }\n]\n",
		},
		{
			name:   "get",
			args:   []string{"acl", "role", "get", "ops", "--stale"},
			script: []exchange{{method: "GET", path: "/acl/roles/ops", query: "stale", resp: roleOps}},
			stdout: "Name:         ops\nDescription:  operators\nPolicies:     web-read, cfg-write\nCreate index: 8\nModify index: 9\n",
		},
		{
			name: "update policies keeps the description",
			args: []string{"acl", "role", "update", "ops", "--policy", "web-read"},
			script: []exchange{
				{method: "GET", path: "/acl/roles/ops", resp: roleOps},
				{method: "PUT", path: "/acl/roles/ops", resp: `{"name":"ops","modify_index":20}`,
					body: `{"description":"operators","policies":["web-read"]}`},
			},
			stdout: "updated role ops (modify_index 20)\n",
		},
		{
			name: "update description keeps the policies",
			args: []string{"acl", "role", "update", "ops", "--description", "on call"},
			script: []exchange{
				{method: "GET", path: "/acl/roles/ops", resp: roleOps},
				{method: "PUT", path: "/acl/roles/ops", resp: `{"name":"ops","modify_index":21}`,
					body: `{"description":"on call","policies":["web-read","cfg-write"]}`},
			},
			stdout: "updated role ops (modify_index 21)\n",
		},
		{
			name: "update everything: no read first",
			args: []string{"acl", "role", "update", "ops", "--description", "x", "--policy", "a", "--policy", "b"},
			script: []exchange{{method: "PUT", path: "/acl/roles/ops", resp: `{"name":"ops","modify_index":22}`,
				body: `{"description":"x","policies":["a","b"]}`}},
			stdout: "updated role ops (modify_index 22)\n",
		},
		{
			name:   "update with nothing to change",
			args:   []string{"acl", "role", "update", "ops"},
			code:   2,
			stderr: []string{"nothing to update: give --description or --policy"},
		},
		{
			name:   "delete",
			args:   []string{"acl", "role", "delete", "ops"},
			script: []exchange{{method: "DELETE", path: "/acl/roles/ops", resp: `{"name":"ops","modify_index":23}`}},
			stdout: "deleted role ops\n",
		},
		{
			name:   "delete needs a name",
			args:   []string{"acl", "role", "delete"},
			code:   2,
			stderr: []string{"missing NAME", "Usage: nexus acl role delete NAME"},
		},
	} {
		t.Run(tc.name, tc.run)
	}
}

func TestACLToken(t *testing.T) {
	const fullFields = "Accessor ID:     acc-1\n" +
		"Description:     ci\n" +
		"Policies:        web-read\n" +
		"Roles:           ops\n" +
		"Create time:     2025-01-01T00:00:00Z\n" +
		"Expiration time: 2025-01-02T00:00:00Z\n" +
		"Create index:    10\n" +
		"Modify index:    11\n"
	for _, tc := range []cliCase{
		{
			name: "create prints the secret once",
			args: []string{"acl", "token", "create", "--description", "ci", "--policy", "web-read", "--role", "ops",
				"--expires-in", "24h", "--token", "mgmt"},
			script: []exchange{{method: "POST", path: "/acl/tokens", token: "mgmt", status: 201, resp: tokenNew,
				body: `{"description":"ci","policies":["web-read"],"roles":["ops"],"expires_in":"24h"}`}},
			stdout: "Accessor ID:     acc-1\n" +
				"Secret ID:       sec-1\n" +
				"Description:     ci\n" +
				"Policies:        web-read\n" +
				"Roles:           ops\n" +
				"Create time:     2025-01-01T00:00:00Z\n" +
				"Expiration time: 2025-01-02T00:00:00Z\n" +
				"Create index:    10\n" +
				"Modify index:    10\n",
			stderr: []string{"Note: the Secret ID is shown only once; store it now.\n"},
		},
		{
			name: "create minimal, never expires",
			args: []string{"acl", "token", "create"},
			script: []exchange{{method: "POST", path: "/acl/tokens", status: 201, body: `{}`,
				resp: `{"accessor_id":"acc-2","secret_id":"sec-2","policies":[],"roles":[],"create_time":"2025-01-01T00:00:00Z","create_index":3,"modify_index":3}`}},
			stdout: "Accessor ID:     acc-2\nSecret ID:       sec-2\nDescription:\nPolicies:\nRoles:\n" +
				"Create time:     2025-01-01T00:00:00Z\nExpiration time: never\nCreate index:    3\nModify index:    3\n",
			stderr: []string{"shown only once"},
		},
		{
			name: "create json has no note",
			args: []string{"acl", "token", "create", "--policy", "a", "--policy", "b", "--format", "json"},
			script: []exchange{{method: "POST", path: "/acl/tokens", status: 201, body: `{"policies":["a","b"]}`,
				resp: `{"accessor_id":"acc-3","secret_id":"sec-3"}`}},
			stdout:   "{\n  \"accessor_id\": \"acc-3\",\n  \"secret_id\": \"sec-3\"\n}\n",
			noStderr: true,
		},
		{
			name:   "create with a bad --expires-in",
			args:   []string{"acl", "token", "create", "--expires-in", "1 day"},
			code:   2,
			stderr: []string{`--expires-in: "1 day" is not a positive duration`},
		},
		{
			name:   "create with a negative --expires-in",
			args:   []string{"acl", "token", "create", "--expires-in", "-1h"},
			code:   2,
			stderr: []string{"--expires-in"},
		},
		{
			name:   "create has no --name",
			args:   []string{"acl", "token", "create", "--name", "x"},
			code:   2,
			stderr: []string{"flag provided but not defined: -name"},
		},
		{
			name: "list shows no secret",
			args: []string{"acl", "token", "list", "--token", "mgmt"},
			script: []exchange{{method: "GET", path: "/acl/tokens", token: "mgmt",
				resp: `[` + tokenCI + `,{"accessor_id":"acc-0","description":"bootstrap","policies":["global-management"],"roles":[]}]`}},
			stdout: "ACCESSOR_ID  POLICIES           ROLES  EXPIRES               DESCRIPTION\n" +
				"acc-1        web-read           ops    2025-01-02T00:00:00Z  ci\n" +
				"acc-0        global-management         never                 bootstrap\n",
			noStderr: true,
		},
		{
			name:   "list json",
			args:   []string{"acl", "token", "list", "--format", "json"},
			script: []exchange{{method: "GET", path: "/acl/tokens", resp: `[]`}},
			stdout: "[]\n",
		},
		{
			name:   "get",
			args:   []string{"acl", "token", "get", "acc-1"},
			script: []exchange{{method: "GET", path: "/acl/tokens/acc-1", resp: tokenCI}},
			stdout: fullFields,
		},
		{
			name: "get not found",
			args: []string{"acl", "token", "get", "acc-9"},
			script: []exchange{{method: "GET", path: "/acl/tokens/acc-9", status: 404,
				resp: `{"error":{"code":"not_found","message":"token not found"}}`}},
			code:   1,
			stderr: []string{"Error: token not found (not_found, HTTP 404)"},
		},
		{
			name:   "get needs an ID",
			args:   []string{"acl", "token", "get"},
			code:   2,
			stderr: []string{"missing ID"},
		},
		{
			name: "update sends only the fields given: roles, cleared policies",
			args: []string{"acl", "token", "update", "acc-1", "--role", "ops", "--role", "dev", "--policy", "", "--token", "mgmt"},
			script: []exchange{{method: "PUT", path: "/acl/tokens/acc-1", token: "mgmt", resp: `{"accessor_id":"acc-1","modify_index":30}`,
				body: `{"policies":[],"roles":["ops","dev"]}`}},
			stdout: "updated token acc-1 (modify_index 30)\n",
		},
		{
			name: "update description only, to empty",
			args: []string{"acl", "token", "update", "acc-1", "--description", ""},
			script: []exchange{{method: "PUT", path: "/acl/tokens/acc-1", resp: `{"accessor_id":"acc-1","modify_index":31}`,
				body: `{"description":""}`}},
			stdout: "updated token acc-1 (modify_index 31)\n",
		},
		{
			name: "update everything, json",
			args: []string{"acl", "token", "update", "acc-1", "--description", "d", "--policy", "p", "--role", "", "--format", "json"},
			script: []exchange{{method: "PUT", path: "/acl/tokens/acc-1", resp: `{"accessor_id":"acc-1"}`,
				body: `{"description":"d","policies":["p"],"roles":[]}`}},
			stdout: "{\n  \"accessor_id\": \"acc-1\"\n}\n",
		},
		{
			name: "update of an unknown token",
			args: []string{"acl", "token", "update", "acc-9", "--description", "x"},
			script: []exchange{{method: "PUT", path: "/acl/tokens/acc-9", status: 404, body: `{"description":"x"}`,
				resp: `{"error":{"code":"not_found","message":"token not found"}}`}},
			code:   1,
			stderr: []string{"(not_found, HTTP 404)"},
		},
		{
			name:   "update with nothing to change",
			args:   []string{"acl", "token", "update", "acc-1"},
			code:   2,
			stderr: []string{"nothing to update: give --description, --policy or --role"},
		},
		{
			name:   "update has no --expires-in",
			args:   []string{"acl", "token", "update", "acc-1", "--expires-in", "1h"},
			code:   2,
			stderr: []string{"flag provided but not defined: -expires-in"},
		},
		{
			name:   "delete",
			args:   []string{"acl", "token", "delete", "acc-1", "--token", "mgmt"},
			script: []exchange{{method: "DELETE", path: "/acl/tokens/acc-1", token: "mgmt", resp: `{"accessor_id":"acc-1","modify_index":32}`}},
			stdout: "deleted token acc-1\n",
		},
		{
			name:   "delete json",
			args:   []string{"acl", "token", "delete", "acc-1", "--format", "json"},
			script: []exchange{{method: "DELETE", path: "/acl/tokens/acc-1", resp: `{"accessor_id":"acc-1","modify_index":32}`}},
			stdout: "{\n  \"accessor_id\": \"acc-1\",\n  \"modify_index\": 32\n}\n",
		},
		{
			name:   "self with a token",
			args:   []string{"acl", "token", "self"},
			env:    map[string]string{"NEXUS_TOKEN": "sec-1"},
			script: []exchange{{method: "GET", path: "/acl/token/self", token: "sec-1", resp: tokenCI}},
			stdout: fullFields,
		},
		{
			name: "self with a JWT",
			args: []string{"acl", "token", "self", "--token", "eyJ.x.y"},
			script: []exchange{{method: "GET", path: "/acl/token/self", token: "eyJ.x.y",
				resp: `{"kind":"jwt","subject":"acc-1","roles":["ops"],"expires_at":"2025-01-01T01:00:00Z"}`}},
			stdout: "kind:       jwt\nsubject:    acc-1\nroles:      [\"ops\"]\nexpires_at: 2025-01-01T01:00:00Z\n",
		},
		{
			name:   "self json",
			args:   []string{"acl", "token", "self", "--format", "json", "--token", "t"},
			script: []exchange{{method: "GET", path: "/acl/token/self", token: "t", resp: `{"subject":"s"}`}},
			stdout: "{\n  \"subject\": \"s\"\n}\n",
		},
		{
			name: "self without a token",
			args: []string{"acl", "token", "self"},
			script: []exchange{{method: "GET", path: "/acl/token/self", status: 401,
				resp: `{"error":{"code":"unauthenticated","message":"no token"}}`}},
			code:   1,
			stderr: []string{"Error: no token (unauthenticated, HTTP 401)"},
		},
		{
			name:   "self takes no argument",
			args:   []string{"acl", "token", "self", "acc-1"},
			code:   2,
			stderr: []string{`unexpected argument "acc-1"`},
		},
	} {
		t.Run(tc.name, tc.run)
	}
}

func TestParseRule(t *testing.T) {
	for in, want := range map[string]aclRule{
		"service:web:read":    {"service", "web", "read"},
		"cluster::read":       {"cluster", "", "read"},
		"config:app:db:write": {"config", "app:db", "write"},
		"acl::deny":           {"acl", "", "deny"},
	} {
		got, err := parseRule(in)
		if err != nil || got != want {
			t.Errorf("parseRule(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for _, in := range []string{"", "service", "service:read", "Service:web:read", "service:web:READ", "service:web:", ":web:read"} {
		if r, err := parseRule(in); err == nil {
			t.Errorf("parseRule(%q) = %+v, want an error", in, r)
		}
	}
}
