package router

import (
	"strings"
	"testing"
)

// FuzzMatch builds a table from fuzzed route fields and matches a fuzzed
// request against it: no panic, and any match satisfies the contract (its
// path is the request path or a prefix of it, its methods admit the request
// method, its host admits the request host).
//
//	go test ./gateway/router -run=^$ -fuzz=FuzzMatch -fuzztime=30s
func FuzzMatch(f *testing.F) {
	for _, s := range []struct {
		routeHost, routePath, routeMethod string
		exact                             bool
		host, path, method                string
	}{
		{"api.example", "/web/", "GET", false, "api.example", "/web/x", "GET"},
		{"*.example", "/", "", false, "a.b.example:8080", "/anything", "POST"},
		{"", "/exact", "", true, "h", "/exact", "GET"},
		{"API.Example:8080", "/a", "PUT", false, "api.example:8080", "/a/b", "PUT"},
		{"[::1]:80", "/", "", false, "[::1]:80", "/", "GET"},
		{"*", "", "", false, "", "", ""},
		{"x", "/\x00", "G\xff", true, strings.Repeat("h", 300), "/\x00", "G\xff"},
	} {
		f.Add(s.routeHost, s.routePath, s.routeMethod, s.exact, s.host, s.path, s.method)
	}
	f.Fuzz(func(t *testing.T, routeHost, routePath, routeMethod string, exact bool, host, path, method string) {
		var hosts, methods []string
		if routeHost != "" {
			hosts = strings.Split(routeHost, ",")
		}
		if routeMethod != "" {
			methods = strings.Split(routeMethod, ",")
		}
		entries := []Entry[string]{
			{ID: "fuzz", Hosts: hosts, Paths: []string{routePath}, Exact: exact, Methods: methods, Value: "fuzz"},
			{ID: "catch", Paths: []string{"/"}, Methods: []string{"GET"}, Value: "catch"},
			{ID: "wild", Hosts: []string{"*.wild"}, Paths: []string{"/w"}, Value: "wild"},
		}
		tbl := Build(entries)
		if tbl.Len() != len(entries) {
			t.Fatalf("Len %d, want %d", tbl.Len(), len(entries))
		}
		m, ok := tbl.Match([]byte(host), []byte(path), []byte(method))
		if !ok {
			return
		}
		if m.Exact && m.Path != path {
			t.Fatalf("exact match %q for path %q", m.Path, path)
		}
		if !m.Exact && !strings.HasPrefix(path, m.Path) {
			t.Fatalf("prefix match %q is not a prefix of %q", m.Path, path)
		}
		switch m.Value {
		case "catch":
			if method != "GET" {
				t.Fatalf("GET-only route matched method %q", method)
			}
		case "fuzz":
			if len(methods) > 0 && !contains(methods, method) {
				t.Fatalf("route with methods %q matched method %q", methods, method)
			}
		case "wild":
			if !strings.Contains(strings.ToLower(host), ".wild") {
				t.Fatalf("*.wild matched host %q", host)
			}
		default:
			t.Fatalf("unknown value %q", m.Value)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
