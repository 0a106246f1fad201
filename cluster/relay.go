package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/cluster/peerproto"

	"github.com/nexus/nexus/fsm/command"
)

// Relay describes how an operator request reached this node.
type Relay struct {
	// Forwarded is true when another node passed the request on.
	Forwarded bool
	// Headers are passed on to the leader with the request (credentials,
	// request id).
	Headers map[string]string
}

// OpError is a refused operator request (remove-peer, restore, keyring):
// it carries an error code (fsm/command's or registry's); the admin API
// maps codes to statuses. A refusal the leader answered to a relayed
// request wraps the leader's answer (a *peerproto.Error, with its status).
type OpError struct {
	Code string
	Msg  string
	// answer is the leader's, for a relayed request.
	answer error
}

func (e *OpError) Error() string { return e.Msg }

// ErrorCode is the error code.
func (e *OpError) ErrorCode() string { return e.Code }

// Unwrap is the leader's answer to a relayed request, if any.
func (e *OpError) Unwrap() error { return e.answer }

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
	ErrMemberAlive error = &OpError{Code: command.CodeMemberAlive, Msg: "the server is alive"}
	// ErrPeerNotFound means the node is not a Raft server.
	ErrPeerNotFound error = &OpError{Code: command.CodeNotFound, Msg: "not a raft server"}
	// ErrInvalidSnapshot means the bytes are not a snapshot this build restores.
	ErrInvalidSnapshot error = &OpError{Code: command.CodeInvalidSnapshot, Msg: "not a valid snapshot"}
)

// relayToLeader sends an operator request to the leader's admin API
// (peerproto's Client.Relay) and returns the index of its answer. A
// request that never left this node, or that the leader answered 503, is
// ErrNoLeader; one whose answer was lost, or 504, is ErrOutcomeUnknown; the
// leader's other refusals are an *OpError with its status and code. It
// waits up to leaderWait for a leader.
func (n *Node) relayToLeader(ctx context.Context, method, path string, body []byte, relay Relay, timeout time.Duration) (uint64, error) {
	addr, err := n.leaderHTTPAddr(ctx)
	if err != nil {
		return 0, err
	}
	idx, err := n.peers.Relay(ctx, addr, peerproto.Relay{Method: method, Path: path, Body: body, Headers: relay.Headers, From: n.cfg.Node}, timeout)
	var pe *peerproto.Error
	if errors.As(err, &pe) {
		return 0, &OpError{Code: pe.Code, Msg: "leader: " + pe.Message, answer: pe}
	}
	return idx, err
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
