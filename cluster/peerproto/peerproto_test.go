package peerproto_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/cluster/peerproto"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

const secret = "cluster-secret"

// node is the Node behind the real Service: it checks MACs as the cluster
// does and answers what the test sets.
type node struct {
	mu         sync.Mutex // concurrent forwards write got and from
	forwardErr error
	forwardRes *command.Result
	readErr    error
	keyringErr error
	got        []byte
	from       string
}

func (n *node) Forwarded(_ context.Context, mac, from string, cmd []byte) (*command.Result, error) {
	if !peerproto.Verify(secret, mac, cmd) {
		return nil, peerproto.ErrBadMAC
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = cmd
	n.from = from
	return n.forwardRes, n.forwardErr
}

func (n *node) ForwardedReadIndex(_ context.Context, mac string, nonce []byte) (uint64, error) {
	if !peerproto.Verify(secret, mac, nonce) {
		return 0, peerproto.ErrBadMAC
	}
	return 77, n.readErr
}

func (n *node) LocalRaftStats() peerproto.RaftStats {
	return peerproto.RaftStats{Node: "n1", State: "follower", Term: 4, LastLogIndex: 9, LastLogTerm: 3, AppliedIndex: 8, LastContactMs: -1}
}

func (n *node) KeyringForwarded(mac string, body []byte) error {
	if !peerproto.Verify(secret, mac, body) {
		return peerproto.ErrBadMAC
	}
	var r peerproto.KeyringRequest
	if err := json.Unmarshal(body, &r); err != nil || r.Op != "use" {
		return fmt.Errorf("unexpected request %s", body)
	}
	return n.keyringErr
}

// coded is an error that carries a code.
type coded struct{}

func (coded) Error() string     { return "bad key" }
func (coded) ErrorCode() string { return "invalid" }

// serve runs handler on a loopback port until the test ends.
func serve(t *testing.T, handler fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: handler}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// start serves the real Service of n the way the admin listener mounts it.
func start(t *testing.T, n *node) (string, *peerproto.Client) {
	svc := peerproto.NewService(n, 2*time.Second, 0)
	addr := serve(t, func(ctx *fasthttp.RequestCtx) {
		if !peerproto.IsInternal(string(ctx.Path())) {
			ctx.SetStatusCode(404)
			return
		}
		svc.Serve(ctx)
	})
	c := peerproto.NewClient(peerproto.Config{})
	t.Cleanup(c.Close)
	return addr, c
}

func TestSignVerify(t *testing.T) {
	mac := peerproto.Sign(secret, []byte("body"))
	for _, tc := range []struct {
		secret, mac, body string
		ok                bool
	}{
		{secret, mac, "body", true},
		{secret, mac, "other", false},
		{"other", mac, "body", false},
		{"", peerproto.Sign("", []byte("body")), "body", false}, // no secret: nothing verifies
		{secret, "", "body", false},
	} {
		if got := peerproto.Verify(tc.secret, tc.mac, []byte(tc.body)); got != tc.ok {
			t.Errorf("Verify(%q, %q, %q) = %v", tc.secret, tc.mac, tc.body, got)
		}
	}
}

// Every outcome of a forwarded write, through the real handler and the
// real client: what the follower concludes is explicit. Only a refusal
// before applying (bad MAC, not the leader) is "surely not applied"
// (no_leader); anything unexpected is "maybe applied".
func TestForwardOutcomes(t *testing.T) {
	ok := &command.Result{Index: 5, Created: true, Value: map[string]string{"key": "k"}}
	business := &command.Result{Index: 6, Err: &command.Error{Code: "cas_conflict", Message: "cas"}}
	cases := []struct {
		name     string
		secret   string
		res      *command.Result
		err      error
		status   int    // of the leader's answer
		code     string // of the leader's answer
		outcome  error  // the follower's error
		wantBody string // the follower's Result.Value
	}{
		{name: "applied", secret: secret, res: ok, status: 200, wantBody: `{"key":"k"}`},
		{name: "business error", secret: secret, res: business, status: 200},
		{name: "bad mac", secret: "wrong", status: 403, code: "forbidden", outcome: command.ErrNoLeader},
		{name: "not the leader", secret: secret, err: command.ErrNoLeader, status: 503, code: "no_leader", outcome: command.ErrNoLeader},
		{name: "lost", secret: secret, err: fmt.Errorf("%w: leadership lost", command.ErrOutcomeUnknown), status: 504, code: "outcome_unknown", outcome: command.ErrOutcomeUnknown},
		{name: "not applied", secret: secret, err: command.ErrNotApplied, status: 504, code: "outcome_unknown", outcome: command.ErrOutcomeUnknown},
		{name: "deadline", secret: secret, err: context.DeadlineExceeded, status: 504, code: "outcome_unknown", outcome: command.ErrOutcomeUnknown},
		{name: "unexpected", secret: secret, err: errors.New("disk on fire"), status: 500, code: "internal", outcome: command.ErrOutcomeUnknown},
		{name: "no result", secret: secret, status: 500, code: "internal", outcome: command.ErrOutcomeUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err != nil {
				if got := peerproto.ForwardError(tc.err); got.Status != tc.status || got.Code != tc.code {
					t.Fatalf("ForwardError = %d %s, want %d %s", got.Status, got.Code, tc.status, tc.code)
				}
			}
			n := &node{forwardRes: tc.res, forwardErr: tc.err}
			addr, c := start(t, n)
			res, err := c.Forward(context.Background(), addr, tc.secret, "n2", []byte("cmd"), time.Second)
			if tc.outcome != nil {
				if !errors.Is(err, tc.outcome) || res != nil {
					t.Fatalf("Forward = %+v, %v; want %v", res, err, tc.outcome)
				}
				if other := map[error]error{command.ErrNoLeader: command.ErrOutcomeUnknown, command.ErrOutcomeUnknown: command.ErrNoLeader}[tc.outcome]; errors.Is(err, other) {
					t.Fatalf("Forward = %v: both outcomes", err)
				}
				return
			}
			if err != nil || res.Index != tc.res.Index || res.Created != tc.res.Created || string(n.got) != "cmd" {
				t.Fatalf("Forward = %+v, %v (node got %q)", res, err, n.got)
			}
			if n.from != "n2" {
				t.Fatalf("the leader was told the write came from %q, want n2 (%s)", n.from, peerproto.HeaderForwardFrom)
			}
			if tc.wantBody != "" {
				raw, _ := res.Value.(json.RawMessage)
				if string(raw) != tc.wantBody {
					t.Fatalf("value %q", raw)
				}
			} else if res.Value != nil {
				t.Fatalf("value %v", res.Value)
			}
			if (tc.res.Err == nil) != (res.Err == nil) || (res.Err != nil && res.Err.Code != tc.res.Err.Code) {
				t.Fatalf("business error %+v", res.Err)
			}
		})
	}
}

// A leader that cannot be dialed never got the write: no_leader.
func TestForwardNotSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := peerproto.NewClient(peerproto.Config{})
	defer c.Close()
	if _, err := c.Forward(context.Background(), addr, secret, "n2", []byte("cmd"), time.Second); !errors.Is(err, command.ErrNoLeader) {
		t.Fatalf("Forward to a closed port: %v", err)
	}
	if _, err := c.Relay(context.Background(), addr, peerproto.Relay{Method: "DELETE", Path: peerproto.PeerPath("n2")}, time.Second); !errors.Is(err, command.ErrNoLeader) {
		t.Fatalf("Relay to a closed port: %v", err)
	}
}

func TestReadIndexStatsKeyring(t *testing.T) {
	n := &node{}
	addr, c := start(t, n)
	ctx := context.Background()
	if idx, err := c.ReadIndex(ctx, addr, secret, []byte("nonce"), time.Second); err != nil || idx != 77 {
		t.Fatalf("ReadIndex = %d, %v", idx, err)
	}
	if _, err := c.ReadIndex(ctx, addr, "wrong", []byte("nonce"), time.Second); !errors.Is(err, command.ErrNoLeader) {
		t.Fatalf("ReadIndex with a bad MAC: %v", err)
	}
	n.readErr = errors.New("not ready")
	if _, err := c.ReadIndex(ctx, addr, secret, []byte("nonce"), time.Second); !errors.Is(err, command.ErrNoLeader) {
		t.Fatalf("ReadIndex of a leader not ready: %v", err)
	}
	st, err := c.RaftStats(ctx, addr, time.Second)
	if err != nil || st != n.LocalRaftStats() {
		t.Fatalf("RaftStats = %+v, %v", st, err)
	}
	for _, tc := range []struct {
		secret string
		err    error
		status int
		code   string
	}{
		{secret, nil, 200, ""},
		{"wrong", nil, 403, "forbidden"},
		{secret, coded{}, 400, "invalid"},
		{secret, errors.New("disk full"), 503, "keyring_unavailable"},
	} {
		n.keyringErr = tc.err
		err := c.Keyring(ctx, addr, tc.secret, peerproto.KeyringRequest{Op: "use", Key: "k"}, time.Second)
		var pe *peerproto.Error
		switch {
		case tc.status == 200 && err != nil:
			t.Errorf("Keyring: %v", err)
		case tc.status != 200 && (!errors.As(err, &pe) || pe.Status != tc.status || pe.Code != tc.code):
			t.Errorf("Keyring (%v): %v, want %d %s", tc.err, err, tc.status, tc.code)
		}
	}
}

// Wrong methods and unknown paths under /internal/ are refused in the
// API's error shape, with a bounded route label.
func TestServiceRefusals(t *testing.T) {
	svc := peerproto.NewService(&node{}, time.Second, 0)
	for _, tc := range []struct {
		method, path string
		status       int
		route        string
	}{
		{"GET", peerproto.PathForward, 405, peerproto.PathForward},
		{"POST", peerproto.PathRaftStats, 405, peerproto.PathRaftStats},
		{"POST", "/internal/nothing", 404, peerproto.Prefix},
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(tc.method)
		ctx.Request.SetRequestURI(tc.path)
		route, _ := svc.Serve(&ctx)
		e := peerproto.DecodeError(ctx.Response.StatusCode(), ctx.Response.Body())
		if ctx.Response.StatusCode() != tc.status || route != tc.route || e.Code == "peer_error" {
			t.Errorf("%s %s: %d %s (route %s)", tc.method, tc.path, ctx.Response.StatusCode(), ctx.Response.Body(), route)
		}
	}
}

// A relayed operator request carries the relay header and the client's
// headers; the leader's answer becomes an index, an outcome, or its error.
func TestRelay(t *testing.T) {
	var status int
	var body string
	var relayedFrom, token string
	addr := serve(t, func(ctx *fasthttp.RequestCtx) {
		relayedFrom = string(ctx.Request.Header.Peek(peerproto.HeaderRelayed))
		token = string(ctx.Request.Header.Peek(peerproto.HeaderToken))
		ctx.Response.Header.Set(peerproto.HeaderIndex, "31")
		ctx.SetStatusCode(status)
		ctx.SetBodyString(body)
	})
	c := peerproto.NewClient(peerproto.Config{})
	defer c.Close()
	r := peerproto.Relay{Method: "DELETE", Path: peerproto.PeerPath("n4"), Headers: map[string]string{peerproto.HeaderToken: "tok"}, From: "n2"}
	for _, tc := range []struct {
		status  int
		body    string
		outcome error
		code    string
	}{
		{200, `{}`, nil, ""},
		{503, `{"error":{"code":"no_leader","message":"x"}}`, command.ErrNoLeader, ""},
		{504, `{"error":{"code":"outcome_unknown","message":"x"}}`, command.ErrOutcomeUnknown, ""},
		{409, `{"error":{"code":"member_alive","message":"n4 is alive"}}`, nil, "member_alive"},
		{502, `not json`, nil, "peer_error"},
	} {
		status, body = tc.status, tc.body
		idx, err := c.Relay(context.Background(), addr, r, time.Second)
		if relayedFrom != "n2" || token != "tok" {
			t.Fatalf("relay headers %q %q", relayedFrom, token)
		}
		var pe *peerproto.Error
		switch {
		case tc.status == 200:
			if err != nil || idx != 31 {
				t.Errorf("Relay = %d, %v", idx, err)
			}
		case tc.outcome != nil:
			if !errors.Is(err, tc.outcome) {
				t.Errorf("%d: %v, want %v", tc.status, err, tc.outcome)
			}
		case !errors.As(err, &pe) || pe.Status != tc.status || pe.Code != tc.code:
			t.Errorf("%d: %v, want %s", tc.status, err, tc.code)
		}
	}
}

// A heartbeat passed on to its owner goes to the owner's heartbeat path,
// marked forwarded, with the client's credential.
func TestHeartbeat(t *testing.T) {
	var path, forwarded, token string
	status := 200
	addr := serve(t, func(ctx *fasthttp.RequestCtx) {
		path, forwarded = string(ctx.URI().PathOriginal()), string(ctx.Request.Header.Peek(peerproto.HeaderHeartbeatForwarded))
		token = string(ctx.Request.Header.Peek(peerproto.HeaderToken))
		ctx.SetStatusCode(status)
		if status == 200 {
			b, _ := json.Marshal(registry.Instance{Service: "web", ID: "a b", Status: "passing"})
			ctx.SetBody(b)
			return
		}
		ctx.SetBodyString(`{"error":{"code":"not_found","message":"instance not found"}}`)
	})
	c := peerproto.NewClient(peerproto.Config{})
	defer c.Close()
	in, err := c.Heartbeat(context.Background(), addr, "web", "a b", "", "ok", "tok", time.Second)
	if err != nil || in.ID != "a b" || path != "/services/web/instances/a%20b/heartbeat" || forwarded != "1" || token != "tok" {
		t.Fatalf("Heartbeat = %+v, %v (path %q, forwarded %q, token %q)", in, err, path, forwarded, token)
	}
	status = 404
	var pe *peerproto.Error
	if _, err := c.Heartbeat(context.Background(), addr, "web", "a b", "", "", "", time.Second); !errors.As(err, &pe) || pe.StatusCode() != 404 {
		t.Fatalf("Heartbeat of an unknown instance: %v", err)
	}
}

// A leader killed and restarted at the same address: the client's pooled
// connections to the old process are closed at the other end. A write
// must go out on a new connection, not on a dead one whose loss of the
// answer would make the write's outcome unknown (it never reached the
// leader). Several pooled connections die at once, as under load.
func TestForwardAfterThePeerRestarted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	n := &node{forwardRes: &command.Result{Index: 5}}
	svc := peerproto.NewService(n, 2*time.Second, 0)
	first := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { svc.Serve(ctx) }}
	go func() { _ = first.Serve(ln) }()
	c := peerproto.NewClient(peerproto.Config{})
	defer c.Close()
	// Fill the pool with several connections.
	const conns = 4
	errs := make(chan error, conns)
	for range conns {
		go func() {
			_, err := c.Forward(context.Background(), addr, secret, "n2", []byte("cmd"), 2*time.Second)
			errs <- err
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatalf("Forward to the first process: %v", err)
		}
	}
	// The "kill": the old process's sockets close (FIN), its forwarding
	// stream too, and a new process listens on the same address.
	if err := first.Shutdown(); err != nil {
		t.Fatal(err)
	}
	closed, cancel := context.WithCancel(context.Background())
	cancel()
	svc.Close(closed)
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	svc2 := peerproto.NewService(n, 2*time.Second, 0)
	second := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { svc2.Serve(ctx) }}
	go func() { _ = second.Serve(ln2) }()
	defer second.Shutdown()
	defer svc2.Close(closed)
	for i := range conns + 2 {
		res, err := c.Forward(context.Background(), addr, secret, "n2", []byte("cmd"), 2*time.Second)
		if err != nil || res.Index != 5 {
			t.Fatalf("Forward %d after the restart = %+v, %v; want it sent on a live connection", i, res, err)
		}
	}
}
