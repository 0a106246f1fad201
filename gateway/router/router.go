// Package router matches a request's host, path and method against a set of
// gateway routes. A Table is immutable once built and safe for concurrent use;
// Match does not allocate.
//
// Matching order (docs/api.md, "Gateway routes"): exact host, then wildcard
// host (longest suffix first), then routes without hosts; within a host class,
// exact path, then longest prefix; routes with methods before those without;
// then higher priority; then id.
package router

import (
	"sort"
	"strings"
)

// Entry is one route as the router sees it.
type Entry[T any] struct {
	ID       string
	Hosts    []string // "api.example", "*.example", "api.example:8080"; empty: any host
	Paths    []string // each starts with "/"
	Exact    bool     // paths match exactly instead of by prefix
	Methods  []string // upper case; empty: any method
	Priority int
	Value    T
}

// Match is the result of a successful lookup.
type Match[T any] struct {
	Value T
	// Path is the route path that matched (the prefix, for prefix routes).
	Path string
	// Exact reports an exact-path match.
	Exact bool
}

// Table is a compiled, immutable routing table.
type Table[T any] struct {
	exactHosts map[string]*group[T]
	wildcards  []wildcard[T] // longest suffix first
	anyHost    *group[T]
	// hostsWithPort is true when some route host carries a port; only then
	// is the full host:port tried before the bare host name.
	hostsWithPort bool
	size          int
}

type wildcard[T any] struct {
	suffix string // ".example" for "*.example"
	g      *group[T]
}

// group holds the routes of one host class.
type group[T any] struct {
	exact      map[string][]*item[T]
	prefixes   map[string][]*item[T]
	prefixLens []int // distinct prefix lengths, longest first
}

type item[T any] struct {
	id       string
	path     string
	exact    bool
	methods  []string
	priority int
	value    T
}

// Build compiles entries into a Table. Entries are copied; their slices may
// be reused by the caller afterwards.
func Build[T any](entries []Entry[T]) *Table[T] {
	// Size every map first: growing them dominated the cost of a build
	// with thousands of routes.
	type sizes struct{ exact, prefix int }
	count := map[string]*sizes{}
	for i := range entries {
		e := &entries[i]
		hosts := e.Hosts
		if len(hosts) == 0 {
			hosts = anyHostKey
		}
		for _, h := range hosts {
			c := count[strings.ToLower(h)]
			if c == nil {
				c = &sizes{}
				count[strings.ToLower(h)] = c
			}
			if e.Exact {
				c.exact += len(e.Paths)
			} else {
				c.prefix += len(e.Paths)
			}
		}
	}
	sized := func(h string) *group[T] {
		c := count[h]
		return &group[T]{exact: make(map[string][]*item[T], c.exact), prefixes: make(map[string][]*item[T], c.prefix)}
	}
	t := &Table[T]{exactHosts: make(map[string]*group[T], len(count))}
	wild := map[string]*group[T]{}
	for i := range entries {
		e := &entries[i]
		methods := append([]string(nil), e.Methods...)
		for _, p := range e.Paths {
			it := &item[T]{id: e.ID, path: p, exact: e.Exact, methods: methods, priority: e.Priority, value: e.Value}
			if len(e.Hosts) == 0 {
				if t.anyHost == nil {
					t.anyHost = sized(anyHostKey[0])
				}
				t.anyHost.add(it)
				continue
			}
			for _, h := range e.Hosts {
				h = strings.ToLower(h)
				if strings.Contains(h, ":") {
					t.hostsWithPort = true
				}
				if suffix, ok := strings.CutPrefix(h, "*"); ok {
					g := wild[suffix]
					if g == nil {
						g = sized(h)
						wild[suffix] = g
					}
					g.add(it)
					continue
				}
				g := t.exactHosts[h]
				if g == nil {
					g = sized(h)
					t.exactHosts[h] = g
				}
				g.add(it)
			}
		}
		t.size++
	}
	for s, g := range wild {
		t.wildcards = append(t.wildcards, wildcard[T]{suffix: s, g: g})
	}
	sort.Slice(t.wildcards, func(i, j int) bool {
		a, b := t.wildcards[i].suffix, t.wildcards[j].suffix
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return a < b
	})
	for _, g := range t.exactHosts {
		g.finish()
	}
	for _, w := range t.wildcards {
		w.g.finish()
	}
	if t.anyHost != nil {
		t.anyHost.finish()
	}
	return t
}

// anyHostKey stands for "no host" when sizing the groups (not a valid
// host name, so it never meets a real one).
var anyHostKey = []string{" any"}

// Len returns the number of routes in the table.
func (t *Table[T]) Len() int { return t.size }

func (g *group[T]) add(it *item[T]) {
	if it.exact {
		g.exact[it.path] = append(g.exact[it.path], it)
		return
	}
	g.prefixes[it.path] = append(g.prefixes[it.path], it)
}

// less orders routes that match the same host class and path: routes with
// methods first, then higher priority, then id.
func less[T any](a, b *item[T]) bool {
	am, bm := len(a.methods) > 0, len(b.methods) > 0
	if am != bm {
		return am
	}
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	return a.id < b.id
}

func (g *group[T]) finish() {
	for _, its := range g.exact {
		if len(its) > 1 {
			sort.SliceStable(its, func(i, j int) bool { return less(its[i], its[j]) })
		}
	}
	seen := map[int]bool{}
	for p, its := range g.prefixes {
		if len(its) > 1 {
			sort.SliceStable(its, func(i, j int) bool { return less(its[i], its[j]) })
		}
		if !seen[len(p)] {
			seen[len(p)] = true
			g.prefixLens = append(g.prefixLens, len(p))
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(g.prefixLens)))
}

// Match finds the route for a request. host is the Host header (any case,
// optionally with a port), path the normalized request path, method the
// upper-case method. It does not allocate.
func (t *Table[T]) Match(host, path, method []byte) (Match[T], bool) {
	var buf [256]byte
	var lower []byte
	if len(host) <= len(buf) {
		lower = buf[:len(host)]
		for i, c := range host {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			lower[i] = c
		}
	}
	name := lower
	if i := lastColon(lower); i >= 0 {
		name = lower[:i]
	}
	if len(t.exactHosts) > 0 && lower != nil {
		if t.hostsWithPort && len(name) != len(lower) {
			if g := t.exactHosts[string(lower)]; g != nil {
				if m, ok := g.match(path, method); ok {
					return m, true
				}
			}
		}
		if g := t.exactHosts[string(name)]; g != nil {
			if m, ok := g.match(path, method); ok {
				return m, true
			}
		}
	}
	for i := range t.wildcards {
		w := &t.wildcards[i]
		if !hasSuffix(name, w.suffix) && !hasSuffix(lower, w.suffix) {
			continue
		}
		if m, ok := w.g.match(path, method); ok {
			return m, true
		}
	}
	if t.anyHost != nil {
		return t.anyHost.match(path, method)
	}
	return Match[T]{}, false
}

func (g *group[T]) match(path, method []byte) (Match[T], bool) {
	if its, ok := g.exact[string(path)]; ok {
		if it := pick(its, method); it != nil {
			return Match[T]{Value: it.value, Path: it.path, Exact: true}, true
		}
	}
	for _, n := range g.prefixLens {
		if n > len(path) {
			continue
		}
		if its, ok := g.prefixes[string(path[:n])]; ok {
			if it := pick(its, method); it != nil {
				return Match[T]{Value: it.value, Path: it.path}, true
			}
		}
	}
	return Match[T]{}, false
}

func pick[T any](its []*item[T], method []byte) *item[T] {
	for _, it := range its {
		if len(it.methods) == 0 {
			return it
		}
		for _, m := range it.methods {
			if m == string(method) {
				return it
			}
		}
	}
	return nil
}

// lastColon returns the index of the port separator of a host, or -1. An
// IPv6 literal "[::1]:80" has its port after the closing bracket.
func lastColon(h []byte) int {
	for i := len(h) - 1; i >= 0; i-- {
		switch h[i] {
		case ':':
			return i
		case ']':
			return -1
		}
	}
	return -1
}

func hasSuffix(b []byte, s string) bool {
	return len(b) > len(s) && string(b[len(b)-len(s):]) == s
}
