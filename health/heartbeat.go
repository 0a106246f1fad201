package health

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/registry"
)

// ForwardedHeader marks a heartbeat passed on to the owner node, so that
// the owner never passes it on again.
const ForwardedHeader = "X-Nexus-Heartbeat-Forwarded"

// Heartbeats routes TTL heartbeats to the node that owns the instance: only
// the owner's runner holds the TTL timer.
type Heartbeats struct {
	runner *Runner
	deps   Deps
	client *http.Client
}

// NewHeartbeats returns the heartbeat router of this node.
func NewHeartbeats(deps Deps, r *Runner) *Heartbeats {
	c := &http.Client{Timeout: 5 * time.Second}
	if deps.PeerTLS != nil {
		c.Transport = &http.Transport{TLSClientConfig: deps.PeerTLS, MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}
	}
	return &Heartbeats{runner: r, deps: deps, client: c}
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
	if st := h.deps.Membership.MemberStatuses()[owner]; !ok || (st != "alive" && st != "suspect") {
		return nil, fmt.Errorf("%w: node %s owns %s/%s and is not alive", ErrOwnerUnavailable, owner, service, id)
	}
	fields := map[string]string{"output": output}
	if status != "" {
		fields["status"] = status
	}
	body, _ := json.Marshal(fields)
	scheme := h.deps.PeerScheme
	if scheme == "" {
		scheme = "http"
	}
	u := scheme + "://" + addr + "/services/" + url.PathEscape(service) + "/instances/" + url.PathEscape(id) + "/heartbeat"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set(ForwardedHeader, "1")
	if cred := acl.CredentialFrom(ctx); cred != "" {
		req.Header.Set("X-Nexus-Token", cred)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOwnerUnavailable, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, ErrNotFound
	case http.StatusBadRequest:
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return nil, &Error{Status: http.StatusBadRequest, Code: "invalid", Msg: e.Error.Message}
	default:
		return nil, fmt.Errorf("%w: owner %s answered %d", ErrOwnerUnavailable, owner, resp.StatusCode)
	}
	var in registry.Instance
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
		return nil, fmt.Errorf("%w: undecodable answer from %s", ErrOwnerUnavailable, owner)
	}
	return &in, nil
}
