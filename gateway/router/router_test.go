package router

import "testing"

func TestMatchOrder(t *testing.T) {
	entries := []Entry[string]{
		{ID: "any-root", Paths: []string{"/"}},
		{ID: "any-api", Paths: []string{"/api/"}},
		{ID: "any-api-get", Paths: []string{"/api/"}, Methods: []string{"GET"}},
		{ID: "any-api-exact", Paths: []string{"/api/status"}, Exact: true},
		{ID: "any-api-v1", Paths: []string{"/api/v1/"}},
		{ID: "prio-low", Paths: []string{"/p/"}, Priority: 1},
		{ID: "prio-high", Paths: []string{"/p/"}, Priority: 5},
		{ID: "tie-b", Paths: []string{"/t/"}},
		{ID: "tie-a", Paths: []string{"/t/"}},
		{ID: "wild", Hosts: []string{"*.example"}, Paths: []string{"/"}},
		{ID: "wild-deep", Hosts: []string{"*.svc.example"}, Paths: []string{"/"}},
		{ID: "exact-host", Hosts: []string{"api.example"}, Paths: []string{"/only/"}},
		{ID: "port-host", Hosts: []string{"api.example:8080"}, Paths: []string{"/only/"}},
		{ID: "multi", Hosts: []string{"m.test"}, Paths: []string{"/a", "/b"}, Exact: true},
		{ID: "post-only", Paths: []string{"/post"}, Exact: true, Methods: []string{"POST"}},
	}
	for i := range entries {
		entries[i].Value = entries[i].ID
	}
	tbl := Build(entries)
	cases := []struct {
		name, host, path, method string
		want                     string // "" = no match
		wantPath                 string
	}{
		{"root fallback", "x", "/nothing", "GET", "any-root", "/"},
		{"longest prefix", "x", "/api/v1/users", "DELETE", "any-api-v1", "/api/v1/"},
		{"methods first", "x", "/api/x", "GET", "any-api-get", "/api/"},
		{"methods miss falls to no-methods", "x", "/api/x", "PUT", "any-api", "/api/"},
		{"exact beats prefix", "x", "/api/status", "GET", "any-api-exact", "/api/status"},
		{"exact only exact", "x", "/api/status/x", "PUT", "any-api", "/api/"},
		{"priority", "x", "/p/1", "GET", "prio-high", "/p/"},
		{"id tie-break", "x", "/t/1", "GET", "tie-a", "/t/"},
		{"wildcard", "foo.example", "/only/x", "GET", "wild", "/"},
		{"wildcard case", "FOO.Example", "/x", "GET", "wild", "/"},
		{"longest wildcard", "a.svc.example", "/x", "GET", "wild-deep", "/"},
		{"wildcard needs label", "example", "/x", "GET", "any-root", "/"},
		{"exact host first", "api.example", "/only/x", "GET", "exact-host", "/only/"},
		{"exact host ignores port", "api.example:9999", "/only/x", "GET", "exact-host", "/only/"},
		{"host with port", "api.example:8080", "/only/x", "GET", "port-host", "/only/"},
		{"exact host path miss falls to wildcard", "api.example", "/other", "GET", "wild", "/"},
		{"multi path a", "m.test", "/a", "GET", "multi", "/a"},
		{"multi path b", "m.test", "/b", "GET", "multi", "/b"},
		{"multi path miss", "m.test", "/c", "GET", "any-root", "/"},
		{"method filter exact", "x", "/post", "GET", "any-root", "/"},
		{"method filter exact hit", "x", "/post", "POST", "post-only", "/post"},
		{"ipv6 host", "[::1]:80", "/x", "GET", "any-root", "/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, ok := tbl.Match([]byte(c.host), []byte(c.path), []byte(c.method))
			if c.want == "" {
				if ok {
					t.Fatalf("matched %q, want no match", m.Value)
				}
				return
			}
			if !ok || m.Value != c.want || m.Path != c.wantPath {
				t.Fatalf("got %q (%q, %v), want %q (%q)", m.Value, m.Path, ok, c.want, c.wantPath)
			}
		})
	}
}

func TestNoMatch(t *testing.T) {
	tbl := Build([]Entry[int]{{ID: "a", Hosts: []string{"a.test"}, Paths: []string{"/x"}}})
	for _, c := range []struct{ host, path string }{{"b.test", "/x"}, {"a.test", "/y"}, {"", "/x"}} {
		if m, ok := tbl.Match([]byte(c.host), []byte(c.path), []byte("GET")); ok {
			t.Errorf("%s%s matched %v", c.host, c.path, m.Value)
		}
	}
	if Build[int](nil).Len() != 0 {
		t.Fatal("empty table has routes")
	}
}

func TestMatchAllocs(t *testing.T) {
	tbl := Build([]Entry[int]{
		{ID: "a", Hosts: []string{"a.test"}, Paths: []string{"/x/"}, Methods: []string{"GET"}},
		{ID: "w", Hosts: []string{"*.test"}, Paths: []string{"/"}},
		{ID: "b", Paths: []string{"/b/"}},
	})
	host, path, method := []byte("A.test:80"), []byte("/x/y/z"), []byte("GET")
	n := testing.AllocsPerRun(1000, func() {
		if _, ok := tbl.Match(host, path, method); !ok {
			t.Fatal("no match")
		}
	})
	if n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
}

func BenchmarkMatch(b *testing.B) {
	var es []Entry[int]
	for i := 0; i < 100; i++ {
		es = append(es, Entry[int]{ID: string(rune('a' + i%26)), Paths: []string{"/svc" + string(rune('a'+i%26)) + "/"}, Value: i})
	}
	es = append(es, Entry[int]{ID: "target", Hosts: []string{"api.example"}, Paths: []string{"/api/v1/"}})
	tbl := Build(es)
	host, path, method := []byte("api.example"), []byte("/api/v1/users/42"), []byte("GET")
	b.ReportAllocs()
	for b.Loop() {
		tbl.Match(host, path, method)
	}
}
