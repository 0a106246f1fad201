package peerproto

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/fsm/command"
)

// Node is what the handlers need from this node; cluster.Node implements
// it. The MAC checks are the node's: only it knows the cluster secret.
type Node interface {
	// Forwarded applies a write the follower from forwarded (leader
	// only); from is empty when the follower did not say.
	Forwarded(ctx context.Context, mac, from string, cmd []byte) (*command.Result, error)
	// ForwardedReadIndex answers a follower's read-index request (leader
	// only).
	ForwardedReadIndex(ctx context.Context, mac string, nonce []byte) (uint64, error)
	// LocalRaftStats is this node's Raft progress.
	LocalRaftStats() RaftStats
	// KeyringForwarded applies a keyring operation another node sent.
	KeyringForwarded(mac string, body []byte) error
}

// Service serves the /internal/ paths on the admin listener.
type Service struct {
	node     Node
	timeout  time.Duration
	maxFrame int

	mu      sync.Mutex
	conns   map[net.Conn]struct{} // forwarding streams (streamserve.go)
	streams sync.WaitGroup
	closed  bool
}

// NewService returns the handlers of node; timeout bounds a forwarded
// write and a read-index request (the apply timeout), maxBody a forwarded
// command (the admin listener's body limit; 1 MiB if 0).
func NewService(node Node, timeout time.Duration, maxBody int) *Service {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if maxBody <= 0 {
		maxBody = 1 << 20
	}
	return &Service{node: node, timeout: timeout, maxFrame: reqHeadSize + 255 + maxBody, conns: map[net.Conn]struct{}{}}
}

// Serve answers a request under Prefix. It returns the route (a fixed
// path, or Prefix for an unknown one: a bounded label for metrics) and the
// Raft index the answer reflects (the admin API's X-Nexus-Index).
func (s *Service) Serve(ctx *fasthttp.RequestCtx) (route string, index uint64) {
	path := string(ctx.Path())
	method := string(ctx.Method())
	want := fasthttp.MethodPost
	switch path {
	case PathForward, PathForwardStream, PathReadIndex, PathKeyring:
	case PathRaftStats:
		want = fasthttp.MethodGet
	default:
		writeError(ctx, &Error{Status: fasthttp.StatusNotFound, Code: "not_found", Message: "no such endpoint: " + method + " " + path})
		return Prefix, 0
	}
	if method != want {
		ctx.Response.Header.Set("Allow", want)
		writeError(ctx, &Error{Status: fasthttp.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: "method " + method + " is not allowed on " + path + "; allowed: " + want})
		return path, 0
	}
	mac := string(ctx.Request.Header.Peek(HeaderMAC))
	switch path {
	case PathForward:
		return path, s.forward(ctx, mac)
	case PathForwardStream:
		s.forwardStream(ctx)
		return path, 0
	case PathReadIndex:
		return path, s.readIndex(ctx, mac)
	case PathRaftStats:
		st := s.node.LocalRaftStats()
		writeJSON(ctx, fasthttp.StatusOK, st)
		return path, st.AppliedIndex
	default:
		if err := s.node.KeyringForwarded(mac, ctx.PostBody()); err != nil {
			writeError(ctx, keyringError(err))
			return path, 0
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
		return path, 0
	}
}

// forward applies a forwarded write. The answer is the JSON of the
// command.Result, business errors included; the follower reads every other
// answer through ForwardStatus (Client.Forward).
func (s *Service) forward(ctx *fasthttp.RequestCtx, mac string) uint64 {
	// Raft keeps the command after this handler returns: never hand it
	// fasthttp's reused body buffer.
	cmd := bytes.Clone(ctx.PostBody())
	status, body, index := s.applyForwarded(mac, string(ctx.Request.Header.Peek(HeaderForwardFrom)), cmd)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
	return index
}

// forwardAnswerOf is the answer to a forwarded write, over HTTP or a
// stream: 200 and the Result's JSON, or ForwardError's status and body.
func forwardAnswerOf(res *command.Result, err error) (status int, body []byte, index uint64) {
	if err == nil && res == nil {
		err = errors.New("the forwarded write returned no result")
	}
	if err == nil {
		var b []byte
		if b, err = res.AppendJSON(nil); err == nil {
			return fasthttp.StatusOK, b, res.Index
		}
		err = fmt.Errorf("%w: cannot encode the result: %v", command.ErrOutcomeUnknown, err)
	}
	e := ForwardError(err)
	return e.Status, errorJSON(e), 0
}

// ForwardError is the answer to a forwarded write that failed, written so
// that the follower (Client.Forward) tells "surely not applied" (it may
// answer no_leader, and its client may retry) from "maybe applied"
// (outcome_unknown, never retried by a node):
//
//	ErrBadMAC                                → 403 forbidden        not applied
//	command.ErrNoLeader (not the leader)     → 503 no_leader        not applied
//	ErrOutcomeUnknown, ErrNotApplied,
//	  a deadline or cancellation             → 504 outcome_unknown  maybe applied
//	anything else                            → 500 internal         maybe applied
func ForwardError(err error) *Error {
	switch {
	case errors.Is(err, ErrBadMAC):
		return &Error{Status: fasthttp.StatusForbidden, Code: "forbidden", Message: err.Error()}
	case errors.Is(err, command.ErrNoLeader):
		return &Error{Status: fasthttp.StatusServiceUnavailable, Code: "no_leader", Message: "no leader: " + err.Error()}
	case errors.Is(err, command.ErrOutcomeUnknown), errors.Is(err, command.ErrNotApplied),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &Error{Status: fasthttp.StatusGatewayTimeout, Code: "outcome_unknown",
			Message: "the forwarded write may or may not have been applied: " + err.Error()}
	}
	return &Error{Status: fasthttp.StatusInternalServerError, Code: "internal",
		Message: "the forwarded write may or may not have been applied: " + err.Error()}
}

// readIndex answers a follower's read-index request: the index as text.
func (s *Service) readIndex(ctx *fasthttp.RequestCtx, mac string) uint64 {
	nonce := bytes.Clone(ctx.PostBody())
	rctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	idx, err := s.node.ForwardedReadIndex(rctx, mac, nonce)
	cancel()
	switch {
	case err == nil:
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentType("text/plain")
		ctx.SetBodyString(strconv.FormatUint(idx, 10))
		return idx
	case errors.Is(err, ErrBadMAC):
		writeError(ctx, &Error{Status: fasthttp.StatusForbidden, Code: "forbidden", Message: err.Error()})
	default:
		// Not the leader, not ready for reads, no quorum: the follower
		// answers no_leader in every case.
		writeError(ctx, &Error{Status: fasthttp.StatusServiceUnavailable, Code: "no_leader", Message: "no read index: " + err.Error()})
	}
	return 0
}

// keyringError is the answer to a refused keyring operation: a bad MAC is
// 403 forbidden; a refusal that carries a code (a bad key, gossip
// encryption off) is 400 with that code; anything else is 503
// keyring_unavailable. The calling node reports the message per node.
func keyringError(err error) *Error {
	var coded interface{ ErrorCode() string }
	switch {
	case errors.Is(err, ErrBadMAC):
		return &Error{Status: fasthttp.StatusForbidden, Code: "forbidden", Message: err.Error()}
	case errors.As(err, &coded):
		return &Error{Status: fasthttp.StatusBadRequest, Code: coded.ErrorCode(), Message: err.Error()}
	}
	return &Error{Status: fasthttp.StatusServiceUnavailable, Code: "keyring_unavailable", Message: err.Error()}
}

// errorBody is the admin API's error shape.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError writes e in the admin API's error shape.
func writeError(ctx *fasthttp.RequestCtx, e *Error) {
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	ctx.SetBody(errorJSON(e))
}

// errorJSON is e in the admin API's error shape.
func errorJSON(e *Error) []byte {
	var b errorBody
	b.Error.Code, b.Error.Message = e.Code, e.Message
	out, err := json.Marshal(b)
	if err != nil {
		return []byte(`{"error":{"code":"internal","message":"cannot encode the answer"}}`)
	}
	return out
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = fasthttp.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"cannot encode the answer"}}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
