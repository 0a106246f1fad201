package api

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestValidation checks that bad input is refused with 400 naming the field,
// and that nothing is proposed: the store is unchanged and the writer idle.
func TestValidation(t *testing.T) {
	h := newHarness(t)
	h.register(reg("web", "http", "127.0.0.1", 9001, "id", "web-1"))
	h.must(h.do("PUT", "/config/existing", "1"), 200, nil)
	h.must(h.do("PUT", "/gateway/routes/r1", map[string]any{"service": "web"}), 201, nil)

	long := strings.Repeat("a", 600)
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		code   string
		field  string // "" = no field expected
		msg    string // substring of the message
	}{
		// register
		{"malformed json", "POST", "/services/register", `{"name":`, 400, "invalid_json", "", "malformed"},
		{"trailing garbage", "POST", "/services/register", `{"name":"a"} x`, 400, "invalid_json", "", ""},
		{"empty body", "POST", "/services/register", ``, 400, "invalid_json", "", "empty"},
		{"array body", "POST", "/services/register", `[1]`, 400, "invalid_json", "", ""},
		{"missing name", "POST", "/services/register", `{"type":"http","address":"1.2.3.4","port":80}`, 400, "invalid", "name", "required"},
		{"invalid name", "POST", "/services/register", `{"name":"Web!","type":"http","address":"1.2.3.4","port":80}`, 400, "invalid", "name", "name:"},
		{"name wrong type", "POST", "/services/register", `{"name":5,"type":"http","address":"1.2.3.4","port":80}`, 400, "invalid", "name", "string"},
		{"missing type", "POST", "/services/register", `{"name":"api","address":"1.2.3.4","port":80}`, 400, "invalid", "type", ""},
		{"invalid type", "POST", "/services/register", `{"name":"api","type":"HTTP/2","address":"1.2.3.4","port":80}`, 400, "invalid", "type", ""},
		{"missing address", "POST", "/services/register", `{"name":"api","type":"http","port":80}`, 400, "invalid", "address", ""},
		{"bad address", "POST", "/services/register", `{"name":"api","type":"http","address":"not an ip!","port":80}`, 400, "invalid", "address", ""},
		{"port zero", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4"}`, 400, "invalid", "port", ""},
		{"port range", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":70000}`, 400, "invalid", "port", "port: 70000 is out of range 1..65535"},
		{"port string", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":"80"}`, 400, "invalid", "port", "port:"},
		{"port float", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80.5}`, 400, "invalid", "port", ""},
		{"bad id", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80,"id":"-x y"}`, 400, "invalid", "id", ""},
		{"tags type", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80,"tags":"v1"}`, 400, "invalid", "tags", ""},
		{"metadata type", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80,"metadata":{"a":1}}`, 400, "invalid", "metadata", ""},
		{"bad depends_on", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80,"depends_on":["DB"]}`, 400, "invalid", "depends_on", ""},
		{"bad ttl duration", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80,"check":{"ttl":"soon"}}`, 400, "invalid", "check.ttl", ""},
		{"negative ttl", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80,"check":{"ttl":"-1s"}}`, 400, "invalid", "check.ttl", ""},
		{"bad check url", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80,"check":{"http":"ftp://x/health"}}`, 400, "invalid", "check.http", ""},
		{"bad interval", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80,"check":{"http":"http://x/h","interval":"often"}}`, 400, "invalid", "check.interval", ""},
		{"bad tcp check", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80,"check":{"tcp":"nohost"}}`, 400, "invalid", "check.tcp", ""},
		{"two check kinds", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80,"check":{"ttl":"1s","tcp":"h:1"}}`, 400, "invalid", "check", ""},
		{"check wrong type", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80,"check":{"ttl":10}}`, 400, "invalid", "check.ttl", ""},
		{"bad deregister after", "POST", "/services/register", `{"name":"api","type":"http","address":"1.2.3.4","port":80,"deregister_critical_after":"x"}`, 400, "invalid", "deregister_critical_after", ""},

		// deletes and heartbeat
		{"deregister bad name", "DELETE", "/services/Bad!", ``, 400, "invalid", "name", ""},
		{"deregister unknown service", "DELETE", "/services/nope", ``, 404, "not_found", "", "nope"},
		{"deregister unknown instance", "DELETE", "/services/web/instances/nope", ``, 404, "not_found", "", "nope"},
		{"heartbeat unknown", "PUT", "/services/web/instances/nope/heartbeat", ``, 404, "not_found", "", ""},
		{"heartbeat bad status", "PUT", "/services/web/instances/web-1/heartbeat", `{"status":"down"}`, 400, "invalid", "status", ""},
		{"heartbeat malformed", "PUT", "/services/web/instances/web-1/heartbeat", `{"status":`, 400, "invalid_json", "", ""},

		// config
		{"config malformed", "POST", "/config", `{"key":"a","value":}`, 400, "invalid_json", "", ""},
		{"config missing key", "POST", "/config", `{"value":1}`, 400, "invalid", "key", ""},
		{"config bad key", "POST", "/config", `{"key":"/abs","value":1}`, 400, "invalid", "key", ""},
		{"config key chars", "POST", "/config", `{"key":"a b","value":1}`, 400, "invalid", "key", ""},
		{"config key too long", "POST", "/config", `{"key":"` + long + `","value":1}`, 400, "invalid", "key", ""},
		{"config missing value", "POST", "/config", `{"key":"a"}`, 400, "invalid", "value", ""},
		{"config cas negative", "POST", "/config", `{"key":"a","value":1,"cas":-1}`, 400, "invalid", "cas", ""},
		{"config cas string", "POST", "/config", `{"key":"a","value":1,"cas":"1"}`, 400, "invalid", "cas", ""},
		{"config entries and key", "POST", "/config", `{"key":"a","value":1,"entries":[{"key":"b","value":1}]}`, 400, "invalid", "entries", ""},
		{"config empty entries", "POST", "/config", `{"entries":[]}`, 400, "invalid", "entries", ""},
		{"config entry bad key", "POST", "/config", `{"entries":[{"key":"ok","value":1},{"key":"/x","value":1}]}`, 400, "invalid", "entries[1].key", ""},
		{"config entry no value", "POST", "/config", `{"entries":[{"key":"ok"}]}`, 400, "invalid", "entries[0].value", ""},
		{"config duplicate key", "POST", "/config", `{"entries":[{"key":"d","value":1},{"key":"d","value":2}]}`, 400, "invalid", "entries[1].key", ""},
		{"put malformed value", "PUT", "/config/a", `{nope`, 400, "invalid_json", "", ""},
		{"put empty value", "PUT", "/config/a", ``, 400, "invalid", "value", ""},
		{"put bad key", "PUT", "/config/a%20b", `1`, 400, "invalid", "key", ""},
		{"put empty key", "PUT", "/config/", `1`, 400, "invalid", "key", ""},
		{"put bad cas", "PUT", "/config/a?cas=x", `1`, 400, "invalid", "cas", ""},
		{"put negative cas", "PUT", "/config/a?cas=-2", `1`, 400, "invalid", "cas", ""},
		{"delete bad cas", "DELETE", "/config/existing?cas=1.5", ``, 400, "invalid", "cas", ""},
		{"delete unknown key", "DELETE", "/config/unknown", ``, 404, "not_found", "", "unknown"},
		{"get empty key", "GET", "/config/", ``, 400, "invalid", "key", ""},

		// routes
		{"route malformed", "POST", "/gateway/routes", `{"id":`, 400, "invalid_json", "", ""},
		{"route missing id", "POST", "/gateway/routes", `{"service":"web"}`, 400, "invalid", "id", ""},
		{"route missing service", "POST", "/gateway/routes", `{"id":"r2"}`, 400, "invalid", "service", ""},
		{"route bad path", "POST", "/gateway/routes", `{"id":"r2","service":"web","paths":["nope"]}`, 400, "invalid", "paths", ""},
		{"route bad match", "POST", "/gateway/routes", `{"id":"r2","service":"web","match":"regex"}`, 400, "invalid", "match", ""},
		{"route bad method", "POST", "/gateway/routes", `{"id":"r2","service":"web","methods":["G T"]}`, 400, "invalid", "methods", ""},
		{"route bad lb", "POST", "/gateway/routes", `{"id":"r2","service":"web","load_balancer":"fastest"}`, 400, "invalid", "load_balancer", ""},
		{"route bad timeout", "POST", "/gateway/routes", `{"id":"r2","service":"web","timeout":"forever"}`, 400, "invalid", "timeout", ""},
		{"route retries range", "POST", "/gateway/routes", `{"id":"r2","service":"web","retries":99}`, 400, "invalid", "retries", ""},
		{"route retries type", "POST", "/gateway/routes", `{"id":"r2","service":"web","retries":"2"}`, 400, "invalid", "retries", ""},
		{"route bad rps", "POST", "/gateway/routes", `{"id":"r2","service":"web","rate_limit":{"rps":0}}`, 400, "invalid", "rate_limit.rps", ""},
		{"route bad host", "POST", "/gateway/routes", `{"id":"r2","service":"web","hosts":["bad host"]}`, 400, "invalid", "hosts", ""},
		{"route bad breaker", "POST", "/gateway/routes", `{"id":"r2","service":"web","circuit_breaker":{"consecutive_failures":0}}`, 400, "invalid", "circuit_breaker.consecutive_failures", ""},
		{"route exists", "POST", "/gateway/routes", `{"id":"r1","service":"web"}`, 409, "conflict", "", ""},
		{"put route id mismatch", "PUT", "/gateway/routes/r1", `{"id":"r9","service":"web"}`, 400, "invalid", "id", ""},
		{"put route bad service", "PUT", "/gateway/routes/r1", `{"service":"Web!"}`, 400, "invalid", "service", ""},
		{"put route bad id", "PUT", "/gateway/routes/-bad", `{"service":"web"}`, 400, "invalid", "id", ""},
		{"delete unknown route", "DELETE", "/gateway/routes/nope", ``, 404, "not_found", "", ""},

		// read parameters
		{"bad index", "GET", "/services?index=x", ``, 400, "invalid", "index", ""},
		{"bad wait", "GET", "/services?index=1&wait=soon", ``, 400, "invalid", "wait", ""},
		{"negative wait", "GET", "/config?index=1&wait=-1s", ``, 400, "invalid", "wait", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := h.dump()
			r := h.do(c.method, c.path, c.body)
			e := h.mustErr(r, c.status, c.code)
			if e.Error.Field != c.field {
				t.Errorf("field %q, want %q (message %q)", e.Error.Field, c.field, e.Error.Message)
			}
			if c.field != "" && !strings.HasPrefix(e.Error.Message, c.field+":") {
				t.Errorf("message %q does not name %q", e.Error.Message, c.field)
			}
			if c.msg != "" && !strings.Contains(e.Error.Message, c.msg) {
				t.Errorf("message %q lacks %q", e.Error.Message, c.msg)
			}
			h.assertUnchanged(before)
		})
	}
}

// TestValidationProposesNothing checks that input refused with 400 never
// reaches the writer.
func TestValidationProposesNothing(t *testing.T) {
	h := newHarness(t)
	calls := h.writer.Calls()
	h.do("POST", "/services/register", `{"name":"x","type":"http","address":"1.2.3.4","port":0}`)
	h.do("POST", "/config", `{"key":"/x","value":1}`)
	h.do("PUT", "/config/a?cas=x", `1`)
	h.do("POST", "/gateway/routes", `{"id":"r"}`)
	if got := h.writer.Calls(); got != calls {
		t.Fatalf("writer called %d times for invalid input", got-calls)
	}
}

func TestBodyTooLarge(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.MaxBodyBytes = 1024 })
	before := h.dump()
	big := `{"key":"k","value":"` + strings.Repeat("x", 4096) + `"}`
	for _, c := range []struct{ method, path string }{
		{"POST", "/config"}, {"PUT", "/config/k"}, {"POST", "/services/register"}, {"POST", "/gateway/routes"},
	} {
		// The server answers 413 and closes the connection without reading
		// the rest of the body; a client still writing may see the close
		// before the answer (as over TCP), so retry a few times.
		var r *resp
		var err error
		for try := 0; try < 5; try++ {
			if r, err = h.tryDo(c.method, c.path, big, "X-Request-ID", "big-1"); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		e := h.mustErr(r, 413, "body_too_large")
		if !strings.Contains(e.Error.Message, "1024") || r.get("X-Request-ID") != "big-1" {
			t.Fatalf("%s %s: %s %v", c.method, c.path, r.body, r.header)
		}
	}
	h.assertUnchanged(before)
	// The node serves afterwards.
	h.must(h.do("PUT", "/config/k", "1"), 200, nil)
	// A 413 answered by fasthttp's error handler is counted just after the
	// answer is written: poll briefly.
	var r *resp
	for deadline := time.Now().Add(2 * time.Second); ; {
		r = h.do("GET", "/metrics", nil)
		ok := strings.Contains(string(r.body), `nexus_api_rejected_writes_total{reason="body_too_large"}`) &&
			strings.Contains(string(r.body), `code="413",method="POST",route="/config"`)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics of 413:\n%s", r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHandlerDirect drives Handler() on a bare RequestCtx, the other way to
// embed the API; the body limit is enforced there too.
func TestHandlerDirect(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.MaxBodyBytes = 64 })
	handler := h.srv.Handler()
	call := func(method, uri, body string) *fasthttp.RequestCtx {
		var req fasthttp.Request
		req.Header.SetMethod(method)
		req.SetRequestURI(uri)
		req.SetBodyString(body)
		ctx := &fasthttp.RequestCtx{}
		ctx.Init(&req, nil, nil)
		handler(ctx)
		return ctx
	}
	ctx := call("PUT", "/config/k", strings.Repeat("1", 100))
	if ctx.Response.StatusCode() != 413 {
		t.Fatalf("status %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	ctx = call("PUT", "/config/k", "1")
	if ctx.Response.StatusCode() != 200 || string(ctx.Response.Header.Peek(HeaderIndex)) != "1" {
		t.Fatalf("status %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	start := time.Now()
	ctx = call("GET", "/config/k?index=1&wait=50ms", "")
	if ctx.Response.StatusCode() != 200 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("blocking via Handler: %d after %v", ctx.Response.StatusCode(), time.Since(start))
	}
}

func TestHeaderTooLarge(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/health", nil, "X-Big", strings.Repeat("a", 16<<10))
	h.mustErr(r, 431, "header_too_large")
	h.must(h.do("GET", "/health", nil), 200, nil)
}
