package registry_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/nexus/nexus/registry"
)

// wantField asserts that e is a validation error naming field, or nil when
// field is empty.
func wantField(t *testing.T, e *registry.Error, field string) {
	t.Helper()
	if field == "" {
		if e != nil {
			t.Fatalf("unexpected error: field=%q code=%q msg=%q", e.Field, e.Code, e.Message)
		}
		return
	}
	if e == nil {
		t.Fatalf("want an error on field %q, got none", field)
	}
	if e.Code != registry.CodeInvalid {
		t.Errorf("code = %q, want %q", e.Code, registry.CodeInvalid)
	}
	if e.Field != field {
		t.Errorf("field = %q, want %q (msg %q)", e.Field, field, e.Message)
	}
	if !strings.HasPrefix(e.Message, field+": ") {
		t.Errorf("message %q does not start with the field name %q", e.Message, field)
	}
	if e.Error() != e.Message {
		t.Errorf("Error() = %q, want the message %q", e.Error(), e.Message)
	}
}

func validRegister() registry.RegisterRequest {
	return registry.RegisterRequest{Name: "web", Type: "http", Address: "127.0.0.1", Port: 9001}
}

func manyStrings(n int, f func(i int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func manyMeta(n int) map[string]string {
	m := make(map[string]string, n)
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("k%03d", i)] = "v"
	}
	return m
}

func TestRegisterRequestInstance_Validation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(r *registry.RegisterRequest)
		field string // "" = valid
	}{
		{"valid minimal", func(r *registry.RegisterRequest) {}, ""},
		// name
		{"name missing", func(r *registry.RegisterRequest) { r.Name = "" }, "name"},
		{"name upper case", func(r *registry.RegisterRequest) { r.Name = "Web" }, "name"},
		{"name leading dash", func(r *registry.RegisterRequest) { r.Name = "-web" }, "name"},
		{"name leading dot", func(r *registry.RegisterRequest) { r.Name = ".web" }, "name"},
		{"name with slash", func(r *registry.RegisterRequest) { r.Name = "a/b" }, "name"},
		{"name with space", func(r *registry.RegisterRequest) { r.Name = "a b" }, "name"},
		{"name 63 chars", func(r *registry.RegisterRequest) { r.Name = strings.Repeat("a", 63) }, ""},
		{"name 64 chars", func(r *registry.RegisterRequest) { r.Name = strings.Repeat("a", 64) }, "name"},
		{"name digits dots dashes underscores", func(r *registry.RegisterRequest) { r.Name = "0web.v1_x-y" }, ""},
		{"name single char", func(r *registry.RegisterRequest) { r.Name = "a" }, ""},
		// type
		{"type missing", func(r *registry.RegisterRequest) { r.Type = "" }, "type"},
		{"type upper case", func(r *registry.RegisterRequest) { r.Type = "HTTP" }, "type"},
		{"type 64 chars", func(r *registry.RegisterRequest) { r.Type = strings.Repeat("t", 64) }, "type"},
		{"type grpc", func(r *registry.RegisterRequest) { r.Type = "grpc" }, ""},
		// address
		{"address missing", func(r *registry.RegisterRequest) { r.Address = "" }, "address"},
		{"address ipv6", func(r *registry.RegisterRequest) { r.Address = "::1" }, ""},
		{"address hostname", func(r *registry.RegisterRequest) { r.Address = "db-1.internal.example" }, ""},
		{"address with port", func(r *registry.RegisterRequest) { r.Address = "10.0.0.1:80" }, "address"},
		{"address host with port", func(r *registry.RegisterRequest) { r.Address = "host:80" }, "address"},
		{"address wildcard", func(r *registry.RegisterRequest) { r.Address = "*.example" }, "address"},
		{"address with space", func(r *registry.RegisterRequest) { r.Address = "a b" }, "address"},
		{"address url", func(r *registry.RegisterRequest) { r.Address = "http://x" }, "address"},
		{"address too long", func(r *registry.RegisterRequest) {
			r.Address = strings.Repeat("a.", 127) + "ab"
			r.ID = "x"
		}, "address"},
		// port
		{"port 0", func(r *registry.RegisterRequest) { r.Port = 0 }, "port"},
		{"port negative", func(r *registry.RegisterRequest) { r.Port = -1 }, "port"},
		{"port 1", func(r *registry.RegisterRequest) { r.Port = 1 }, ""},
		{"port 65535", func(r *registry.RegisterRequest) { r.Port = 65535 }, ""},
		{"port 65536", func(r *registry.RegisterRequest) { r.Port = 65536 }, "port"},
		{"port 70000", func(r *registry.RegisterRequest) { r.Port = 70000 }, "port"},
		// id
		{"id explicit", func(r *registry.RegisterRequest) { r.ID = "Web_1:a.b-c" }, ""},
		{"id leading dash", func(r *registry.RegisterRequest) { r.ID = "-x" }, "id"},
		{"id with slash", func(r *registry.RegisterRequest) { r.ID = "a/b" }, "id"},
		{"id with space", func(r *registry.RegisterRequest) { r.ID = "a b" }, "id"},
		{"id 128 chars", func(r *registry.RegisterRequest) { r.ID = strings.Repeat("i", 128) }, ""},
		{"id 257 chars", func(r *registry.RegisterRequest) { r.ID = strings.Repeat("i", 257) }, "id"},
		// tags
		{"tags 64", func(r *registry.RegisterRequest) {
			r.Tags = manyStrings(64, func(i int) string { return fmt.Sprint("t", i) })
		}, ""},
		{"tags 65", func(r *registry.RegisterRequest) {
			r.Tags = manyStrings(65, func(i int) string { return fmt.Sprint("t", i) })
		}, "tags"},
		{"tag empty", func(r *registry.RegisterRequest) { r.Tags = []string{"a", ""} }, "tags"},
		{"tag 128 bytes", func(r *registry.RegisterRequest) { r.Tags = []string{strings.Repeat("x", 128)} }, ""},
		{"tag 129 bytes", func(r *registry.RegisterRequest) { r.Tags = []string{strings.Repeat("x", 129)} }, "tags"},
		// metadata
		{"metadata 64 keys", func(r *registry.RegisterRequest) { r.Metadata = manyMeta(64) }, ""},
		{"metadata 65 keys", func(r *registry.RegisterRequest) { r.Metadata = manyMeta(65) }, "metadata"},
		{"metadata empty key", func(r *registry.RegisterRequest) { r.Metadata = map[string]string{"": "v"} }, "metadata"},
		{"metadata key 128", func(r *registry.RegisterRequest) {
			r.Metadata = map[string]string{strings.Repeat("k", 128): "v"}
		}, ""},
		{"metadata key 129", func(r *registry.RegisterRequest) {
			r.Metadata = map[string]string{strings.Repeat("k", 129): "v"}
		}, "metadata"},
		{"metadata value 1024", func(r *registry.RegisterRequest) {
			r.Metadata = map[string]string{"k": strings.Repeat("v", 1024)}
		}, ""},
		{"metadata value 1025", func(r *registry.RegisterRequest) {
			r.Metadata = map[string]string{"k": strings.Repeat("v", 1025)}
		}, "metadata"},
		{"metadata empty value", func(r *registry.RegisterRequest) { r.Metadata = map[string]string{"k": ""} }, ""},
		// depends_on
		{"depends_on valid", func(r *registry.RegisterRequest) { r.DependsOn = []string{"db", "cache"} }, ""},
		{"depends_on bad name", func(r *registry.RegisterRequest) { r.DependsOn = []string{"db", "Bad"} }, "depends_on"},
		{"depends_on empty name", func(r *registry.RegisterRequest) { r.DependsOn = []string{""} }, "depends_on"},
		// deregister_critical_after
		{"dca valid", func(r *registry.RegisterRequest) { r.DeregisterCriticalAfter = "90m" }, ""},
		{"dca bad", func(r *registry.RegisterRequest) { r.DeregisterCriticalAfter = "soon" }, "deregister_critical_after"},
		{"dca zero", func(r *registry.RegisterRequest) { r.DeregisterCriticalAfter = "0s" }, "deregister_critical_after"},
		{"dca negative", func(r *registry.RegisterRequest) { r.DeregisterCriticalAfter = "-1m" }, "deregister_critical_after"},
		{"dca bare number", func(r *registry.RegisterRequest) { r.DeregisterCriticalAfter = "10" }, "deregister_critical_after"},
		// check: exactly one kind
		{"check none of the kinds", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{Interval: "5s"} }, "check"},
		{"check ttl and http", func(r *registry.RegisterRequest) {
			r.Check = &registry.CheckRequest{TTL: "10s", HTTP: "http://h:1/"}
		}, "check"},
		{"check http and tcp", func(r *registry.RegisterRequest) {
			r.Check = &registry.CheckRequest{HTTP: "http://h:1/", TCP: "h:1"}
		}, "check"},
		{"check all three", func(r *registry.RegisterRequest) {
			r.Check = &registry.CheckRequest{TTL: "1s", HTTP: "http://h:1/", TCP: "h:1"}
		}, "check"},
		// check: ttl
		{"check ttl valid", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{TTL: "10s"} }, ""},
		{"check ttl bad", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{TTL: "ten"} }, "check.ttl"},
		{"check ttl zero", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{TTL: "0s"} }, "check.ttl"},
		{"check ttl negative", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{TTL: "-5s"} }, "check.ttl"},
		// check: http
		{"check http valid", func(r *registry.RegisterRequest) {
			r.Check = &registry.CheckRequest{HTTP: "http://127.0.0.1:9001/health", Interval: "5s", Timeout: "1s"}
		}, ""},
		{"check https valid", func(r *registry.RegisterRequest) {
			r.Check = &registry.CheckRequest{HTTP: "https://svc.example/health"}
		}, ""},
		{"check http ftp scheme", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{HTTP: "ftp://h/x"} }, "check.http"},
		{"check http no scheme", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{HTTP: "h:80/health"} }, "check.http"},
		{"check http no host", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{HTTP: "http:///health"} }, "check.http"},
		{"check http unparsable", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{HTTP: "http://[::1"} }, "check.http"},
		{"check http bad interval", func(r *registry.RegisterRequest) {
			r.Check = &registry.CheckRequest{HTTP: "http://h/", Interval: "often"}
		}, "check.interval"},
		{"check http zero interval", func(r *registry.RegisterRequest) {
			r.Check = &registry.CheckRequest{HTTP: "http://h/", Interval: "0s"}
		}, "check.interval"},
		{"check http bad timeout", func(r *registry.RegisterRequest) {
			r.Check = &registry.CheckRequest{HTTP: "http://h/", Timeout: "1"}
		}, "check.timeout"},
		{"check http negative timeout", func(r *registry.RegisterRequest) {
			r.Check = &registry.CheckRequest{HTTP: "http://h/", Timeout: "-1s"}
		}, "check.timeout"},
		// check: tcp
		{"check tcp valid", func(r *registry.RegisterRequest) {
			r.Check = &registry.CheckRequest{TCP: "127.0.0.1:5432", Interval: "5s"}
		}, ""},
		{"check tcp ipv6 valid", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{TCP: "[::1]:5432"} }, ""},
		{"check tcp no port", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{TCP: "db"} }, "check.tcp"},
		{"check tcp empty host", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{TCP: ":5432"} }, "check.tcp"},
		{"check tcp port 0", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{TCP: "db:0"} }, "check.tcp"},
		{"check tcp port 70000", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{TCP: "db:70000"} }, "check.tcp"},
		{"check tcp named port", func(r *registry.RegisterRequest) { r.Check = &registry.CheckRequest{TCP: "db:postgres"} }, "check.tcp"},
		{"check tcp bad interval", func(r *registry.RegisterRequest) {
			r.Check = &registry.CheckRequest{TCP: "db:5432", Interval: "x"}
		}, "check.interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := validRegister()
			tc.edit(&r)
			_, e := r.Instance("n1")
			wantField(t, e, tc.field)
		})
	}
}

func TestRegisterRequestInstance_Defaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  registry.RegisterRequest
		want registry.Instance
	}{
		{
			name: "minimal: default id, empty non-nil collections, passing",
			req:  registry.RegisterRequest{Name: "web", Type: "http", Address: "127.0.0.1", Port: 9001},
			want: registry.Instance{
				ID: "web-127.0.0.1-9001", Service: "web", Type: "http", Address: "127.0.0.1", Port: 9001,
				Tags: []string{}, Metadata: map[string]string{}, Node: "n1", Status: registry.StatusPassing,
				Checks: []registry.Check{}, DependsOn: []string{},
			},
		},
		{
			name: "default id with ipv6 and host name",
			req:  registry.RegisterRequest{Name: "db", Type: "tcp", Address: "::1", Port: 5432},
			want: registry.Instance{
				ID: "db-::1-5432", Service: "db", Type: "tcp", Address: "::1", Port: 5432,
				Tags: []string{}, Metadata: map[string]string{}, Node: "n1", Status: registry.StatusPassing,
				Checks: []registry.Check{}, DependsOn: []string{},
			},
		},
		{
			name: "explicit id, sorted tags and depends_on, ttl check",
			req: registry.RegisterRequest{
				Name: "web", Type: "http", Address: "web.internal", Port: 80, ID: "web-1",
				Tags: []string{"v2", "a", "v1"}, Metadata: map[string]string{"zone": "a"},
				DependsOn: []string{"db", "cache"}, Check: &registry.CheckRequest{TTL: "10s"},
				DeregisterCriticalAfter: "1h",
			},
			want: registry.Instance{
				ID: "web-1", Service: "web", Type: "http", Address: "web.internal", Port: 80,
				Tags: []string{"a", "v1", "v2"}, Metadata: map[string]string{"zone": "a"}, Node: "n1",
				Status: registry.StatusCritical, DependsOn: []string{"cache", "db"},
				Checks:                  []registry.Check{{Kind: registry.CheckTTL, TTL: "10s", Status: registry.StatusCritical, Output: "awaiting the first check result"}},
				DeregisterCriticalAfter: "1h",
			},
		},
		{
			name: "http check gets interval and timeout defaults",
			req: registry.RegisterRequest{Name: "web", Type: "http", Address: "10.0.0.1", Port: 80,
				Check: &registry.CheckRequest{HTTP: "http://10.0.0.1:80/health"}},
			want: registry.Instance{
				ID: "web-10.0.0.1-80", Service: "web", Type: "http", Address: "10.0.0.1", Port: 80,
				Tags: []string{}, Metadata: map[string]string{}, Node: "n1", Status: registry.StatusCritical,
				DependsOn: []string{},
				Checks: []registry.Check{{Kind: registry.CheckHTTP, HTTP: "http://10.0.0.1:80/health",
					Interval: "10s", Timeout: "5s", Status: registry.StatusCritical, Output: "awaiting the first check result"}},
			},
		},
		{
			name: "tcp check keeps given interval and timeout",
			req: registry.RegisterRequest{Name: "db", Type: "postgres", Address: "10.0.0.2", Port: 5432,
				Check: &registry.CheckRequest{TCP: "10.0.0.2:5432", Interval: "3s", Timeout: "2s"}},
			want: registry.Instance{
				ID: "db-10.0.0.2-5432", Service: "db", Type: "postgres", Address: "10.0.0.2", Port: 5432,
				Tags: []string{}, Metadata: map[string]string{}, Node: "n1", Status: registry.StatusCritical,
				DependsOn: []string{},
				Checks: []registry.Check{{Kind: registry.CheckTCP, TCP: "10.0.0.2:5432",
					Interval: "3s", Timeout: "2s", Status: registry.StatusCritical, Output: "awaiting the first check result"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := tc.req
			tagsBefore := append([]string(nil), req.Tags...)
			got, e := req.Instance("n1")
			if e != nil {
				t.Fatalf("Instance: %v", e)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			if !reflect.DeepEqual(req.Tags, tagsBefore) && req.Tags != nil {
				t.Errorf("Instance reordered the caller's tags: %v", req.Tags)
			}
		})
	}
}

func validRoute() registry.Route {
	return registry.Route{ID: "r-web", Service: "web"}
}

func intp(n int) *int { return &n }

func TestNormalizeRoute_Validation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edit  func(r *registry.Route)
		field string
	}{
		{"valid minimal", func(r *registry.Route) {}, ""},
		// id
		{"id missing", func(r *registry.Route) { r.ID = "" }, "id"},
		{"id bad", func(r *registry.Route) { r.ID = "r web" }, "id"},
		{"id leading dot", func(r *registry.Route) { r.ID = ".r" }, "id"},
		{"id 257", func(r *registry.Route) { r.ID = strings.Repeat("r", 257) }, "id"},
		// service
		{"service missing", func(r *registry.Route) { r.Service = "" }, "service"},
		{"service bad", func(r *registry.Route) { r.Service = "Web" }, "service"},
		// hosts
		{"hosts exact", func(r *registry.Route) { r.Hosts = []string{"api.example"} }, ""},
		{"hosts wildcard", func(r *registry.Route) { r.Hosts = []string{"*.example.com"} }, ""},
		{"hosts with port", func(r *registry.Route) { r.Hosts = []string{"api.example:8080"} }, ""},
		{"hosts double wildcard", func(r *registry.Route) { r.Hosts = []string{"*.*.example"} }, "hosts"},
		{"hosts inner wildcard", func(r *registry.Route) { r.Hosts = []string{"api.*.example"} }, "hosts"},
		{"hosts empty", func(r *registry.Route) { r.Hosts = []string{""} }, "hosts"},
		{"hosts with path", func(r *registry.Route) { r.Hosts = []string{"api.example/x"} }, "hosts"},
		{"hosts too long", func(r *registry.Route) { r.Hosts = []string{strings.Repeat("a.", 127) + "ab"} }, "hosts"},
		// paths
		{"paths ok", func(r *registry.Route) { r.Paths = []string{"/web/", "/api"} }, ""},
		{"paths relative", func(r *registry.Route) { r.Paths = []string{"web/"} }, "paths"},
		{"paths with space", func(r *registry.Route) { r.Paths = []string{"/a b"} }, "paths"},
		{"paths with query", func(r *registry.Route) { r.Paths = []string{"/a?b"} }, "paths"},
		{"paths with fragment", func(r *registry.Route) { r.Paths = []string{"/a#b"} }, "paths"},
		{"paths with NUL", func(r *registry.Route) { r.Paths = []string{"/a\x00"} }, "paths"},
		{"paths too long", func(r *registry.Route) { r.Paths = []string{"/" + strings.Repeat("p", 1024)} }, "paths"},
		{"paths 1024", func(r *registry.Route) { r.Paths = []string{"/" + strings.Repeat("p", 1023)} }, ""},
		// match
		{"match exact", func(r *registry.Route) { r.Match = "exact" }, ""},
		{"match prefix", func(r *registry.Route) { r.Match = "prefix" }, ""},
		{"match regex", func(r *registry.Route) { r.Match = "regex" }, "match"},
		{"match upper", func(r *registry.Route) { r.Match = "PREFIX" }, "match"},
		// methods
		{"methods lower ok", func(r *registry.Route) { r.Methods = []string{"get", "Post"} }, ""},
		{"methods with space", func(r *registry.Route) { r.Methods = []string{"GE T"} }, "methods"},
		{"methods empty", func(r *registry.Route) { r.Methods = []string{""} }, "methods"},
		{"methods digits", func(r *registry.Route) { r.Methods = []string{"GET1"} }, "methods"},
		{"methods too long", func(r *registry.Route) { r.Methods = []string{strings.Repeat("A", 21)} }, "methods"},
		// load_balancer and hash_on
		{"lb least_conn", func(r *registry.Route) { r.LoadBalancer = "least_conn" }, ""},
		{"lb random", func(r *registry.Route) { r.LoadBalancer = "random" }, ""},
		{"lb round_robin", func(r *registry.Route) { r.LoadBalancer = "round_robin" }, ""},
		{"lb unknown", func(r *registry.Route) { r.LoadBalancer = "weighted" }, "load_balancer"},
		{"hash_on without consistent_hash", func(r *registry.Route) { r.HashOn = "ip" }, "hash_on"},
		{"hash_on with round_robin", func(r *registry.Route) { r.LoadBalancer = "round_robin"; r.HashOn = "header:X-User" }, "hash_on"},
		{"hash_on header", func(r *registry.Route) { r.LoadBalancer = "consistent_hash"; r.HashOn = "header:X-User" }, ""},
		{"hash_on cookie", func(r *registry.Route) { r.LoadBalancer = "consistent_hash"; r.HashOn = "cookie:sid" }, ""},
		{"hash_on ip", func(r *registry.Route) { r.LoadBalancer = "consistent_hash"; r.HashOn = "ip" }, ""},
		{"hash_on jwt not allowed", func(r *registry.Route) { r.LoadBalancer = "consistent_hash"; r.HashOn = "jwt:sub" }, "hash_on"},
		{"hash_on empty header", func(r *registry.Route) { r.LoadBalancer = "consistent_hash"; r.HashOn = "header:" }, "hash_on"},
		{"hash_on bad header", func(r *registry.Route) { r.LoadBalancer = "consistent_hash"; r.HashOn = "header:X User" }, "hash_on"},
		// timeout
		{"timeout ok", func(r *registry.Route) { r.Timeout = "250ms" }, ""},
		{"timeout bad", func(r *registry.Route) { r.Timeout = "5" }, "timeout"},
		{"timeout zero", func(r *registry.Route) { r.Timeout = "0s" }, "timeout"},
		{"timeout negative", func(r *registry.Route) { r.Timeout = "-1s" }, "timeout"},
		// retries
		{"retries 0", func(r *registry.Route) { r.Retries = intp(0) }, ""},
		{"retries 10", func(r *registry.Route) { r.Retries = intp(10) }, ""},
		{"retries 11", func(r *registry.Route) { r.Retries = intp(11) }, "retries"},
		{"retries -1", func(r *registry.Route) { r.Retries = intp(-1) }, "retries"},
		// rate_limit
		{"rate_limit ok", func(r *registry.Route) {
			r.RateLimit = &registry.RateLimit{RPS: 100, Burst: 200, Key: "header:X-Key", Scope: "cluster"}
		}, ""},
		{"rate_limit jwt key", func(r *registry.Route) { r.RateLimit = &registry.RateLimit{RPS: 1, Key: "jwt:sub"} }, ""},
		{"rate_limit rps 0", func(r *registry.Route) { r.RateLimit = &registry.RateLimit{RPS: 0} }, "rate_limit.rps"},
		{"rate_limit rps negative", func(r *registry.Route) { r.RateLimit = &registry.RateLimit{RPS: -1} }, "rate_limit.rps"},
		{"rate_limit burst negative", func(r *registry.Route) { r.RateLimit = &registry.RateLimit{RPS: 1, Burst: -1} }, "rate_limit.burst"},
		{"rate_limit key cookie", func(r *registry.Route) { r.RateLimit = &registry.RateLimit{RPS: 1, Key: "cookie:x"} }, "rate_limit.key"},
		{"rate_limit key bad header", func(r *registry.Route) { r.RateLimit = &registry.RateLimit{RPS: 1, Key: "header:a b"} }, "rate_limit.key"},
		{"rate_limit key unknown", func(r *registry.Route) { r.RateLimit = &registry.RateLimit{RPS: 1, Key: "user"} }, "rate_limit.key"},
		{"rate_limit scope bad", func(r *registry.Route) { r.RateLimit = &registry.RateLimit{RPS: 1, Scope: "global"} }, "rate_limit.scope"},
		// circuit_breaker
		{"circuit_breaker ok", func(r *registry.Route) {
			r.CircuitBreaker = &registry.CircuitBreaker{ConsecutiveFailures: 5, OpenFor: "1m"}
		}, ""},
		{"circuit_breaker failures 0", func(r *registry.Route) {
			r.CircuitBreaker = &registry.CircuitBreaker{ConsecutiveFailures: 0}
		}, "circuit_breaker.consecutive_failures"},
		{"circuit_breaker bad open_for", func(r *registry.Route) {
			r.CircuitBreaker = &registry.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: "forever"}
		}, "circuit_breaker.open_for"},
		{"circuit_breaker zero open_for", func(r *registry.Route) {
			r.CircuitBreaker = &registry.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: "0s"}
		}, "circuit_breaker.open_for"},
		// cache
		{"cache ok", func(r *registry.Route) { r.Cache = &registry.CachePolicy{TTL: "10s"} }, ""},
		{"cache ttl missing", func(r *registry.Route) { r.Cache = &registry.CachePolicy{} }, "cache.ttl"},
		{"cache ttl bad", func(r *registry.Route) { r.Cache = &registry.CachePolicy{TTL: "10"} }, "cache.ttl"},
		{"cache ttl negative", func(r *registry.Route) { r.Cache = &registry.CachePolicy{TTL: "-10s"} }, "cache.ttl"},
		// cors
		{"cors ok", func(r *registry.Route) {
			r.CORS = &registry.CORSPolicy{Origins: []string{"https://app.example"}, MaxAge: "1h"}
		}, ""},
		{"cors no origins", func(r *registry.Route) { r.CORS = &registry.CORSPolicy{} }, "cors.origins"},
		{"cors bad max_age", func(r *registry.Route) {
			r.CORS = &registry.CORSPolicy{Origins: []string{"*"}, MaxAge: "1 hour"}
		}, "cors.max_age"},
		{"cors zero max_age", func(r *registry.Route) {
			r.CORS = &registry.CORSPolicy{Origins: []string{"*"}, MaxAge: "0s"}
		}, "cors.max_age"},
		// auth
		{"auth jwt", func(r *registry.Route) { r.Auth = &registry.AuthPolicy{Type: "jwt"} }, ""},
		{"auth key", func(r *registry.Route) { r.Auth = &registry.AuthPolicy{Type: "key"} }, ""},
		{"auth missing type", func(r *registry.Route) { r.Auth = &registry.AuthPolicy{} }, "auth.type"},
		{"auth basic", func(r *registry.Route) { r.Auth = &registry.AuthPolicy{Type: "basic"} }, "auth.type"},
		{"auth upper", func(r *registry.Route) { r.Auth = &registry.AuthPolicy{Type: "JWT"} }, "auth.type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := validRoute()
			tc.edit(&r)
			_, e := registry.NormalizeRoute(r)
			wantField(t, e, tc.field)
		})
	}
}

func TestNormalizeRoute_Defaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   registry.Route
		want registry.Route
	}{
		{
			name: "every default",
			in:   registry.Route{ID: "r", Service: "web"},
			want: registry.Route{ID: "r", Service: "web", Hosts: []string{}, Paths: []string{"/"}, Match: "prefix",
				Methods: []string{}, LoadBalancer: "round_robin", Timeout: "30s", Retries: intp(1)},
		},
		{
			name: "methods upper-cased, explicit values kept",
			in: registry.Route{ID: "r", Service: "web", Hosts: []string{"api.example"}, Paths: []string{"/web/"},
				Match: "exact", Methods: []string{"get", "pOsT", "DELETE"}, LoadBalancer: "least_conn",
				Timeout: "5s", Retries: intp(0), StripPath: true, Priority: 7},
			want: registry.Route{ID: "r", Service: "web", Hosts: []string{"api.example"}, Paths: []string{"/web/"},
				Match: "exact", Methods: []string{"GET", "POST", "DELETE"}, LoadBalancer: "least_conn",
				Timeout: "5s", Retries: intp(0), StripPath: true, Priority: 7},
		},
		{
			name: "consistent_hash defaults hash_on to ip",
			in:   registry.Route{ID: "r", Service: "web", LoadBalancer: "consistent_hash"},
			want: registry.Route{ID: "r", Service: "web", Hosts: []string{}, Paths: []string{"/"}, Match: "prefix",
				Methods: []string{}, LoadBalancer: "consistent_hash", HashOn: "ip", Timeout: "30s", Retries: intp(1)},
		},
		{
			name: "consistent_hash keeps hash_on",
			in:   registry.Route{ID: "r", Service: "web", LoadBalancer: "consistent_hash", HashOn: "header:X-User"},
			want: registry.Route{ID: "r", Service: "web", Hosts: []string{}, Paths: []string{"/"}, Match: "prefix",
				Methods: []string{}, LoadBalancer: "consistent_hash", HashOn: "header:X-User", Timeout: "30s", Retries: intp(1)},
		},
		{
			name: "plugin defaults: rate limit burst/key/scope, breaker open_for",
			in: registry.Route{ID: "r", Service: "web",
				RateLimit:      &registry.RateLimit{RPS: 2.5},
				CircuitBreaker: &registry.CircuitBreaker{ConsecutiveFailures: 3},
				Cache:          &registry.CachePolicy{TTL: "10s"},
				CORS:           &registry.CORSPolicy{Origins: []string{"https://app.example"}},
				Auth:           &registry.AuthPolicy{Type: "jwt"}},
			want: registry.Route{ID: "r", Service: "web", Hosts: []string{}, Paths: []string{"/"}, Match: "prefix",
				Methods: []string{}, LoadBalancer: "round_robin", Timeout: "30s", Retries: intp(1),
				RateLimit:      &registry.RateLimit{RPS: 2.5, Burst: 3, Key: "ip", Scope: "node"},
				CircuitBreaker: &registry.CircuitBreaker{ConsecutiveFailures: 3, OpenFor: "30s"},
				Cache:          &registry.CachePolicy{TTL: "10s"},
				CORS:           &registry.CORSPolicy{Origins: []string{"https://app.example"}},
				Auth:           &registry.AuthPolicy{Type: "jwt"}},
		},
		{
			name: "rate limit integer rps gives equal burst",
			in:   registry.Route{ID: "r", Service: "web", RateLimit: &registry.RateLimit{RPS: 100}},
			want: registry.Route{ID: "r", Service: "web", Hosts: []string{}, Paths: []string{"/"}, Match: "prefix",
				Methods: []string{}, LoadBalancer: "round_robin", Timeout: "30s", Retries: intp(1),
				RateLimit: &registry.RateLimit{RPS: 100, Burst: 100, Key: "ip", Scope: "node"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, e := registry.NormalizeRoute(tc.in)
			if e != nil {
				t.Fatalf("NormalizeRoute: %v", e)
			}
			if !reflect.DeepEqual(got, tc.want) {
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(tc.want)
				t.Fatalf("got  %s\nwant %s", gj, wj)
			}
			// Normalizing twice is a fixed point.
			again, e := registry.NormalizeRoute(got)
			if e != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("second NormalizeRoute changed the route or failed (%v)", e)
			}
		})
	}
}

func TestValidateConfigKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key string
		ok  bool
	}{
		{"app", true},
		{"app/db/pool", true},
		{"A-Z_a.z/0-9", true},
		{"trailing/", true},
		{strings.Repeat("k", 512), true},
		{strings.Repeat("k", 511) + "/", true},
		{"", false},
		{strings.Repeat("k", 513), false},
		{"/app", false},
		{"/", false},
		{"app db", false},
		{"app:db", false},
		{"app*", false},
		{"app\x00", false},
		{"app\n", false},
		{"clé", false},
		{"a?b", false},
		{"a%2Fb", false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%.40q", tc.key), func(t *testing.T) {
			t.Parallel()
			e := registry.ValidateConfigKey("key", tc.key)
			if tc.ok {
				wantField(t, e, "")
			} else {
				wantField(t, e, "key")
			}
			// The field name is the caller's, e.g. for entries of a batch.
			if e2 := registry.ValidateConfigKey("entries[3].key", tc.key); (e2 == nil) != tc.ok || (e2 != nil && e2.Field != "entries[3].key") {
				t.Errorf("field not propagated: %+v", e2)
			}
		})
	}
}

func TestValidateConfigValue(t *testing.T) {
	t.Parallel()
	big := func(n int) json.RawMessage { // a JSON string of exactly n bytes
		return json.RawMessage(`"` + strings.Repeat("x", n-2) + `"`)
	}
	tests := []struct {
		name string
		v    json.RawMessage
		ok   bool
	}{
		{"number", json.RawMessage(`20`), true},
		{"string", json.RawMessage(`"x"`), true},
		{"object", json.RawMessage(`{"a":[1,2,{"b":null}]}`), true},
		{"null", json.RawMessage(`null`), true},
		{"bool", json.RawMessage(`false`), true},
		{"exactly 512 KiB", big(registry.MaxConfigValueLen), true},
		{"512 KiB + 1", big(registry.MaxConfigValueLen + 1), false},
		{"empty", nil, false},
		{"empty non-nil", json.RawMessage{}, false},
		{"truncated object", json.RawMessage(`{"a":`), false},
		{"bare word", json.RawMessage(`hello`), false},
		{"trailing garbage", json.RawMessage(`1 2`), false},
		{"single quotes", json.RawMessage(`'x'`), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := registry.ValidateConfigValue("value", tc.v)
			if tc.ok {
				wantField(t, e, "")
			} else {
				wantField(t, e, "value")
			}
		})
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{"web": true, "a": true, "": false, "Web": false, "-a": false, strings.Repeat("a", 64): false} {
		if got := registry.ValidName(s); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", s, got, want)
		}
	}
}
