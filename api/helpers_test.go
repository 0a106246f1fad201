package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// fakeWriter applies commands straight to a real FSM with increasing
// indexes, like a single-node Raft. errFn, when set, fails the write first.
type fakeWriter struct {
	mu    sync.Mutex
	fsm   *fsm.FSM
	index uint64
	calls int
	errFn func(ctx context.Context, cmd []byte) error
}

func (w *fakeWriter) Apply(ctx context.Context, cmd []byte) (*command.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.errFn != nil {
		if err := w.errFn(ctx, cmd); err != nil {
			return nil, err
		}
	}
	w.index++
	out := w.fsm.Apply(&raft.Log{Index: w.index, Type: raft.LogCommand, Data: cmd})
	res, ok := out.(*command.Result)
	if !ok {
		return nil, errors.New("fsm returned no result")
	}
	return res, nil
}

func (w *fakeWriter) Calls() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls
}

type fakeReader struct{ store *registry.Store }

func (r fakeReader) Store() *registry.Store { return r.store }

// fakeCluster answers with function fields; nil fields have defaults.
type fakeCluster struct {
	name      string
	raftFn    func() RaftStatus
	membersFn func() []Member
	leaderFn  func() (LeaderInfo, bool)
	readyFn   func() bool
	leaveFn   func(ctx context.Context) error
}

func (c *fakeCluster) NodeName() string { return c.name }

func (c *fakeCluster) Raft() RaftStatus {
	if c.raftFn != nil {
		return c.raftFn()
	}
	return RaftStatus{State: "Leader", Term: 3, Leader: c.name, CommitIndex: 10, AppliedIndex: 10,
		Servers: []RaftServer{{ID: c.name, Address: "127.0.0.1:8300", Suffrage: "voter", Leader: true}}}
}

func (c *fakeCluster) Members() []Member {
	if c.membersFn != nil {
		return c.membersFn()
	}
	return []Member{{Name: c.name, Address: "127.0.0.1:8301", Status: "alive", Raft: "leader",
		HTTPAddr: "127.0.0.1:8500", GatewayAddr: "127.0.0.1:8080"}}
}

func (c *fakeCluster) Leader() (LeaderInfo, bool) {
	if c.leaderFn != nil {
		return c.leaderFn()
	}
	return LeaderInfo{Node: c.name, RaftAddr: "127.0.0.1:8300", HTTPAddr: "127.0.0.1:8500"}, true
}

func (c *fakeCluster) Ready() bool {
	if c.readyFn != nil {
		return c.readyFn()
	}
	return true
}

func (c *fakeCluster) Leave(ctx context.Context, _ Relay) error {
	if c.leaveFn != nil {
		return c.leaveFn(ctx)
	}
	return nil
}

type fakeConsistency struct {
	fn func(ctx context.Context) error
}

func (f fakeConsistency) ConsistentRead(ctx context.Context) error { return f.fn(ctx) }

// harness is a real store + FSM + API behind an in-memory listener.
type harness struct {
	t       *testing.T
	srv     *Server
	store   *registry.Store
	fsm     *fsm.FSM
	writer  *fakeWriter
	cluster *fakeCluster
	reg     *prometheus.Registry
	client  *fasthttp.Client
	now     time.Time
}

func newHarness(t *testing.T, mod ...func(*Deps)) *harness {
	t.Helper()
	store := registry.NewStore()
	codec := command.NewCodec()
	f := fsm.New(fsm.Deps{Store: store, Codec: codec})
	h := &harness{t: t, store: store, fsm: f, writer: &fakeWriter{fsm: f}, cluster: &fakeCluster{name: "n1"},
		reg: prometheus.NewRegistry(), now: time.Unix(1700000000, 0)}
	deps := Deps{
		Writer: h.writer, Reader: fakeReader{store}, Cluster: h.cluster, Codec: codec,
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registry: h.reg, Gatherer: h.reg, Version: "test",
		Now: func() time.Time { return h.now },
	}
	for _, m := range mod {
		m(&deps)
	}
	srv, err := New(deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.srv = srv
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	// Dial returns once Serve accepted: Serve runs before any Shutdown
	// (which, before Serve, would leave it serving for ever).
	if c, err := ln.Dial(); err == nil {
		c.Close()
	}
	h.client = &fasthttp.Client{
		Dial:                func(string) (net.Conn, error) { return ln.Dial() },
		ReadTimeout:         10 * time.Second,
		WriteTimeout:        10 * time.Second,
		MaxResponseBodySize: 16 << 20,
		// A request up to 64 KiB goes into the in-memory pipe in one write:
		// a server that refuses it after the headers (413) and closes then
		// cannot fail the client's write before the client reads the answer.
		WriteBufferSize:          64 << 10,
		DisablePathNormalizing:   true,
		NoDefaultUserAgentHeader: true,
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return h
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// resp is a copied response.
type resp struct {
	status int
	header map[string]string
	body   []byte
}

func (r *resp) get(h string) string { return r.header[strings.ToLower(h)] }

// do sends a request; hdr is name, value pairs.
func (h *harness) do(method, uri string, body any, hdr ...string) *resp {
	h.t.Helper()
	r, err := h.tryDo(method, uri, body, hdr...)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, uri, err)
	}
	return r
}

// tryDo is do that returns the transport error.
func (h *harness) tryDo(method, uri string, body any, hdr ...string) (*resp, error) {
	h.t.Helper()
	req := fasthttp.AcquireRequest()
	res := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://nexus" + uri)
	switch b := body.(type) {
	case nil:
	case string:
		req.SetBodyString(b)
	case []byte:
		req.SetBody(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		req.SetBody(raw)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if err := h.client.DoTimeout(req, res, 20*time.Second); err != nil {
		return nil, err
	}
	out := &resp{status: res.StatusCode(), header: map[string]string{}, body: append([]byte(nil), res.Body()...)}
	for k, v := range res.Header.All() {
		out.header[strings.ToLower(string(k))] = string(v)
	}
	return out, nil
}

// must asserts the status and decodes the body into v (when not nil).
func (h *harness) must(r *resp, status int, v any) {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			h.t.Fatalf("decode %s: %v", r.body, err)
		}
	}
}

// apiErr is the decoded error shape.
type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func (h *harness) mustErr(r *resp, status int, code string) apiErr {
	h.t.Helper()
	var e apiErr
	h.must(r, status, &e)
	if e.Error.Code != code {
		h.t.Fatalf("code %q, want %q; body %s", e.Error.Code, code, r.body)
	}
	if ct := r.get("Content-Type"); ct != "application/json" {
		h.t.Fatalf("content type %q", ct)
	}
	return e
}

func (h *harness) dump() *registry.Dump {
	tx := h.store.ReadTxn()
	defer tx.Abort()
	return tx.Dump()
}

func (h *harness) assertUnchanged(before *registry.Dump) {
	h.t.Helper()
	if after := h.dump(); !reflect.DeepEqual(before, after) {
		h.t.Fatalf("store changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

func (h *harness) register(body map[string]any) registry.Instance {
	h.t.Helper()
	r := h.do("POST", "/services/register", body)
	if r.status != 200 && r.status != 201 {
		h.t.Fatalf("register: %d %s", r.status, r.body)
	}
	var in registry.Instance
	h.must(r, r.status, &in)
	return in
}

func reg(name, typ, addr string, port int, extra ...any) map[string]any {
	m := map[string]any{"name": name, "type": typ, "address": addr, "port": port}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

// Contact derives the cheap header facts from the fake's Leader and Raft.
func (c *fakeCluster) Contact() (bool, time.Duration) {
	_, known := c.Leader()
	st := c.Raft()
	if strings.EqualFold(st.State, "leader") {
		return known, 0
	}
	return known, st.LastContact
}
