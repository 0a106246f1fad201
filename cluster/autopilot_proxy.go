package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/valyala/fasthttp"
)

// RelayHeader marks an operator request (remove-peer, snapshot restore)
// that a follower passed on to the leader: the receiver never passes it on
// again, so a leader change cannot bounce it between nodes.
const RelayHeader = "X-Nexus-Relayed"

// indexHeader is the admin API's X-Nexus-Index.
const indexHeader = "X-Nexus-Index"

// Relay describes how an operator request reached this node.
type Relay struct {
	// Forwarded is true when another node passed the request on.
	Forwarded bool
	// Headers are passed on to the leader with the request (credentials,
	// request id).
	Headers map[string]string
}

// OpError is an answer to an operator request that is not a success; it
// carries its HTTP status and API error code.
type OpError struct {
	Status int
	Code   string
	Msg    string
}

func (e *OpError) Error() string { return e.Msg }

// StatusCode is the HTTP status of the answer.
func (e *OpError) StatusCode() int { return e.Status }

// ErrorCode is the API error code of the answer.
func (e *OpError) ErrorCode() string { return e.Code }

// Is matches OpErrors by code, so errors.Is(err, ErrMemberAlive) holds for
// any alive-member refusal whatever its message.
func (e *OpError) Is(target error) bool {
	var t *OpError
	return errors.As(target, &t) && t.Code == e.Code
}

// Operator request errors.
var (
	// ErrMemberAlive refuses to remove a server gossip sees alive: it would
	// be added back at once; `nexus leave` on that node removes it for good.
	ErrMemberAlive error = &OpError{Status: 409, Code: "member_alive", Msg: "the server is alive"}
	// ErrPeerNotFound means the node is not a Raft server.
	ErrPeerNotFound error = &OpError{Status: 404, Code: "not_found", Msg: "not a raft server"}
	// ErrInvalidSnapshot means the bytes are not a snapshot this build restores.
	ErrInvalidSnapshot error = &OpError{Status: 400, Code: "invalid_snapshot", Msg: "not a valid snapshot"}
)

// proxied is the leader's answer to a relayed request.
type proxied struct {
	status int
	index  uint64
	body   []byte
}

// relayToLeader sends an operator request to the leader's admin API, marked
// with RelayHeader, and returns the leader's answer. A request that never
// left this node is ErrNoLeader; one lost after sending is
// ErrOutcomeUnknown. It waits up to leaderWait for a leader.
func (n *Node) relayToLeader(ctx context.Context, method, path string, body []byte, relay Relay, timeout time.Duration) (*proxied, error) {
	addr, err := n.leaderHTTPAddr(ctx)
	if err != nil {
		return nil, err
	}
	// A client per request: these requests are rare and may run for
	// minutes (a 64 MiB restore), unlike the forwarder's writes.
	client := &fasthttp.Client{
		Name: "nexus-relay", ReadTimeout: timeout, WriteTimeout: timeout, NoDefaultUserAgentHeader: true, TLSConfig: n.cfg.Peer.TLS,
		RetryIf: func(*fasthttp.Request) bool { return false },
	}
	defer client.CloseIdleConnections()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(n.cfg.Peer.url(addr, path))
	req.Header.SetMethod(method)
	for k, v := range relay.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set(RelayHeader, n.cfg.Node)
	if body != nil {
		req.Header.SetContentType("application/octet-stream")
		req.SetBodyRaw(body)
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if err := client.DoTimeout(req, resp, timeout); err != nil {
		if isDialError(err) {
			return nil, fmt.Errorf("%w: leader at %s unreachable: %v", ErrNoLeader, addr, err)
		}
		return nil, fmt.Errorf("%w: relaying to the leader at %s: %v", ErrOutcomeUnknown, addr, err)
	}
	idx, _ := strconv.ParseUint(string(resp.Header.Peek(indexHeader)), 10, 64)
	return &proxied{status: resp.StatusCode(), index: idx, body: append([]byte(nil), resp.Body()...)}, nil
}

// leaderHTTPAddr waits up to leaderWait for a leader other than this node
// and returns its admin API address.
func (n *Node) leaderHTTPAddr(ctx context.Context) (string, error) {
	deadline := time.Now().Add(leaderWait)
	for {
		addr, id := n.raft.LeaderWithID()
		if n.raft.State() == raft.Leader {
			return "", fmt.Errorf("%w: this node became the leader; retry", ErrNoLeader)
		}
		if addr != "" && string(id) != n.cfg.Node {
			if m, ok := n.leaderMember(string(id), string(addr)); ok && m.Meta.HTTPAddr != "" {
				return m.Meta.HTTPAddr, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%w: no known leader", ErrNoLeader)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: no known leader", ErrNoLeader)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// answerError turns a non-2xx answer of the leader into an error that
// carries the leader's status, code and message.
func (p *proxied) answerError(leaderWhat string) error {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(p.body, &body)
	msg := body.Error.Message
	if msg == "" {
		msg = fmt.Sprintf("answered %d", p.status)
	}
	code := body.Error.Code
	if code == "" {
		code = "leader_error"
	}
	switch {
	case p.status == fasthttp.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s: %s", ErrNoLeader, leaderWhat, msg)
	case p.status == fasthttp.StatusGatewayTimeout:
		return fmt.Errorf("%w: %s: %s", ErrOutcomeUnknown, leaderWhat, msg)
	}
	return &OpError{Status: p.status, Code: code, Msg: leaderWhat + ": " + msg}
}
