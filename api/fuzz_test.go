package api

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Fuzz targets for the JSON decoders of the admin write endpoints. Each
// drives the real handler in-process (a fresh store and FSM per input, so a
// failure reproduces from its input alone) and asserts that hostile input
// never panics the handler, never answers 5xx and always answers JSON in
// the error shape.
//
//	go test ./api -run=^$ -fuzz=FuzzRegister -fuzztime=1m
//
// `make fuzz` runs every target for longer, `make fuzz-ci` briefly.

// fuzzServer is an API over a fresh single-node FSM holding one instance
// (web/web-1, TTL check) and one route (r1).
func fuzzServer(t *testing.T) *Server {
	t.Helper()
	store := registry.NewStore()
	codec := command.NewCodec()
	f := fsm.New(fsm.Deps{Store: store, Codec: codec})
	reg := prometheus.NewRegistry()
	srv, err := New(Deps{
		Writer: &fakeWriter{fsm: f}, Reader: fakeReader{store}, Cluster: &fakeCluster{name: "n1"}, Codec: codec,
		Logger: slog.New(slog.DiscardHandler), Registry: reg, Gatherer: reg, Version: "fuzz",
		Now: func() time.Time { return time.Unix(1700000000, 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range []struct{ method, uri, body string }{
		{"POST", "/services/register", `{"name":"web","type":"http","address":"127.0.0.1","port":9001,"id":"web-1","check":{"ttl":"10s"}}`},
		{"POST", "/gateway/routes", `{"id":"r1","paths":["/web/"],"service":"web"}`},
		{"PUT", "/config/app/x", `1`},
	} {
		if code, body := fuzzDo(srv, seed.method, seed.uri, []byte(seed.body)); code >= 300 {
			t.Fatalf("seed %s %s: %d %s", seed.method, seed.uri, code, body)
		}
	}
	return srv
}

// fuzzDo runs one request through the server's handler.
func fuzzDo(srv *Server, method, uri string, body []byte) (int, []byte) {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("nexus")
	req.SetBody(body)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	srv.Handler()(&ctx)
	return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...)
}

// checkFuzzAnswer fails on a 5xx, a body that is not JSON, or an error
// without a code.
func checkFuzzAnswer(t *testing.T, method, uri string, body []byte) {
	t.Helper()
	srv := fuzzServer(t)
	code, out := fuzzDo(srv, method, uri, body)
	if code >= 500 || code < 200 {
		t.Fatalf("%s %s with body %q: status %d, body %s", method, uri, body, code, out)
	}
	if !json.Valid(out) {
		t.Fatalf("%s %s with body %q: status %d, answer is not JSON: %q", method, uri, body, code, out)
	}
	if code >= 400 {
		var e apiErr
		if err := json.Unmarshal(out, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%s %s with body %q: status %d, not the error shape: %s", method, uri, body, code, out)
		}
	}
}

// garbage are seeds every target gets: empty, truncated, wrong types,
// deep nesting, huge numbers, invalid UTF-8.
func fuzzGarbage() []string {
	return []string{
		``, ` `, `{`, `}`, `null`, `[]`, `"x"`, `0`, `-1`, `1e400`, `true`,
		`{"":""}`, `{"name":{}}`, `{"port":"80"}`, `{"port":1e20}`,
		strings.Repeat(`[`, 10000), strings.Repeat(`{"a":`, 2000) + `1` + strings.Repeat(`}`, 2000),
		"{\"name\":\"\xff\xfe\"}", `{"name":"a\u0000b"}`, `{"a":1,"a":2}`,
	}
}

func addSeeds(f *testing.F, good ...string) {
	for _, s := range good {
		f.Add([]byte(s))
	}
	for _, s := range fuzzGarbage() {
		f.Add([]byte(s))
	}
}

func FuzzRegister(f *testing.F) {
	addSeeds(f,
		`{"name":"web","type":"http","address":"127.0.0.1","port":9001}`,
		`{"name":"db","type":"tcp","address":"10.0.0.1","port":5432,"id":"db-1","tags":["a"],"metadata":{"z":"a"},"depends_on":["web"],"check":{"tcp":"10.0.0.1:5432","interval":"5s"},"deregister_critical_after":"1m"}`,
		`{"name":"api","type":"http","address":"h","port":80,"check":{"http":"http://h:80/health","interval":"5s","timeout":"1s"}}`,
		`{"name":"web","type":"grpc","address":"127.0.0.1","port":9001}`,
		`{"name":"x","type":"http","address":"h","port":1,"check":{"ttl":"-5s"}}`,
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFuzzAnswer(t, "POST", "/services/register", body)
	})
}

func FuzzConfigPost(f *testing.F) {
	addSeeds(f,
		`{"key":"app/db/pool","value":20}`,
		`{"key":"app/x","value":{"a":[1,2]},"cas":0}`,
		`{"key":"app/x","value":2,"cas":3}`,
		`{"entries":[{"key":"a","value":1},{"key":"b","value":"x","cas":0}]}`,
		`{"entries":[]}`, `{"key":"/lead","value":1}`,
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFuzzAnswer(t, "POST", "/config", body)
	})
}

func FuzzConfigPut(f *testing.F) {
	for _, s := range []struct{ key, cas, body string }{
		{"app/db/pool", "", `20`},
		{"app/x", "0", `{"a":1}`},
		{"app/x", "1", `"v"`},
		{"a%2Fb", "-1", `null`},
		{"..", "x", `[`},
		{strings.Repeat("k", 600), "", `1`},
	} {
		f.Add(s.key, s.cas, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, key, cas string, body []byte) {
		uri := "/config/" + url.PathEscape(key)
		if cas != "" {
			uri += "?cas=" + url.QueryEscape(cas)
		}
		checkFuzzAnswer(t, "PUT", uri, body)
	})
}

func routeSeeds() []string {
	return []string{
		`{"id":"r-web","hosts":["api.example"],"paths":["/web/"],"match":"prefix","methods":["GET","POST"],"service":"web","strip_path":true,"priority":0,"load_balancer":"round_robin","hash_on":"header:X-User","timeout":"5s","retries":2,"rate_limit":{"rps":100,"burst":200,"key":"ip","scope":"node"},"circuit_breaker":{"consecutive_failures":5,"open_for":"30s"},"cache":{"ttl":"10s"},"cors":{"origins":["https://app.example"]},"auth":{"type":"jwt"}}`,
		`{"id":"r2","paths":["/x"],"match":"exact","service":"web","load_balancer":"consistent_hash"}`,
		`{"id":"r3","paths":["x"],"service":"web","rate_limit":{"rps":-1}}`,
		`{"id":"r4","paths":["/"],"service":"web","timeout":"forever","retries":-3}`,
	}
}

func FuzzRoutePost(f *testing.F) {
	addSeeds(f, routeSeeds()...)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFuzzAnswer(t, "POST", "/gateway/routes", body)
	})
}

func FuzzRoutePut(f *testing.F) {
	for _, s := range append(append([]string(nil), routeSeeds()...), fuzzGarbage()...) {
		f.Add("r1", []byte(s))
	}
	f.Add("r-web", []byte(routeSeeds()[0]))
	f.Add("", []byte(`{}`))
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		checkFuzzAnswer(t, "PUT", "/gateway/routes/"+url.PathEscape(id), body)
	})
}

func FuzzHeartbeat(f *testing.F) {
	for _, s := range append([]string{`{"status":"passing"}`, `{"status":"critical","output":"down"}`, `{"status":"bad"}`,
		`{"output":"` + strings.Repeat("o", 5000) + `"}`}, fuzzGarbage()...) {
		f.Add("web", "web-1", []byte(s))
	}
	f.Add("nope", "x", []byte(`{"status":"warning"}`))
	f.Fuzz(func(t *testing.T, name, id string, body []byte) {
		checkFuzzAnswer(t, "PUT", "/services/"+url.PathEscape(name)+"/instances/"+url.PathEscape(id)+"/heartbeat", body)
	})
}

func FuzzAuditSettings(f *testing.F) {
	addSeeds(f,
		`{"max_records":1000}`,
		`{"max_bytes":1048576,"on_full":"drop_oldest"}`,
		`{"on_full":"reject","archive":"required"}`,
		`{"max_records":-1}`, `{"max_records":1e30}`, `{"on_full":7}`,
	)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFuzzAnswer(t, "PUT", "/audit/settings", body)
	})
}
