package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// exchange is one request the fake API expects and the answer it gives.
type exchange struct {
	method, path, query string // wanted; path as sent (escaped)
	body                string // wanted body: JSON compared by value, else byte for byte; "" = none
	token               string // wanted X-Nexus-Token ("" = header absent)
	exactBody           bool   // compare the body byte for byte even when it is JSON

	status int // default 200
	header map[string]string
	resp   string
}

type request struct {
	method, path, query, body, token string
}

// fakeAPI answers requests from a script, in order, and records them.
type fakeAPI struct {
	mu     sync.Mutex
	script []exchange
	got    []request
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	n := len(f.got)
	f.got = append(f.got, request{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(body), r.Header.Get("X-Nexus-Token")})
	f.mu.Unlock()
	if n >= len(f.script) {
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, `{"error":{"code":"unexpected","message":"request not in the script"}}`)
		return
	}
	ex := f.script[n]
	for k, v := range ex.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	if ex.status != 0 {
		w.WriteHeader(ex.status)
	}
	io.WriteString(w, ex.resp)
}

func (f *fakeAPI) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) != len(f.script) {
		t.Errorf("API got %d requests, want %d: %+v", len(f.got), len(f.script), f.got)
	}
	for i := 0; i < len(f.got) && i < len(f.script); i++ {
		got, want := f.got[i], f.script[i]
		if got.method != want.method || got.path != want.path || got.query != want.query {
			t.Errorf("request %d: got %s %s?%s, want %s %s?%s", i, got.method, got.path, got.query, want.method, want.path, want.query)
		}
		if want.exactBody && got.body != want.body || !sameBody(got.body, want.body) {
			t.Errorf("request %d: body %s, want %s", i, got.body, want.body)
		}
		if got.token != want.token {
			t.Errorf("request %d: token %q, want %q", i, got.token, want.token)
		}
	}
}

func sameBody(got, want string) bool {
	var g, w any
	if json.Unmarshal([]byte(got), &g) == nil && json.Unmarshal([]byte(want), &w) == nil {
		return reflect.DeepEqual(g, w)
	}
	return got == want
}

type cliCase struct {
	name   string
	args   []string
	env    map[string]string // NEXUS_HTTP_ADDR defaults to the fake API
	stdin  string
	script []exchange

	code       int
	stdout     string   // exact
	stderr     []string // substrings of stderr
	noStderr   bool
	stdoutHave []string // substrings, when stdout is not compared exactly
}

// run runs one case against a fresh fake API; "ADDR" in args is replaced
// by the fake API's URL.
func (tc cliCase) run(t *testing.T) {
	t.Helper()
	api := &fakeAPI{script: tc.script}
	srv := httptest.NewServer(api)
	defer srv.Close()
	env := map[string]string{"NEXUS_HTTP_ADDR": srv.Listener.Addr().String()}
	for k, v := range tc.env {
		env[k] = v
	}
	args := make([]string, len(tc.args))
	for i, a := range tc.args {
		args[i] = strings.ReplaceAll(a, "ADDR", srv.URL)
	}
	var stdout, stderr bytes.Buffer
	code := Run(args, strings.NewReader(tc.stdin), &stdout, &stderr, func(k string) string { return env[k] })
	if code != tc.code {
		t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
	}
	if tc.stdoutHave == nil && stdout.String() != tc.stdout {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), tc.stdout)
	}
	for _, s := range tc.stdoutHave {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
		}
	}
	for _, s := range tc.stderr {
		if !strings.Contains(stderr.String(), s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
		}
	}
	if tc.noStderr && stderr.Len() > 0 {
		t.Errorf("unexpected stderr:\n%s", stderr.String())
	}
	api.check(t)
}

const (
	instWeb1 = `{"id":"web-1","service":"web","type":"http","address":"10.0.0.1","port":9001,"tags":["v1","blue"],"metadata":{"zone":"a"},"node":"n1","status":"passing","checks":[],"create_index":10,"modify_index":12}`
	instWeb2 = `{"id":"web-2","service":"web","type":"http","address":"10.0.0.2","port":9002,"tags":[],"node":"n2","status":"critical","create_index":11,"modify_index":13}`
	svcWeb   = `{"name":"web","type":"http","tags":["v1"],"instances":[` + instWeb1 + `,` + instWeb2 + `]}`
	svcDB    = `{"name":"db","type":"tcp","tags":[],"instances":[{"id":"db-1"}]}`
)

func TestServices(t *testing.T) {
	for _, tc := range []cliCase{
		{
			name: "list follows paging",
			args: []string{"services", "list"},
			script: []exchange{
				{method: "GET", path: "/services", header: map[string]string{"X-Nexus-Next": "db"}, resp: `[` + svcWeb + `]`},
				{method: "GET", path: "/services", query: "after=db", resp: `[` + svcDB + `]`},
			},
			stdout: "NAME  TYPE  INSTANCES  TAGS\n" +
				"web   http  2          v1\n" +
				"db    tcp   1\n",
			noStderr: true,
		},
		{
			name: "list json merges pages",
			args: []string{"services", "list", "--format", "json", "--consistent"},
			script: []exchange{
				{method: "GET", path: "/services", query: "consistent", header: map[string]string{"X-Nexus-Next": "b"}, resp: `[{"name":"a","type":"http"}]`},
				{method: "GET", path: "/services", query: "after=b&consistent", resp: `[{"name":"b","type":"x&y"}]`},
			},
			stdout: "[\n  {\n    \"name\": \"a\",\n    \"type\": \"http\"\n  },\n  {\n    \"name\": \"b\",\n    \"type\": \"x&y\"\n  }\n]\n",
		},
		{
			name:   "get table",
			args:   []string{"services", "get", "web", "--stale"},
			script: []exchange{{method: "GET", path: "/services/web", query: "stale", resp: svcWeb}},
			stdout: "ID     ADDRESS   PORT  NODE  STATUS    TAGS\n" +
				"web-1  10.0.0.1  9001  n1    passing   v1,blue\n" +
				"web-2  10.0.0.2  9002  n2    critical\n",
		},
		{
			name:   "global flags before the command",
			args:   []string{"--timeout=2s", "--format", "json", "--stale", "config", "set", "k", "--", "-5"},
			script: []exchange{{method: "PUT", path: "/config/k", body: `-5`, resp: `{"key":"k","value":-5,"modify_index":9}`}},
			stdout: "{\n  \"key\": \"k\",\n  \"value\": -5,\n  \"modify_index\": 9\n}\n",
		},
		{
			name:   "get json is the body",
			args:   []string{"--format", "json", "services", "get", "web"},
			script: []exchange{{method: "GET", path: "/services/web", resp: `{"name":"web","type":"http","instances":[]}`}},
			stdout: "{\n  \"name\": \"web\",\n  \"type\": \"http\",\n  \"instances\": []\n}\n",
		},
		{
			name: "get not found",
			args: []string{"services", "get", "web"},
			script: []exchange{{method: "GET", path: "/services/web", status: 404,
				resp: `{"error":{"code":"not_found","message":"service \"web\" not found"}}`}},
			code:   1,
			stderr: []string{"Error: service \"web\" not found (not_found, HTTP 404)\n"},
		},
		{
			name:   "get missing name",
			args:   []string{"services", "get"},
			code:   2,
			stderr: []string{"Error: missing NAME", "Usage: nexus services get NAME"},
		},
		{
			name:   "get too many args",
			args:   []string{"services", "get", "a", "b"},
			code:   2,
			stderr: []string{`unexpected argument "b"`},
		},
		{
			name: "health",
			args: []string{"services", "health", "web"},
			script: []exchange{{method: "GET", path: "/services/web/health",
				resp: `{"service":"web","status":"critical","passing":1,"warning":0,"critical":1,"instances":[{"id":"web-1","node":"n1","status":"passing","output":""},{"id":"web-2","node":"n2","status":"critical","output":"dial tcp: refused\n"}]}`}},
			stdout: "web: critical (passing 1, warning 0, critical 1)\n" +
				"ID     NODE  STATUS    OUTPUT\n" +
				"web-1  n1    passing\n" +
				"web-2  n2    critical  dial tcp: refused\n",
		},
		{
			name: "register from flags",
			args: []string{"services", "register", "--name", "web", "--type", "http", "--address", "10.0.0.1", "--port", "9001",
				"--id", "web-1", "--tag", "v1", "--tag", "blue", "--meta", "zone=a", "--meta", "rack=r1=x", "--depends-on", "db",
				"--check-http", "http://10.0.0.1:9001/health", "--check-interval", "5s", "--check-timeout", "1s",
				"--deregister-critical-after", "1m"},
			script: []exchange{{method: "POST", path: "/services/register", status: 201, resp: instWeb1,
				body: `{"name":"web","type":"http","address":"10.0.0.1","port":9001,"id":"web-1","tags":["v1","blue"],
					"metadata":{"zone":"a","rack":"r1=x"},"depends_on":["db"],
					"check":{"http":"http://10.0.0.1:9001/health","interval":"5s","timeout":"1s"},
					"deregister_critical_after":"1m"}`}},
			stdout: "registered web/web-1 (modify_index 12)\n",
		},
		{
			name: "register ttl check, update answer",
			args: []string{"services", "register", "--name", "web", "--type", "http", "--address", "10.0.0.1", "--port", "9001", "--check-ttl", "10s"},
			script: []exchange{{method: "POST", path: "/services/register", status: 200, resp: instWeb1,
				body: `{"name":"web","type":"http","address":"10.0.0.1","port":9001,"check":{"ttl":"10s"}}`}},
			stdout: "updated web/web-1 (modify_index 12)\n",
		},
		{
			name:  "register from stdin, json output",
			args:  []string{"services", "register", "--file", "-", "--format=json"},
			stdin: `{"name":"web","type":"http","port":1}`,
			script: []exchange{{method: "POST", path: "/services/register", status: 201, resp: `{"id":"web-1","modify_index":3}`,
				body: `{"name":"web","type":"http","port":1}`}},
			stdout: "{\n  \"id\": \"web-1\",\n  \"modify_index\": 3\n}\n",
		},
		{
			name:   "register file is not JSON",
			args:   []string{"services", "register", "--file", "-"},
			stdin:  `name: web`,
			code:   1,
			stderr: []string{"not valid JSON"},
		},
		{
			name:   "register file excludes flags",
			args:   []string{"services", "register", "--file", "-", "--name", "web"},
			code:   2,
			stderr: []string{"--file excludes --name"},
		},
		{
			name:   "register needs name and type",
			args:   []string{"services", "register", "--name", "web"},
			code:   2,
			stderr: []string{"--name and --type are required"},
		},
		{
			name:   "register one check only",
			args:   []string{"services", "register", "--name", "web", "--type", "http", "--check-ttl", "5s", "--check-tcp", "h:1"},
			code:   2,
			stderr: []string{"one of --check-ttl"},
		},
		{
			name:   "register bad duration",
			args:   []string{"services", "register", "--name", "web", "--type", "http", "--check-ttl", "5 sec"},
			code:   2,
			stderr: []string{"--check-ttl"},
		},
		{
			name:   "register bad meta",
			args:   []string{"services", "register", "--meta", "novalue"},
			code:   2,
			stderr: []string{"KEY=VALUE"},
		},
		{
			name: "register conflict",
			args: []string{"services", "register", "--name", "web", "--type", "tcp"},
			script: []exchange{{method: "POST", path: "/services/register", status: 409, body: `{"name":"web","type":"tcp"}`,
				resp: `{"error":{"code":"type_conflict","message":"service \"web\" has type http"}}`}},
			code:   1,
			stderr: []string{"Error: service \"web\" has type http (type_conflict, HTTP 409)"},
		},
		{
			name:   "deregister service",
			args:   []string{"services", "deregister", "web"},
			script: []exchange{{method: "DELETE", path: "/services/web", resp: `{"deregistered":2}`}},
			stdout: "deregistered web (2 instances)\n",
		},
		{
			name:   "deregister instance",
			args:   []string{"services", "deregister", "web", "web 1"},
			script: []exchange{{method: "DELETE", path: "/services/web/instances/web%201", resp: `{}`}},
			stdout: "deregistered web/web 1\n",
		},
		{
			name: "heartbeat with status after args",
			args: []string{"services", "heartbeat", "web", "web-1", "--status", "warning", "--output", "slow"},
			script: []exchange{{method: "PUT", path: "/services/web/instances/web-1/heartbeat",
				body: `{"status":"warning","output":"slow"}`, resp: `{}`}},
			stdout: "heartbeat sent for web/web-1\n",
		},
		{
			name:   "heartbeat without body",
			args:   []string{"services", "heartbeat", "web", "web-1"},
			script: []exchange{{method: "PUT", path: "/services/web/instances/web-1/heartbeat", resp: `{}`}},
			stdout: "heartbeat sent for web/web-1\n",
		},
		{
			name:   "heartbeat missing id",
			args:   []string{"services", "heartbeat", "web"},
			code:   2,
			stderr: []string{"missing ID"},
		},
		{
			name: "heartbeat owner unavailable",
			args: []string{"services", "heartbeat", "web", "web-1"},
			script: []exchange{{method: "PUT", path: "/services/web/instances/web-1/heartbeat", status: 503,
				resp: `{"error":{"code":"owner_unavailable","message":"node n2 unreachable"}}`}},
			code:   1,
			stderr: []string{"Error: node n2 unreachable (owner_unavailable, HTTP 503)"},
		},
		{
			name:   "discover",
			args:   []string{"discover", "http", "--tag", "v1", "--all", "--service", "web"},
			script: []exchange{{method: "GET", path: "/discover/http", query: "all=true&service=web&tag=v1", resp: `[` + instWeb1 + `]`}},
			stdout: "SERVICE  ID     ADDRESS   PORT  NODE  STATUS   TAGS\n" +
				"web      web-1  10.0.0.1  9001  n1    passing  v1,blue\n",
		},
		{
			name:   "discover needs type",
			args:   []string{"discover", "--all"},
			code:   2,
			stderr: []string{"missing TYPE"},
		},
	} {
		t.Run(tc.name, tc.run)
	}
}

func TestConfig(t *testing.T) {
	valueFile := filepath.Join(t.TempDir(), "value.json")
	if err := os.WriteFile(valueFile, []byte(`{"html": "<b>&</b>"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []cliCase{
		{
			name:   "get prints the value",
			args:   []string{"config", "get", "app/db/pool"},
			script: []exchange{{method: "GET", path: "/config/app/db/pool", resp: `{"key":"app/db/pool","value":{"max":20,"hosts":["a"]},"modify_index":41}`}},
			stdout: "{\n  \"max\": 20,\n  \"hosts\": [\n    \"a\"\n  ]\n}\n",
		},
		{
			name:   "get json prints the entry",
			args:   []string{"config", "get", "k", "--format", "json", "--consistent"},
			script: []exchange{{method: "GET", path: "/config/k", query: "consistent", resp: `{"key":"k","value":"s","modify_index":4}`}},
			stdout: "{\n  \"key\": \"k\",\n  \"value\": \"s\",\n  \"modify_index\": 4\n}\n",
		},
		{
			name:   "set string value with cas after args",
			args:   []string{"config", "set", "app/name", "hello <world>", "--cas", "3"},
			script: []exchange{{method: "PUT", path: "/config/app/name", query: "cas=3", body: `"hello <world>"`, exactBody: true, resp: `{"key":"app/name","value":"hello world","modify_index":7}`}},
			stdout: "set app/name (modify_index 7)\n",
		},
		{
			name:   "set JSON value",
			args:   []string{"config", "set", "app/db/pool", `{"max": 20}`},
			script: []exchange{{method: "PUT", path: "/config/app/db/pool", body: `{"max":20}`, resp: `{"key":"app/db/pool","value":{"max":20},"modify_index":8}`}},
			stdout: "set app/db/pool (modify_index 8)\n",
		},
		{
			name:   "set number, cas 0 means create",
			args:   []string{"config", "set", "--cas=0", "n", "20"},
			script: []exchange{{method: "PUT", path: "/config/n", query: "cas=0", body: `20`, resp: `{"key":"n","value":20,"modify_index":9}`}},
			stdout: "set n (modify_index 9)\n",
		},
		{
			name:   "set negative number after --",
			args:   []string{"config", "set", "n", "--", "-5"},
			script: []exchange{{method: "PUT", path: "/config/n", body: `-5`, resp: `{"key":"n","value":-5,"modify_index":9}`}},
			stdout: "set n (modify_index 9)\n",
		},
		{
			name:   "set from stdin file",
			args:   []string{"config", "set", "motd", "--file", "-"},
			stdin:  "line one\nline two\n",
			script: []exchange{{method: "PUT", path: "/config/motd", body: `"line one\nline two\n"`, resp: `{"key":"motd","value":"x","modify_index":2}`}},
			stdout: "set motd (modify_index 2)\n",
		},
		{
			name:   "set from file, JSON kept as written",
			args:   []string{"config", "set", "page", "--file", valueFile},
			script: []exchange{{method: "PUT", path: "/config/page", body: `{"html": "<b>&</b>"}` + "\n", exactBody: true, resp: `{"key":"page","value":{},"modify_index":2}`}},
			stdout: "set page (modify_index 2)\n",
		},
		{
			name:   "set json output",
			args:   []string{"config", "set", "k", "true", "--format", "json"},
			script: []exchange{{method: "PUT", path: "/config/k", body: `true`, resp: `{"key":"k","value":true,"modify_index":2}`}},
			stdout: "{\n  \"key\": \"k\",\n  \"value\": true,\n  \"modify_index\": 2\n}\n",
		},
		{
			name: "set cas conflict",
			args: []string{"config", "set", "k", "1", "--cas", "2"},
			script: []exchange{{method: "PUT", path: "/config/k", query: "cas=2", body: `1`, status: 409,
				resp: `{"error":{"code":"cas_conflict","message":"modify_index is 5, not 2"}}`}},
			code:   1,
			stderr: []string{"Error: modify_index is 5, not 2 (cas_conflict, HTTP 409)\n"},
		},
		{
			name:   "set missing value",
			args:   []string{"config", "set", "k"},
			code:   2,
			stderr: []string{"missing VALUE"},
		},
		{
			name:   "set value and file",
			args:   []string{"config", "set", "k", "v", "--file", "x"},
			code:   2,
			stderr: []string{"not both"},
		},
		{
			name:   "set bad cas",
			args:   []string{"config", "set", "k", "v", "--cas", "x"},
			code:   2,
			stderr: []string{"invalid value \"x\" for flag -cas"},
		},
		{
			name:   "delete with cas",
			args:   []string{"config", "delete", "app/x", "--cas", "0"},
			script: []exchange{{method: "DELETE", path: "/config/app/x", query: "cas=0", resp: `{"key":"app/x","modify_index":50}`}},
			stdout: "deleted app/x (modify_index 50)\n",
		},
		{
			name: "list with prefix, paging and truncation",
			args: []string{"config", "list", "--prefix", "app/"},
			script: []exchange{
				{method: "GET", path: "/config", query: "prefix=app%2F", header: map[string]string{"X-Nexus-Next": "app/b"},
					resp: `[{"key":"app/a","value":"` + strings.Repeat("x", 70) + `","modify_index":3}]`},
				{method: "GET", path: "/config", query: "after=app%2Fb&prefix=app%2F",
					resp: `[{"key":"app/b","value":{"n": 1},"modify_index":12}]`},
			},
			stdout: "KEY    MODIFY_INDEX  VALUE\n" +
				"app/a  3             \"" + strings.Repeat("x", 56) + "...\n" +
				"app/b  12            {\"n\":1}\n",
		},
		{
			name:   "list empty json",
			args:   []string{"config", "list", "--format", "json"},
			script: []exchange{{method: "GET", path: "/config", resp: `[]`}},
			stdout: "[]\n",
		},
	} {
		t.Run(tc.name, tc.run)
	}
}

func TestRoutes(t *testing.T) {
	route := `{"id":"r-web","hosts":["api.example"],"paths":["/web/"],"match":"prefix","methods":["GET","POST"],"service":"web","strip_path":true,"priority":5,"timeout":"5s","rate_limit":{"rps":100}}`
	for _, tc := range []cliCase{
		{
			name:   "list",
			args:   []string{"routes", "list"},
			script: []exchange{{method: "GET", path: "/gateway/routes", resp: `[` + route + `,{"id":"r2","service":"api","paths":["/"]}]`}},
			stdout: "ID     SERVICE  HOSTS        PATHS  MATCH   METHODS   PRIORITY\n" +
				"r-web  web      api.example  /web/  prefix  GET,POST  5\n" +
				"r2     api                   /                        0\n",
		},
		{
			name:   "get",
			args:   []string{"routes", "get", "r-web"},
			script: []exchange{{method: "GET", path: "/gateway/routes/r-web", resp: route}},
			stdout: "id:         r-web\nhosts:      [\"api.example\"]\npaths:      [\"/web/\"]\nmatch:      prefix\n" +
				"methods:    [\"GET\",\"POST\"]\nservice:    web\nstrip_path: true\npriority:   5\ntimeout:    5s\n" +
				"rate_limit: {\"rps\":100}\n",
		},
		{
			name: "add from flags; --timeout is the route's",
			args: []string{"routes", "add", "--id", "r-web", "--host", "api.example", "--path", "/web/", "--path", "/w/",
				"--method", "get", "--service", "web", "--strip-path", "--priority", "0", "--timeout", "5s",
				"--retries", "0", "--load-balancer", "least_conn", "--http-timeout", "3s"},
			script: []exchange{{method: "POST", path: "/gateway/routes", status: 201, resp: route,
				body: `{"id":"r-web","hosts":["api.example"],"paths":["/web/","/w/"],"methods":["GET"],"service":"web",
					"strip_path":true,"priority":0,"timeout":"5s","retries":0,"load_balancer":"least_conn"}`}},
			stdout: "added route r-web (service web)\n",
		},
		{
			name: "add minimal",
			args: []string{"routes", "add", "--service", "web", "--path", "/"},
			script: []exchange{{method: "POST", path: "/gateway/routes", status: 201, resp: `{"id":"r1","service":"web"}`,
				body: `{"service":"web","paths":["/"]}`}},
			stdout: "added route r1 (service web)\n",
		},
		{
			name:  "add from file",
			args:  []string{"routes", "add", "--file", "-", "--format", "json"},
			stdin: route,
			script: []exchange{{method: "POST", path: "/gateway/routes", status: 201, body: route,
				resp: `{"id":"r-web"}`}},
			stdout: "{\n  \"id\": \"r-web\"\n}\n",
		},
		{
			name:   "a --timeout before the command is the HTTP timeout",
			args:   []string{"--timeout", "3s", "routes", "add", "--service", "web"},
			script: []exchange{{method: "POST", path: "/gateway/routes", status: 201, body: `{"service":"web"}`, resp: `{"id":"r1","service":"web"}`}},
			stdout: "added route r1 (service web)\n",
		},
		{
			name:   "add needs service",
			args:   []string{"routes", "add", "--path", "/"},
			code:   2,
			stderr: []string{"--service is required"},
		},
		{
			name:   "add bad route timeout",
			args:   []string{"routes", "add", "--service", "web", "--timeout", "soon"},
			code:   2,
			stderr: []string{"--timeout"},
		},
		{
			name: "add invalid",
			args: []string{"routes", "add", "--service", "web", "--match", "regex"},
			script: []exchange{{method: "POST", path: "/gateway/routes", status: 400, body: `{"service":"web","match":"regex"}`,
				resp: `{"error":{"code":"invalid","message":"match: must be prefix or exact"}}`}},
			code:   1,
			stderr: []string{"Error: match: must be prefix or exact (invalid, HTTP 400)"},
		},
		{
			name:   "delete",
			args:   []string{"routes", "delete", "r-web"},
			script: []exchange{{method: "DELETE", path: "/gateway/routes/r-web", resp: `{}`}},
			stdout: "deleted route r-web\n",
		},
		{
			name:   "delete missing id",
			args:   []string{"routes", "delete"},
			code:   2,
			stderr: []string{"missing ID"},
		},
	} {
		t.Run(tc.name, tc.run)
	}
}

func TestCluster(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "snap.bin")
	for _, tc := range []cliCase{
		{
			name: "members",
			args: []string{"members"},
			script: []exchange{{method: "GET", path: "/cluster/members",
				resp: `[{"name":"n1","address":"10.0.0.1:8301","status":"alive","raft":"leader","http_addr":"10.0.0.1:8500","gateway_addr":"10.0.0.1:8080"},
				        {"name":"n2","address":"10.0.0.2:8301","status":"failed","raft":"voter","http_addr":"10.0.0.2:8500","gateway_addr":"10.0.0.2:8080"}]`}},
			stdout: "NAME  ADDRESS        STATUS  RAFT    HTTP           GATEWAY\n" +
				"n1    10.0.0.1:8301  alive   leader  10.0.0.1:8500  10.0.0.1:8080\n" +
				"n2    10.0.0.2:8301  failed  voter   10.0.0.2:8500  10.0.0.2:8080\n",
		},
		{
			name: "raft peers",
			args: []string{"raft", "peers"},
			script: []exchange{{method: "GET", path: "/cluster/raft",
				resp: `{"term":3,"commit_index":40,"applied_index":40,"servers":[{"id":"n1","address":"10.0.0.1:8300","suffrage":"voter","leader":true},{"id":"n2","address":"10.0.0.2:8300","suffrage":"voter","leader":false}]}`}},
			stdout: "ID  ADDRESS        SUFFRAGE  LEADER\n" +
				"n1  10.0.0.1:8300  voter     yes\n" +
				"n2  10.0.0.2:8300  voter\n",
		},
		{
			name:   "raft remove-peer",
			args:   []string{"raft", "remove-peer", "n2"},
			script: []exchange{{method: "DELETE", path: "/cluster/peers/n2", resp: `{}`}},
			stdout: "removed n2 from Raft\n",
		},
		{
			name: "raft remove-peer alive",
			args: []string{"raft", "remove-peer", "n2"},
			script: []exchange{{method: "DELETE", path: "/cluster/peers/n2", status: 409,
				resp: `{"error":{"code":"member_alive","message":"n2 is alive; run nexus leave on it"}}`}},
			code:   1,
			stderr: []string{"(member_alive, HTTP 409)"},
		},
		{
			name:   "raft without subcommand",
			args:   []string{"raft"},
			code:   2,
			stderr: []string{"unknown command \"raft\"", "Usage: nexus"},
		},
		{
			name:   "leader",
			args:   []string{"leader"},
			script: []exchange{{method: "GET", path: "/cluster/leader", resp: `{"node":"n1","raft_addr":"10.0.0.1:8300","http_addr":"10.0.0.1:8500"}`}},
			stdout: "NODE  RAFT_ADDR      HTTP_ADDR\nn1    10.0.0.1:8300  10.0.0.1:8500\n",
		},
		{
			name: "no leader",
			args: []string{"leader"},
			script: []exchange{{method: "GET", path: "/cluster/leader", status: 503, header: map[string]string{"Retry-After": "1"},
				resp: `{"error":{"code":"no_leader","message":"no known leader"}}`}},
			code:   1,
			stderr: []string{"Error: no known leader (no_leader, HTTP 503)"},
		},
		{
			name: "status",
			args: []string{"status"},
			script: []exchange{{method: "GET", path: "/status",
				resp: `{"node":"n1","version":"0.1.0","raft":{"state":"leader","term":3,"leader":"n1","commit_index":41,"applied_index":40},"members":[{},{},{}],"services":2,"routes":1,"config_entries":5}`}},
			stdout: "Node:           n1\nVersion:        0.1.0\nRaft state:     leader (term 3)\nLeader:         n1\n" +
				"Commit index:   41\nApplied index:  40\nMembers:        3\nServices:       2\nRoutes:         1\nConfig entries: 5\n",
		},
		{
			name:   "status json",
			args:   []string{"status", "--format", "json"},
			script: []exchange{{method: "GET", path: "/status", resp: `{"node":"n1","services":2}`}},
			stdout: "{\n  \"node\": \"n1\",\n  \"services\": 2\n}\n",
		},
		{
			name:       "leave",
			args:       []string{"leave"},
			script:     []exchange{{method: "POST", path: "/cluster/leave", resp: `{}`}},
			stdoutHave: []string{"is leaving the cluster"},
		},
		{
			name:   "snapshot save",
			args:   []string{"snapshot", "save", snap},
			script: []exchange{{method: "GET", path: "/cluster/snapshot", resp: "SNAPDATA\x00\x01"}},
			stdout: "saved snapshot to " + snap + " (10 bytes)\n",
		},
		{
			name:   "snapshot restore",
			args:   []string{"snapshot", "restore", "-"},
			stdin:  "SNAPDATA\x00\x01",
			script: []exchange{{method: "PUT", path: "/cluster/snapshot", body: "SNAPDATA\x00\x01", resp: `{}`}},
			stdout: "restored snapshot from -\n",
		},
		{
			name: "audit list with limit stops paging",
			args: []string{"audit", "list", "--resource-type", "config", "--limit", "2"},
			script: []exchange{
				{method: "GET", path: "/audit", query: "limit=2&resource_type=config", header: map[string]string{"X-Nexus-Next": "c1"},
					resp: `[{"raft_index":9,"time":"2025-01-01T00:00:00Z","actor":"anonymous","action":"set","resource_type":"config","resource":"a","node":"n1"}]`},
				{method: "GET", path: "/audit", query: "after=c1&limit=2&resource_type=config", header: map[string]string{"X-Nexus-Next": "c2"},
					resp: `[{"raft_index":8,"action":"delete","resource_type":"config","resource":"b"},{"raft_index":7}]`},
			},
			stdout: "INDEX  TIME                  ACTOR      ACTION  TYPE    RESOURCE  NODE\n" +
				"9      2025-01-01T00:00:00Z  anonymous  set     config  a         n1\n" +
				"8                                       delete  config  b\n",
		},
		{
			name:   "acl bootstrap",
			args:   []string{"acl", "bootstrap"},
			script: []exchange{{method: "POST", path: "/acl/bootstrap", resp: `{"accessor_id":"a1","secret_id":"s1","policies":["global-management"]}`}},
			stdout: "Accessor ID: a1\nSecret ID:   s1\nPolicies:    global-management\n",
		},
	} {
		t.Run(tc.name, tc.run)
	}
	b, err := os.ReadFile(snap)
	if err != nil || string(b) != "SNAPDATA\x00\x01" {
		t.Errorf("snapshot file = %q, %v", b, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestGlobalFlags(t *testing.T) {
	for _, tc := range []cliCase{
		{
			name:   "token from env",
			args:   []string{"members"},
			env:    map[string]string{"NEXUS_TOKEN": "envtok"},
			script: []exchange{{method: "GET", path: "/cluster/members", token: "envtok", resp: `[]`}},
			stdout: "NAME  ADDRESS  STATUS  RAFT  HTTP  GATEWAY\n",
		},
		{
			name:   "token flag beats env",
			args:   []string{"members", "--token", "flagtok"},
			env:    map[string]string{"NEXUS_TOKEN": "envtok"},
			script: []exchange{{method: "GET", path: "/cluster/members", token: "flagtok", resp: `[]`}},
			stdout: "NAME  ADDRESS  STATUS  RAFT  HTTP  GATEWAY\n",
		},
		{
			name:   "http-addr flag with scheme beats env",
			args:   []string{"leader", "--http-addr", "ADDR/"},
			env:    map[string]string{"NEXUS_HTTP_ADDR": "127.0.0.1:1"},
			script: []exchange{{method: "GET", path: "/cluster/leader", resp: `{"node":"n1"}`}},
			stdout: "NODE  RAFT_ADDR  HTTP_ADDR\nn1\n",
		},
		{
			name:   "bad format",
			args:   []string{"members", "--format", "yaml"},
			code:   2,
			stderr: []string{"--format must be table or json"},
		},
		{
			name:   "consistent and stale",
			args:   []string{"members", "--consistent", "--stale"},
			code:   2,
			stderr: []string{"exclude each other"},
		},
		{
			name:   "unknown flag",
			args:   []string{"members", "--bogus"},
			code:   2,
			stderr: []string{"flag provided but not defined: -bogus", "Usage: nexus members"},
		},
		{
			name:   "unknown command",
			args:   []string{"frobnicate"},
			code:   2,
			stderr: []string{`unknown command "frobnicate"`, "services list"},
		},
		{
			name:   "help",
			args:   []string{"help"},
			code:   2,
			stderr: []string{"Usage: nexus <command>", "raft remove-peer NODE", "--http-addr"},
		},
		{
			name:   "no args",
			args:   nil,
			code:   2,
			stderr: []string{"Usage: nexus <command>"},
		},
		{
			name:   "subcommand help",
			args:   []string{"services", "register", "-h"},
			code:   2,
			stderr: []string{"Usage: nexus services register", "--check-ttl DUR", "Global flags"},
		},
		{
			name: "error body that is not JSON",
			args: []string{"members"},
			script: []exchange{{method: "GET", path: "/cluster/members", status: 502,
				resp: "upstream down"}},
			code:   1,
			stderr: []string{"Error: upstream down (HTTP 502)\n"},
		},
		{
			name: "repeated cursor stops",
			args: []string{"routes", "list"},
			script: []exchange{
				{method: "GET", path: "/gateway/routes", header: map[string]string{"X-Nexus-Next": "x"}, resp: `[]`},
				{method: "GET", path: "/gateway/routes", query: "after=x", header: map[string]string{"X-Nexus-Next": "x"}, resp: `[]`},
			},
			code:   1,
			stderr: []string{"repeated cursor"},
		},
		{
			name:   "unexpected answer",
			args:   []string{"services", "list"},
			script: []exchange{{method: "GET", path: "/services", resp: `{"not":"a list"}`}},
			code:   1,
			stderr: []string{"unexpected answer"},
		},
	} {
		t.Run(tc.name, tc.run)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var stdout, stderr bytes.Buffer
	code := Run([]string{"status"}, nil, &stdout, &stderr, func(k string) string {
		if k == "NEXUS_HTTP_ADDR" {
			return addr
		}
		return ""
	})
	if code != 1 || !strings.HasPrefix(stderr.String(), "Error: cannot reach nexus at "+addr+": ") {
		t.Errorf("code %d, stderr %q", code, stderr.String())
	}
}

func TestTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // lets the server notice the client hang up
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := Run([]string{"config", "set", "k", "v", "--timeout", "100ms", "--http-addr", srv.URL}, nil, &stdout, &stderr, nil)
	want := "Error: no answer from nexus at " + srv.URL + " within 100ms; the change may or may not have been applied\n"
	if code != 1 || stderr.String() != want {
		t.Errorf("code %d, stderr %q, want %q", code, stderr.String(), want)
	}
}

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8500":          "http://127.0.0.1:8500",
		"http://10.0.0.1:8500/":   "http://10.0.0.1:8500",
		"https://nexus.example:1": "https://nexus.example:1",
		"[::1]:8500":              "http://[::1]:8500",
	} {
		if got, err := baseURL(in); err != nil || got != want {
			t.Errorf("baseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := baseURL("http://"); err == nil {
		t.Error("baseURL(http://) accepted")
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		cas  string
	}{
		{[]string{"k", "v", "--cas", "3"}, []string{"k", "v"}, "3"},
		{[]string{"--cas", "3", "k", "v"}, []string{"k", "v"}, "3"},
		{[]string{"k", "--cas=3", "v"}, []string{"k", "v"}, "3"},
		{[]string{"k", "--", "--cas", "v"}, []string{"k", "--cas", "v"}, ""},
		{[]string{"-", "x"}, []string{"-", "x"}, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		cas := fs.String("cas", "", "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || !reflect.DeepEqual(pos, tc.pos) || *cas != tc.cas {
			t.Errorf("%q: pos %q cas %q err %v; want %q %q", tc.args, pos, *cas, err, tc.pos, tc.cas)
		}
	}
}

func TestUsageListsEveryCommand(t *testing.T) {
	var b bytes.Buffer
	Usage(&b)
	for _, cmd := range commands() {
		if !strings.Contains(b.String(), "  "+cmd.path) {
			t.Errorf("usage lacks %q", cmd.path)
		}
		if cmd.setup == nil || cmd.summary == "" {
			t.Errorf("command %q incomplete", cmd.path)
		}
	}
}
