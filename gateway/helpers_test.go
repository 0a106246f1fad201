package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/registry"
)

// env is a gateway on 127.0.0.1 reading a store the test writes to.
type env struct {
	t      *testing.T
	store  *registry.Store
	g      *Gateway
	addr   string
	reg    *prometheus.Registry
	index  uint64
	client *http.Client
	mu     sync.Mutex
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	e := &env{t: t, store: registry.NewStore(), reg: prometheus.NewRegistry()}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	g, err := New(Deps{Store: e.store, Node: "n1", Logger: logger, Registerer: e.reg, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	e.g, e.addr = g, ln.Addr().String()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	e.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// write applies f in the next write transaction and waits until the
// gateway's table reflects it.
func (e *env) write(f func(tx *registry.Tx)) {
	e.t.Helper()
	e.writeNoWait(f)
	e.waitIndex(e.index)
}

// serviceRouted reports whether the current table routes to service (only
// then does an instance change rebuild the table).
func (e *env) serviceRouted(service string) bool {
	for _, slot := range e.g.Table().routes {
		if r := slot.Load(); r.service == service {
			return true
		}
	}
	return false
}

func (e *env) writeNoWait(f func(tx *registry.Tx)) {
	e.t.Helper()
	e.mu.Lock()
	e.index++
	idx := e.index
	tx := e.store.WriteTxn(idx)
	f(tx)
	tx.Commit()
	e.mu.Unlock()
}

func (e *env) waitIndex(idx uint64) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.g.Table().index < idx {
		if time.Now().After(deadline) {
			e.t.Fatalf("table did not reach index %d (at %d)", idx, e.g.Table().index)
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *env) route(r registry.Route) {
	e.t.Helper()
	n, verr := registry.NormalizeRoute(r)
	if verr != nil {
		e.t.Fatalf("route %s: %v", r.ID, verr)
	}
	e.write(func(tx *registry.Tx) {
		if _, _, _, err := tx.UpsertRoute(n, false); err != nil {
			e.t.Fatal(err)
		}
	})
}

func (e *env) deleteRoute(id string) {
	e.t.Helper()
	e.write(func(tx *registry.Tx) {
		if _, err := tx.DeleteRoute(id); err != nil {
			e.t.Fatal(err)
		}
	})
}

// instance registers an instance of service at addr ("host:port").
func (e *env) instance(service, id, addr string, md map[string]string) {
	e.t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	if md == nil {
		md = map[string]string{}
	}
	write := e.write
	if !e.serviceRouted(service) {
		write = e.writeNoWait
	}
	write(func(tx *registry.Tx) {
		in := registry.Instance{ID: id, Service: service, Type: "http", Node: "n1", Address: host, Port: p,
			Status: registry.StatusPassing, Metadata: md, Tags: []string{}, Checks: []registry.Check{}, DependsOn: []string{}}
		if _, _, err := tx.RegisterInstance(in); err != nil {
			e.t.Fatal(err)
		}
	})
}

func (e *env) setStatus(service, id, status string) {
	e.t.Helper()
	e.write(func(tx *registry.Tx) {
		if _, _, err := tx.SetStatus(service, id, status, ""); err != nil {
			e.t.Fatal(err)
		}
	})
}

func (e *env) config(key string, value any) {
	e.t.Helper()
	b, err := json.Marshal(value)
	if err != nil {
		e.t.Fatal(err)
	}
	e.write(func(tx *registry.Tx) {
		if _, _, err := tx.ConfigSet([]registry.ConfigWrite{{Key: key, Value: b}}); err != nil {
			e.t.Fatal(err)
		}
	})
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) errorCode() string {
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Code
}

// do sends a request through the gateway. host "" uses the gateway address.
func (e *env) do(method, host, path string, header map[string]string, body io.Reader) resp {
	e.t.Helper()
	r, err := e.try(method, host, path, header, body)
	if err != nil {
		e.t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	return r
}

func (e *env) try(method, host, path string, header map[string]string, body io.Reader) (resp, error) {
	req, err := http.NewRequest(method, "http://"+e.addr+path, body)
	if err != nil {
		return resp{}, err
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := e.client.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}, nil
}

// upstream is a real HTTP server on 127.0.0.1 that names itself in
// X-Upstream and records what it received.
type upstream_ struct {
	name    string
	srv     *httptest.Server
	hits    atomic.Int64
	handler atomic.Pointer[http.HandlerFunc]
	last    atomic.Pointer[http.Request]
}

func startUpstream(t *testing.T, name string) *upstream_ {
	t.Helper()
	u := &upstream_{name: name}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.last.Store(r.Clone(context.Background()))
		w.Header().Set("X-Upstream", name)
		if h := u.handler.Load(); h != nil {
			(*h)(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello from "+name+" path="+r.URL.Path)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream_) addr() string { return u.srv.Listener.Addr().String() }

func (u *upstream_) handle(f http.HandlerFunc) { u.handler.Store(&f) }

// kill closes the listener and every connection, like a crashed process.
func (u *upstream_) kill() {
	u.srv.Listener.Close()
	u.srv.CloseClientConnections()
}

// deadAddr returns a 127.0.0.1 address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func intp(n int) *int { return &n }
