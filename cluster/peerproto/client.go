package peerproto

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Config is how a node reaches the other nodes' admin listeners. The zero
// value is plain HTTP. With the admin API on TLS (docs/security.md) it is
// Scheme "https" and a TLS client config that trusts the cluster CA and,
// under mTLS, presents this node's certificate.
type Config struct {
	Scheme string // "http" (default) or "https"
	TLS    *tls.Config
	// Logger logs the forwarding streams' lifecycle; nil logs nothing.
	Logger *slog.Logger
}

// Client makes every call of one node to the others, over one pool of
// connections per peer. It never retries a request (a write must never be
// sent twice); every call is bounded by its timeout and its context's
// deadline, whichever comes first.
type Client struct {
	scheme  string
	c       *fasthttp.Client
	streams *streams // forwarded writes (stream.go)
}

// NewClient returns the client of one node.
func NewClient(cfg Config) *Client {
	scheme := cfg.Scheme
	if scheme == "" {
		scheme = "http"
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ss := &streams{slots: map[string]*streamSlot{}, http: map[string]time.Time{}, log: logger}
	if scheme == "https" {
		ss.tls = cfg.TLS
		if ss.tls == nil {
			ss.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	return &Client{scheme: scheme, streams: ss, c: &fasthttp.Client{
		Name:                     "nexus-peer",
		MaxConnsPerHost:          512,
		MaxIdleConnDuration:      30 * time.Second,
		NoDefaultUserAgentHeader: true,
		TLSConfig:                cfg.TLS,
		DialTimeout:              dial,
		// Never again a request that may have been sent (a write must not
		// be applied twice); only one that a closed pooled connection
		// refused before writing it (conn.go), on another connection.
		RetryIfErr:                retryStale,
		MaxIdemponentCallAttempts: staleAttempts,
	}}
}

// staleAttempts bounds the tries of one request when pooled connections
// turn out closed one after another (a restarted peer leaves as many dead
// ones as were idle); the last try's error is the answer.
const staleAttempts = 16

// Close closes the idle connections and the forwarding streams.
func (c *Client) Close() {
	c.c.CloseIdleConnections()
	c.streams.close()
}

// ForwardStats counts what Forward did: writes forwarded over a stream and
// over HTTP (to a leader without streams), streams opened, and streams open
// now.
type ForwardStats struct {
	Stream, HTTP, Opened uint64
	Open                 int
}

// ForwardStats reports the client's forwarding so far.
func (c *Client) ForwardStats() ForwardStats {
	return ForwardStats{Stream: c.streams.viaFrame.Load(), HTTP: c.streams.viaHTTP.Load(),
		Opened: c.streams.opened.Load(), Open: c.streams.open()}
}

// URL is the URL of path on the admin listener at addr (HOST:PORT).
func (c *Client) URL(addr, path string) string { return c.scheme + "://" + addr + path }

// Errors of a call that got no answer.
var (
	// ErrNotSent: the request never left this node (the peer could not be
	// dialed): nothing happened there.
	ErrNotSent = errors.New("request not sent")
	// ErrNoAnswer: the request may have reached the peer, but its answer
	// was lost (timeout, connection reset).
	ErrNoAnswer = errors.New("no answer")
)

// Error is a peer's error answer, {"error":{"code","message"}} with a
// status; the answers of Service and of the admin API have this shape.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// StatusCode is the HTTP status the peer answered.
func (e *Error) StatusCode() int { return e.Status }

// ErrorCode is the error code the peer answered.
func (e *Error) ErrorCode() string { return e.Code }

// DecodeError reads an error answer; a body without the error shape keeps
// the status, with code "peer_error".
func DecodeError(status int, body []byte) *Error {
	var b errorBody
	_ = json.Unmarshal(body, &b)
	e := &Error{Status: status, Code: b.Error.Code, Message: b.Error.Message}
	if e.Code == "" {
		e.Code = "peer_error"
	}
	if e.Message == "" {
		e.Message = fmt.Sprintf("answered %d", status)
	}
	return e
}

// request is one call to a peer.
type request struct {
	method, path string
	body         []byte
	contentType  string
	// secret, when set, signs body (HeaderMAC).
	secret  string
	headers map[string]string
	// from, when set, is HeaderForwardFrom: a field of its own, not an
	// entry of headers, so that a forwarded write allocates no map.
	from string
}

// answer is a peer's answer.
type answer struct {
	status int
	body   []byte
	index  uint64 // HeaderIndex
}

// exchange sends r to the admin listener at addr. A transport failure is
// ErrNotSent (dial) or ErrNoAnswer, wrapped.
func (c *Client) exchange(ctx context.Context, addr string, r request, timeout time.Duration) (answer, error) {
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return answer{}, fmt.Errorf("%w: %v", ErrNotSent, context.DeadlineExceeded)
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(c.URL(addr, r.path))
	req.Header.SetMethod(r.method)
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	if r.secret != "" {
		req.Header.Set(HeaderMAC, Sign(r.secret, r.body))
	}
	if r.from != "" {
		req.Header.Set(HeaderForwardFrom, r.from)
	}
	if r.body != nil {
		req.Header.SetContentType(r.contentType)
		req.SetBodyRaw(r.body)
	}
	if err := c.c.DoTimeout(req, resp, timeout); err != nil {
		if isDialError(err) {
			return answer{}, fmt.Errorf("%w: %v", ErrNotSent, err)
		}
		return answer{}, fmt.Errorf("%w: %v", ErrNoAnswer, err)
	}
	idx, _ := strconv.ParseUint(string(resp.Header.Peek(HeaderIndex)), 10, 64)
	return answer{status: resp.StatusCode(), body: append([]byte(nil), resp.Body()...), index: idx}, nil
}

func isDialError(err error) bool {
	if errors.Is(err, errStaleConn) { // refused before writing: not sent
		return true
	}
	if errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// forwardAnswer is PathForward's success body: the command.Result, whose
// value arrives raw.
type forwardAnswer struct {
	command.Result
	Value json.RawMessage `json:"value,omitempty"`
}

// Forward sends a write, signed with secret, from this node (its name,
// HeaderForwardFrom) to the leader at addr and
// returns the leader's result (Result.Value is raw JSON). The error is
// command.ErrNoLeader when the write surely was not applied: it never left
// this node, or the leader refused it before applying (503: not the
// leader; 403: not signed with the cluster secret). Anything else is
// command.ErrOutcomeUnknown: the answer was lost, or the leader answered
// 504 or an unexpected status.
func (c *Client) Forward(ctx context.Context, addr, secret, from string, cmd []byte, timeout time.Duration) (*command.Result, error) {
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: forwarding to %s: %v", command.ErrNoLeader, addr, context.DeadlineExceeded)
	}
	ans, err := c.forwardOnce(ctx, addr, secret, from, cmd, timeout)
	for try := 1; try < staleAttempts && errors.Is(err, errStaleConn); try++ {
		ans, err = c.forwardOnce(ctx, addr, secret, from, cmd, timeout)
	}
	if err != nil {
		if errors.Is(err, ErrNotSent) {
			return nil, fmt.Errorf("%w: forwarding to %s: %v", command.ErrNoLeader, addr, err)
		}
		return nil, fmt.Errorf("%w: forwarding to %s: %v", command.ErrOutcomeUnknown, addr, err)
	}
	if ans.status != fasthttp.StatusOK {
		e := DecodeError(ans.status, ans.body)
		switch ans.status {
		case fasthttp.StatusServiceUnavailable, fasthttp.StatusForbidden:
			return nil, fmt.Errorf("%w: the leader at %s refused the forwarded write (%d %s): %s", command.ErrNoLeader, addr, ans.status, e.Code, e.Message)
		}
		return nil, fmt.Errorf("%w: the leader at %s answered %d %s: %s", command.ErrOutcomeUnknown, addr, ans.status, e.Code, e.Message)
	}
	var fa forwardAnswer
	if err := json.Unmarshal(ans.body, &fa); err != nil {
		return nil, fmt.Errorf("%w: undecodable answer from the leader at %s: %v", command.ErrOutcomeUnknown, addr, err)
	}
	res := fa.Result
	res.Value = nil
	if len(fa.Value) > 0 && !bytes.Equal(fa.Value, []byte("null")) {
		res.Value = fa.Value
	}
	return &res, nil
}

// forwardOnce sends a write once: over the stream to addr, or over
// PathForward to a leader without streams. A stream the leader had closed
// is errStaleConn (with ErrNotSent): the write may go out again.
func (c *Client) forwardOnce(ctx context.Context, addr, secret, from string, cmd []byte, timeout time.Duration) (answer, error) {
	s, useHTTP, err := c.streams.get(ctx, addr, from, timeout)
	switch {
	case useHTTP:
		ans, err := c.exchange(ctx, addr, request{method: fasthttp.MethodPost, path: PathForward, body: cmd,
			contentType: "application/octet-stream", secret: secret, from: from}, timeout)
		if err == nil {
			c.streams.viaHTTP.Add(1)
		}
		return ans, err
	case err != nil:
		return answer{}, fmt.Errorf("%w: %v", ErrNotSent, err)
	}
	a := s.do(ctx, Sign(secret, cmd), cmd, timeout)
	if a.err == nil {
		c.streams.viaFrame.Add(1)
	}
	return answer{status: a.status, body: a.body}, a.err
}

// ReadIndex asks the leader at addr for a read index (nonce signed with
// secret). Any failure is command.ErrNoLeader: a read index is never
// guessed.
func (c *Client) ReadIndex(ctx context.Context, addr, secret string, nonce []byte, timeout time.Duration) (uint64, error) {
	ans, err := c.exchange(ctx, addr, request{method: fasthttp.MethodPost, path: PathReadIndex, body: nonce,
		contentType: "application/octet-stream", secret: secret}, timeout)
	if err != nil {
		return 0, fmt.Errorf("%w: asking %s for a read index: %v", command.ErrNoLeader, addr, err)
	}
	if ans.status != fasthttp.StatusOK {
		return 0, fmt.Errorf("%w: the leader at %s answered %d to a read-index request: %s", command.ErrNoLeader, addr, ans.status,
			DecodeError(ans.status, ans.body).Message)
	}
	idx, err := strconv.ParseUint(string(ans.body), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad read index from %s", command.ErrNoLeader, addr)
	}
	return idx, nil
}

// RaftStats asks the server at addr for its Raft progress.
func (c *Client) RaftStats(ctx context.Context, addr string, timeout time.Duration) (RaftStats, error) {
	var ps RaftStats
	err := c.getJSON(ctx, addr, request{method: fasthttp.MethodGet, path: PathRaftStats}, timeout, &ps)
	return ps, err
}

// Keyring applies a keyring operation, signed with secret, on the node at
// addr. A refusal is an *Error.
func (c *Client) Keyring(ctx context.Context, addr, secret string, op KeyringRequest, timeout time.Duration) error {
	body, _ := json.Marshal(op)
	return c.getJSON(ctx, addr, request{method: fasthttp.MethodPost, path: PathKeyring, body: body,
		contentType: "application/json", secret: secret}, timeout, nil)
}

// getJSON makes a call whose success is 200 with a JSON body (decoded into
// out unless nil) and whose refusal is an *Error.
func (c *Client) getJSON(ctx context.Context, addr string, r request, timeout time.Duration, out any) error {
	ans, err := c.exchange(ctx, addr, r, timeout)
	if err != nil {
		return err
	}
	if ans.status != fasthttp.StatusOK {
		return DecodeError(ans.status, ans.body)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(ans.body, out); err != nil {
		return fmt.Errorf("%w: undecodable answer from %s: %v", ErrNoAnswer, addr, err)
	}
	return nil
}

// Relay is an operator request a follower passes on to the leader.
type Relay struct {
	Method string
	Path   string // PeerPath(node) or PathSnapshot
	Body   []byte
	// Headers go with the request (the client's credentials, request id).
	Headers map[string]string
	// From is this node's name (HeaderRelayed).
	From string
}

// Relay sends r to the leader at addr, marked with HeaderRelayed, and
// returns the index of the leader's answer. Errors: command.ErrNoLeader
// when the request never left or the leader answered 503 (nothing done);
// command.ErrOutcomeUnknown when the answer was lost or was 504; the
// leader's *Error otherwise.
func (c *Client) Relay(ctx context.Context, addr string, r Relay, timeout time.Duration) (uint64, error) {
	headers := map[string]string{}
	for k, v := range r.Headers {
		headers[k] = v
	}
	headers[HeaderRelayed] = r.From
	ans, err := c.exchange(ctx, addr, request{method: r.Method, path: r.Path, body: r.Body,
		contentType: "application/octet-stream", headers: headers}, timeout)
	if err != nil {
		if errors.Is(err, ErrNotSent) {
			return 0, fmt.Errorf("%w: the leader at %s is unreachable: %v", command.ErrNoLeader, addr, err)
		}
		return 0, fmt.Errorf("%w: relaying to the leader at %s: %v", command.ErrOutcomeUnknown, addr, err)
	}
	if ans.status/100 == 2 {
		return ans.index, nil
	}
	e := DecodeError(ans.status, ans.body)
	switch ans.status {
	case fasthttp.StatusServiceUnavailable:
		return 0, fmt.Errorf("%w: the leader: %s", command.ErrNoLeader, e.Message)
	case fasthttp.StatusGatewayTimeout:
		return 0, fmt.Errorf("%w: the leader: %s", command.ErrOutcomeUnknown, e.Message)
	}
	return 0, e
}

// Heartbeat passes a TTL heartbeat on to the instance's owner at addr,
// with the client's credential (token or JWT, "" for none), and returns
// the instance as the owner then sees it. An error answer is an *Error;
// no answer is ErrNotSent or ErrNoAnswer, wrapped.
func (c *Client) Heartbeat(ctx context.Context, addr, service, id, status, output, credential string, timeout time.Duration) (*registry.Instance, error) {
	fields := map[string]string{"output": output}
	if status != "" {
		fields["status"] = status
	}
	body, _ := json.Marshal(fields)
	headers := map[string]string{HeaderHeartbeatForwarded: "1"}
	if credential != "" {
		headers[HeaderToken] = credential
	}
	var in registry.Instance
	if err := c.getJSON(ctx, addr, request{method: fasthttp.MethodPut, path: HeartbeatPath(service, id), body: body,
		contentType: "application/json", headers: headers}, timeout, &in); err != nil {
		return nil, err
	}
	return &in, nil
}
