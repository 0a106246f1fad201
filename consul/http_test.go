package consul_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestHTTP_Answers: status codes and bodies of the mapping, and the
// headers every answer carries (errors and 404s included).
func TestHTTP_Answers(t *testing.T) {
	h := newHarness(t)
	if code, _, body := h.raw("PUT", "/v1/kv/app/present", "v"); code != 200 || body != "true" {
		t.Fatalf("seed: %d %s", code, body)
	}
	cases := []struct {
		name, method, path, body string
		status                   int
		want                     string // substring of the body; "" = empty body
	}{
		{"unknown endpoint", "GET", "/v1/acl/tokens", "", 404, `unsupported Consul endpoint: GET /v1/acl/tokens`},
		{"session create", "PUT", "/v1/session/create", "{}", 200, `{"ID":"`},
		{"empty txn", "PUT", "/v1/txn", "[]", 200, `{"Results":[],"Errors":null}`},
		{"unknown session endpoint", "GET", "/v1/session/all", "", 404, `unsupported Consul endpoint`},
		{"method", "POST", "/v1/kv/a", "x", 405, `allowed: GET, PUT, DELETE`},
		{"unsupported parameter", "GET", "/v1/catalog/services?filter=Tags", "", 400, `"field":"filter"`},
		{"unsupported parameters listed", "GET", "/v1/health/service/web?near=_agent&node-meta=a:b", "", 400, `near, node-meta`},
		{"other datacenter", "GET", "/v1/catalog/services?dc=dc2", "", 400, `unknown datacenter \"dc2\"`},
		{"own datacenter", "GET", "/v1/catalog/services?dc=dc1", "", 200, `{}`},
		{"stale and cached accepted", "GET", "/v1/catalog/services?stale&cached", "", 200, `{}`},
		{"stale with consistent", "GET", "/v1/catalog/services?stale&consistent", "", 400, `"field":"consistent"`},
		{"bad wait", "GET", "/v1/catalog/services?index=1&wait=soon", "", 400, `"field":"wait"`},
		{"bad index", "GET", "/v1/catalog/services?index=x", "", 400, `"field":"index"`},
		{"blocking parameter on a non-blocking endpoint", "GET", "/v1/agent/self?index=3", "", 400, `"field":"index"`},
		{"unknown service in the catalog", "GET", "/v1/catalog/service/nope", "", 200, `[]`},
		{"unknown service in health", "GET", "/v1/health/service/nope?passing", "", 200, `[]`},
		{"unknown service checks", "GET", "/v1/health/checks/nope", "", 200, `[]`},
		{"health state", "GET", "/v1/health/state/any", "", 200, `[]`},
		{"bad health state", "GET", "/v1/health/state/sick", "", 400, `"field":"state"`},
		{"bad passing", "GET", "/v1/health/service/web?passing=maybe", "", 400, `"field":"passing"`},
		{"datacenters", "GET", "/v1/catalog/datacenters", "", 200, `["dc1"]`},
		{"leader", "GET", "/v1/status/leader", "", 200, `"127.0.0.1:8300"`},
		{"peers", "GET", "/v1/status/peers", "", 200, `["127.0.0.1:8300"]`},
		{"agent self", "GET", "/v1/agent/self", "", 200, `"Datacenter":"dc1"`},
		{"kv miss", "GET", "/v1/kv/app/missing", "", 404, ""},
		{"kv recurse miss", "GET", "/v1/kv/none/?recurse", "", 404, ""},
		{"kv keys miss", "GET", "/v1/kv/none/?keys", "", 404, ""},
		{"kv raw", "GET", "/v1/kv/app/present?raw", "", 200, "v"},
		{"kv key outside Nexus keys", "GET", "/v1/kv/app/a%20b", "", 400, `"field":"key"`},
		{"kv put key outside Nexus keys", "PUT", "/v1/kv/app:x", "v", 400, `"field":"key"`},
		{"kv acquire by a missing session", "PUT", "/v1/kv/app/lock?acquire=abc", "v", 404, `"field":"acquire"`},
		{"kv release by a missing session", "PUT", "/v1/kv/app/lock?release=abc", "v", 200, `false`},
		{"kv acquire on get", "GET", "/v1/kv/app/present?acquire=abc", "", 400, `"field":"acquire"`},
		{"kv release on delete", "DELETE", "/v1/kv/app/present?release=abc", "", 400, `"field":"release"`},
		{"kv raw with recurse", "GET", "/v1/kv/app/?recurse&raw", "", 400, `"field":"raw"`},
		{"kv separator without keys", "GET", "/v1/kv/app/?separator=/", "", 400, `"field":"separator"`},
		{"kv bad flags", "PUT", "/v1/kv/app/f?flags=-1", "v", 400, `"field":"flags"`},
		{"kv bad cas", "PUT", "/v1/kv/app/f?cas=x", "v", 400, `"field":"cas"`},
		{"kv index on put", "PUT", "/v1/kv/app/f?index=3", "v", 400, `"field":"index"`},
		{"kv delete cas 0 deletes nothing", "DELETE", "/v1/kv/app/present?cas=0", "", 200, `false`},
		{"kv delete recurse with cas", "DELETE", "/v1/kv/app/?recurse&cas=3", "", 400, `"field":"cas"`},
		{"kv delete missing is true", "DELETE", "/v1/kv/app/missing", "", 200, `true`},
		{"register: unsupported field", "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80,"Connect":{"Native":true}}`, 400, `"field":"Connect"`},
		{"register: unsupported check field", "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80,"Check":{"GRPC":"x:1","Interval":"1s"}}`, 400, `"field":"Check.GRPC"`},
		{"register: tag override", "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80,"EnableTagOverride":true}`, 400, `"field":"EnableTagOverride"`},
		{"register: tagged addresses", "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80,"TaggedAddresses":{"lan":{"Address":"a","Port":1}}}`, 400, `"field":"TaggedAddresses"`},
		{"register: check notes", "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80,"Check":{"TTL":"5s","Notes":"n"}}`, 400, `"field":"Check.Notes"`},
		{"register: two checks", "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80,"Checks":[{"TTL":"5s"},{"TTL":"6s"}]}`, 400, `"field":"Checks"`},
		{"register: name", "PUT", "/v1/agent/service/register", `{"Name":"Web_1","Port":80}`, 400, `"field":"Name"`},
		{"register: port", "PUT", "/v1/agent/service/register", `{"Name":"web"}`, 400, `"field":"Port"`},
		{"register: check ttl", "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80,"Check":{"TTL":"soon"}}`, 400, `"field":"Check.TTL"`},
		{"register: custom check id", "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80,"Check":{"CheckID":"mine","TTL":"5s"}}`, 400, `"field":"Check.CheckID"`},
		{"register: check status", "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80,"Check":{"TTL":"5s","Status":"ok"}}`, 400, `"field":"Check.Status"`},
		{"register: weights", "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80,"Weights":{"Passing":0,"Warning":1}}`, 400, `"field":"Weights"`},
		{"register: namespace", "PUT", "/v1/agent/service/register", `{"Name":"web","Port":80,"Namespace":"team"}`, 400, `"field":"Namespace"`},
		{"register: bad json", "PUT", "/v1/agent/service/register", `{"Name":`, 400, `invalid_json`},
		{"deregister unknown", "PUT", "/v1/agent/service/deregister/nope", "", 404, `unknown service ID`},
		{"pass unknown check", "PUT", "/v1/agent/check/pass/service:nope", "", 404, `unknown`},
		{"pass a non-service check", "PUT", "/v1/agent/check/pass/serfHealth", "", 404, `service:SERVICE_ID`},
		{"update bad status", "PUT", "/v1/agent/check/update/service:x", `{"Status":"fine"}`, 400, `"field":"Status"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, hdr, body := h.raw(c.method, c.path, c.body)
			if code != c.status {
				t.Errorf("status %d, want %d: %s", code, c.status, body)
			}
			if c.want == "" && body != "" || !strings.Contains(body, c.want) {
				t.Errorf("body %q, want %q", body, c.want)
			}
			if code >= 400 && body != "" && !json.Valid([]byte(body)) {
				t.Errorf("error body is not JSON: %s", body)
			}
			wantHeaders(t, hdr, true)
		})
	}
}

// wantHeaders checks the Consul headers of an answer.
func wantHeaders(t *testing.T, hdr http.Header, knownLeader bool) {
	t.Helper()
	idx, err := strconv.ParseUint(hdr.Get("X-Consul-Index"), 10, 64)
	if err != nil || idx < 1 {
		t.Errorf("X-Consul-Index %q, want >= 1", hdr.Get("X-Consul-Index"))
	}
	if hdr.Get("X-Nexus-Index") != hdr.Get("X-Consul-Index") {
		t.Errorf("X-Nexus-Index %q differs from X-Consul-Index %q", hdr.Get("X-Nexus-Index"), hdr.Get("X-Consul-Index"))
	}
	if got := hdr.Get("X-Consul-KnownLeader"); got != strconv.FormatBool(knownLeader) {
		t.Errorf("X-Consul-KnownLeader %q", got)
	}
	if _, err := strconv.ParseUint(hdr.Get("X-Consul-LastContact"), 10, 64); err != nil {
		t.Errorf("X-Consul-LastContact %q", hdr.Get("X-Consul-LastContact"))
	}
}

// TestHTTP_NoLeader: the headers say so; status/leader is "".
func TestHTTP_NoLeader(t *testing.T) {
	h := newHarness(t, func(o *harnessOpts) { o.leader = "" })
	code, hdr, body := h.raw("GET", "/v1/status/leader", "")
	if code != 200 || body != `""` {
		t.Fatalf("%d %s", code, body)
	}
	wantHeaders(t, hdr, false)
	code, hdr, _ = h.raw("GET", "/v1/kv/x", "")
	if code != 404 {
		t.Fatalf("%d", code)
	}
	wantHeaders(t, hdr, false)
}
