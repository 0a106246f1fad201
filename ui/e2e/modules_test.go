package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/ui"
)

// TestModules runs the console's pure functions in chromium, table by
// table: each case imports a module, calls a function with JSON
// arguments and compares the JSON result. The files come from ui.Handler
// on a loopback listener, so no cluster is needed.
func TestModules(t *testing.T) {
	requireChromium(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := ui.New()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if !h.Serve(ctx) {
			ctx.Error("not the console", fasthttp.StatusNotFound)
		}
	}}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	t.Cleanup(func() { _ = srv.Shutdown() })

	b := newBrowser(t, "http://"+ln.Addr().String())
	// The console's shell runs too: it reads /health and /acl/token/self,
	// which this server does not have; the modules do not care.
	b.load("/ui/")

	cases := []struct {
		module, fn string
		args       []any
		want       string
	}{
		{"diff.js", "diff", []any{nil, map[string]any{"a": 1}}, `[{"op":"add","path":"a","after":"1"}]`},
		{"diff.js", "diff", []any{map[string]any{"a": 1}, nil}, `[{"op":"del","path":"a","before":"1"}]`},
		{"diff.js", "diff", []any{map[string]any{"a": 1, "t": []string{"x"}}, map[string]any{"a": 2, "t": []string{"x", "y"}}},
			`[{"op":"chg","path":"a","before":"1","after":"2"},{"op":"add","path":"t[1]","after":"\"y\""}]`},
		{"diff.js", "diff", []any{20, 30}, `[{"op":"chg","path":"(value)","before":"20","after":"30"}]`},
		{"diff.js", "diff", []any{map[string]any{"m": map[string]any{}}, map[string]any{"m": map[string]any{"k": "v"}}},
			`[{"op":"del","path":"m","before":"{}"},{"op":"add","path":"m.k","after":"\"v\""}]`},
		{"pages/config.js", "jsonError", []any{`{"a": 1}`}, `""`},
		{"pages/config.js", "jsonError", []any{`  `}, `"A value is required (any JSON: \"text\", 20, true, {\"a\":1}, [1,2])."`},
		{"pages/overview.js", "gossipTolerance", []any{
			[]map[string]any{{"id": "n1", "suffrage": "voter"}, {"id": "n2", "suffrage": "voter"}, {"id": "n3", "suffrage": "voter"}, {"id": "n4", "suffrage": "nonvoter"}},
			[]map[string]any{{"name": "n1", "status": "alive"}, {"name": "n2", "status": "alive"}, {"name": "n3", "status": "failed"}, {"name": "n4", "status": "alive"}}},
			`{"voters":3,"alive":2,"tolerance":0}`},
		{"pages/overview.js", "gossipTolerance", []any{
			[]map[string]any{{"id": "a", "suffrage": "voter"}, {"id": "b", "suffrage": "voter"}, {"id": "c", "suffrage": "voter"}, {"id": "d", "suffrage": "voter"}, {"id": "e", "suffrage": "voter"}},
			[]map[string]any{{"name": "a", "status": "alive"}, {"name": "b", "status": "alive"}, {"name": "c", "status": "alive"}, {"name": "d", "status": "alive"}, {"name": "e", "status": "suspect"}}},
			`{"voters":5,"alive":4,"tolerance":1}`},
		{"pages/acl.js", "parseRules", []any{"service web write\nconfig * read\n\ncluster read"},
			`[{"resource":"service","prefix":"web","access":"write"},{"resource":"config","prefix":"","access":"read"},{"resource":"cluster","prefix":"","access":"read"}]`},
		{"pages/services.js", "registerBody", []any{map[string]string{"name": " web ", "type": "http", "address": "10.0.0.1", "port": "80", "id": "",
			"tags": "a, b c", "metadata": "zone=a\n\nrack = 4\nflag", "check_kind": "http", "check": "http://h/health", "check_interval": "5s"}},
			`{"name":"web","type":"http","address":"10.0.0.1","port":80,"tags":["a","b","c"],"metadata":{"zone":"a","rack":"4","flag":""},"check":{"http":"http://h/health","interval":"5s"}}`},
		{"pages/services.js", "registerBody", []any{map[string]string{"name": "db", "type": "tcp", "address": "", "port": "", "id": "db-1",
			"tags": "", "metadata": "", "check_kind": "ttl", "check": "10s", "check_interval": ""}},
			`{"name":"db","type":"tcp","address":"","id":"db-1","check":{"ttl":"10s"}}`},
		{"pages/routes.js", "routeBody", []any{map[string]string{"id": "r1", "service": "web", "paths": "/a/ /b/", "match": "prefix", "load_balancer": "random",
			"strip_path": "on", "preserve_host": "", "hosts": "", "methods": "get, post", "priority": "", "hash_on": "", "timeout": "5s", "retries": "0",
			"rate_limit.rps": "10", "rate_limit.burst": "", "rate_limit.key": "", "rate_limit.scope": "cluster", "extra": `{"cache": {"ttl": "1s"}}`}},
			`{"id":"r1","service":"web","paths":["/a/","/b/"],"match":"prefix","load_balancer":"random","strip_path":true,"preserve_host":false,` +
				`"methods":["GET","POST"],"timeout":"5s","retries":0,"rate_limit":{"rps":10,"key":"ip","scope":"cluster"},"cache":{"ttl":"1s"}}`},
		{"pages/routes.js", "rates", []any{
			map[string]any{"t": 0, "byRoute": [][]any{{"r", map[string]int{"total": 10, "errors": 1}}}},
			map[string]any{"t": 2000, "byRoute": [][]any{{"r", map[string]int{"total": 30, "errors": 6}}, {"new", map[string]int{"total": 4, "errors": 0}}}}},
			`[["r",{"rps":10,"errorRate":0.25}],["new",{"rps":2,"errorRate":0}]]`},
		{"pages/sessions.js", "sessionBody", []any{map[string]string{"name": " worker 1 ", "ttl": "15s", "behavior": "release", "lock_delay": "", "node": ""}},
			`{"name":"worker 1","ttl":"15s","behavior":"release"}`},
		{"pages/sessions.js", "sessionBody", []any{map[string]string{}}, `{}`},
		{"maintenance.js", "maintPath", []any{map[string]string{"scope": "node", "node": "n2"}}, `"/maintenance/nodes/n2"`},
		{"maintenance.js", "maintPath", []any{map[string]string{"scope": "service", "service": "web"}}, `"/maintenance/services/web"`},
		{"maintenance.js", "maintPath", []any{map[string]string{"scope": "instance", "service": "web", "id": "web 1/a"}},
			`"/maintenance/services/web/instances/web%201%2Fa"`},
		{"maintenance.js", "findRecord", []any{[]map[string]string{{"scope": "service", "service": "web"}, {"scope": "instance", "service": "web", "id": "web-2"},
			{"scope": "node", "node": "n1"}}, map[string]string{"scope": "instance", "service": "web", "id": "web-2"}},
			`{"id":"web-2","scope":"instance","service":"web"}`},
		{"maintenance.js", "findRecord", []any{[]map[string]string{{"scope": "service", "service": "web"}, {"scope": "node", "node": "n1"}},
			map[string]string{"scope": "instance", "service": "web", "id": "web-1"}}, `null`},
		{"maintenance.js", "findRecord", []any{[]map[string]string{{"scope": "instance", "service": "db", "id": "x"}, {"scope": "node", "node": "n1"}},
			map[string]string{"scope": "node", "node": "n1"}}, `{"node":"n1","scope":"node"}`},
		{"prom.js", "parse", []any{"# HELP x y\nnexus_a{route=\"r\\\"1\",class=\"5xx\"} 3\nnexus_b 1.5e+00\n"},
			`[{"name":"nexus_a","labels":{"route":"r\"1","class":"5xx"},"value":3},{"name":"nexus_b","labels":{},"value":1.5}]`},
	}
	for _, c := range cases {
		args, _ := json.Marshal(c.args)
		t.Run(c.module+" "+c.fn+" "+string(args), func(t *testing.T) {
			b.step(t)
			// rates takes Maps and returns one: convert at the edges.
			js := fmt.Sprintf(`import('/ui/js/%s').then((m) => {
				let args = %s;
				if (%q === 'rates') args = args.map((a) => ({...a, byRoute: new Map(a.byRoute)}));
				let out = m[%q](...args);
				if (out instanceof Map) out = [...out.entries()];
				return JSON.stringify(out);
			})`, c.module, args, c.fn, c.fn)
			got := evalT[string](b, js)
			if got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
	b.t = t
	b.checkNoExceptions()
}
