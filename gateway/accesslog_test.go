package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/nexus/nexus/registry"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(s.b.Bytes()), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func TestAccessLog(t *testing.T) {
	store := registry.NewStore()
	up := startUpstream(t, "a")
	host, port, _ := net.SplitHostPort(up.addr())
	tx := store.WriteTxn(1)
	_, _, _ = tx.RegisterInstance(registry.Instance{ID: "a", Service: "web", Type: "http", Address: host, Port: atoi(port), Node: "n1", Status: "passing"})
	r, _ := registry.NormalizeRoute(registry.Route{ID: "r", Paths: []string{"/web/"}, Service: "web", StripPath: true})
	_, _, _, _ = tx.UpsertRoute(r, false)
	tx.Commit()
	var buf syncBuffer
	g, err := New(Deps{Store: store, Node: "n1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		AccessLog: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(func() { _ = g.Shutdown(t.Context()) })
	for _, path := range []string{"/web/x?q=1", "/nowhere"} {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+path, nil)
		req.Header.Set("X-Request-ID", "rid-"+path[1:4])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	lines := buf.lines()
	if len(lines) != 2 {
		t.Fatalf("%d access log lines: %s", len(lines), buf.b.String())
	}
	want := []map[string]any{
		{"route": "r", "service": "web", "status": 200.0, "upstream": up.addr(), "request_id": "rid-web", "path": "/web/x", "method": "GET", "attempts": 1.0},
		{"status": 404.0, "error": CodeRouteNotFound, "request_id": "rid-now", "path": "/nowhere"},
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, lines[i][k], v, lines[i])
			}
		}
		if _, ok := lines[i]["latency_ms"]; !ok {
			t.Errorf("line %d has no latency_ms", i)
		}
	}
}

func TestKeySources(t *testing.T) {
	e := newEnv(t, Options{})
	ups := []*upstream_{startUpstream(t, "a"), startUpstream(t, "b"), startUpstream(t, "c")}
	for _, u := range ups {
		e.instance("web", u.name, u.addr(), nil)
	}
	e.route(registry.Route{ID: "cookie", Paths: []string{"/c/"}, Service: "web", LoadBalancer: "consistent_hash", HashOn: "cookie:session"})
	seen := map[string]string{}
	for round := 0; round < 3; round++ {
		for s := 0; s < 20; s++ {
			sess := "s" + string(rune('a'+s))
			got := e.do("GET", "", "/c/", map[string]string{"Cookie": "session=" + sess + "; other=1"}, nil).header.Get("X-Upstream")
			if prev, ok := seen[sess]; ok && prev != got {
				t.Fatalf("session %s moved from %s to %s", sess, prev, got)
			}
			seen[sess] = got
		}
	}
	// Rate limit keyed by a JWT claim: one bucket per subject.
	e.config("gateway/jwt/default", map[string]any{"secret": "s3cret-s3cret-s3cret"})
	e.route(registry.Route{ID: "claim", Paths: []string{"/j/"}, Service: "web", Auth: &registry.AuthPolicy{Type: "jwt"},
		RateLimit: &registry.RateLimit{RPS: 0.001, Burst: 1, Key: "jwt:sub"}})
	for _, sub := range []string{"alice", "bob"} {
		tok := signHS(t, sub, "s3cret-s3cret-s3cret")
		h := map[string]string{"Authorization": "Bearer " + tok}
		if r := e.do("GET", "", "/j/", h, nil); r.status != 200 {
			t.Fatalf("%s first request: %d", sub, r.status)
		}
		if r := e.do("GET", "", "/j/", h, nil); r.status != 429 {
			t.Fatalf("%s second request: %d, want 429", sub, r.status)
		}
	}
}
