package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/cluster/peerproto"
	"github.com/nexus/nexus/registry"

	"github.com/nexus/nexus/fsm/command"
)

// Heartbeats routes TTL heartbeats to the node that owns the instance: only
// the owner's runner holds the TTL timer.
type Heartbeats struct {
	runner *Runner
	deps   Deps
}

// forwardTimeout bounds a heartbeat passed on to its owner.
const forwardTimeout = 5 * time.Second

// NewHeartbeats returns the heartbeat router of this node.
func NewHeartbeats(deps Deps, r *Runner) *Heartbeats {
	if deps.Peers == nil {
		deps.Peers = peerproto.NewClient(peerproto.Config{})
	}
	return &Heartbeats{runner: r, deps: deps}
}

// Heartbeat refreshes the TTL check of an instance, here or on its owner,
// and returns the instance as this node then sees it. forwarded is true when
// another node passed the heartbeat on.
func (h *Heartbeats) Heartbeat(ctx context.Context, service, id, status, output string, forwarded bool) (*registry.Instance, error) {
	cur := h.lookup(service, id)
	if cur == nil && h.deps.CatchUp != nil && h.deps.CatchUp(ctx) == nil {
		cur = h.lookup(service, id)
	}
	if cur == nil {
		return nil, ErrNotFound
	}
	self := h.deps.Membership.NodeName()
	if cur.Node == self {
		if err := h.runner.Heartbeat(ctx, service, id, status, output); err != nil {
			return nil, err
		}
		tx := h.deps.Store.ReadTxn()
		defer tx.Abort()
		if in := tx.Instance(nil, service, id); in != nil {
			return in, nil
		}
		return nil, ErrNotFound
	}
	if forwarded {
		// Our replica and the forwarding node disagree about the owner.
		return nil, fmt.Errorf("%w: %s is not the owner of %s/%s here", ErrOwnerUnavailable, self, service, id)
	}
	return h.forward(ctx, cur.Node, service, id, status, output)
}

func (h *Heartbeats) lookup(service, id string) *registry.Instance {
	tx := h.deps.Store.ReadTxn()
	defer tx.Abort()
	return tx.Instance(nil, service, id)
}

func (h *Heartbeats) forward(ctx context.Context, owner, service, id, status, output string) (*registry.Instance, error) {
	addr, ok := h.deps.Membership.MemberHTTPAddr(owner)
	// A suspect owner is still alive for gossip: try it (the client timeout
	// bounds the attempt).
	if st := h.deps.Membership.MemberStatuses()[owner]; !ok || !st.Live() {
		return nil, fmt.Errorf("%w: node %s owns %s/%s and is not alive", ErrOwnerUnavailable, owner, service, id)
	}
	in, err := h.deps.Peers.Heartbeat(ctx, addr, service, id, status, output, acl.CredentialFrom(ctx), forwardTimeout)
	var answer interface{ StatusCode() int }
	switch {
	case err == nil:
		return in, nil
	case errors.As(err, &answer) && answer.StatusCode() == http.StatusNotFound:
		return nil, ErrNotFound
	case errors.As(err, &answer) && answer.StatusCode() == http.StatusBadRequest:
		return nil, &Error{Code: command.CodeInvalid, Msg: err.Error()}
	}
	return nil, fmt.Errorf("%w: owner %s: %v", ErrOwnerUnavailable, owner, err)
}
