package cluster

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/fsm/command"
)

// Errors of the write path, aliased to the command package so that errors.Is
// matches whichever layer made them.
var (
	ErrNoLeader       = command.ErrNoLeader
	ErrOutcomeUnknown = command.ErrOutcomeUnknown
	ErrNotApplied     = command.ErrNotApplied
	// ErrBadMAC is returned when a forwarded write is not signed with the
	// cluster secret.
	ErrBadMAC = errors.New("forwarded write not signed with the cluster secret")
)

// ForwardPath is the admin API path that takes forwarded writes.
const ForwardPath = "/internal/forward"

// ForwardMACHeader carries the HMAC-SHA256 of the body under the secret.
const ForwardMACHeader = "X-Nexus-Forward-MAC"

// leaderWait is how long a write waits for a leader to appear before it
// answers no_leader (nothing was dispatched, so that answer is safe).
const leaderWait = 3 * time.Second

// Apply commits cmd and returns its result once this node has applied it:
// on the leader directly, on a follower through the leader. It never retries
// a write once dispatched.
func (n *Node) Apply(ctx context.Context, cmd []byte) (*command.Result, error) {
	if err := n.checkFeature(cmd); err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := n.apply(ctx, cmd)
	n.m.observeApply(start, err)
	return res, err
}

func (n *Node) apply(ctx context.Context, cmd []byte) (*command.Result, error) {
	deadline := time.Now().Add(leaderWait)
	for {
		if n.raft.State() == raft.Leader {
			return n.applyLocal(ctx, cmd)
		}
		addr, id := n.raft.LeaderWithID()
		if addr != "" && string(id) != n.cfg.Node {
			if m, ok := n.leaderMember(string(id), string(addr)); ok && m.Meta.HTTPAddr != "" {
				return n.forward(ctx, m, cmd)
			}
		}
		if time.Now().After(deadline) {
			return nil, ErrNoLeader
		}
		select {
		case <-ctx.Done():
			return nil, ErrNoLeader
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (n *Node) leaderMember(id, raftAddr string) (memberState, bool) {
	if m, ok := n.gossip.member(id); ok && m.Status == StatusAlive {
		return m, true
	}
	return n.gossip.memberByRaftAddr(raftAddr)
}

// applyLocal applies on this node as leader. Errors before dispatch are
// no_leader; anything lost after dispatch is outcome_unknown.
func (n *Node) applyLocal(ctx context.Context, cmd []byte) (*command.Result, error) {
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < timeout {
			timeout = d
		}
	}
	f := n.raft.Apply(cmd, timeout)
	err := waitFuture(ctx, f, timeout+time.Second)
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
		// Refused before it reached the log: surely not applied.
		return nil, ErrNoLeader
	default:
		// ErrLeadershipLost, ErrRaftShutdown, timeouts: the entry may be in
		// the log and may still commit.
		return nil, fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	}
	res, _ := f.Response().(*command.Result)
	if res == nil {
		res = &command.Result{Index: f.Index()}
	}
	return res, nil
}

// Forwarded applies a write that a follower forwarded. Only a leader takes
// it, and only when the body is signed with the cluster secret.
func (n *Node) Forwarded(ctx context.Context, mac string, cmd []byte) (*command.Result, error) {
	_, secret := n.cfg.Hooks.Identity()
	if secret == "" || !hmac.Equal([]byte(mac), []byte(sign(secret, cmd))) {
		return nil, ErrBadMAC
	}
	if n.raft.State() != raft.Leader {
		return nil, ErrNoLeader
	}
	res, err := n.applyLocal(ctx, cmd)
	if err == nil {
		n.nudgeCommit(res.Index)
	}
	return res, err
}

// nudgeCommit makes the commit of a forwarded write known to the followers
// at once. The follower that forwarded it answers its client only once it
// has applied the write itself (read-your-writes), and hashicorp/raft tells
// followers about a commit only with its next AppendEntries: with no later
// entry in the log that is the CommitTimeout tick (5-10 ms by default), which
// a lone client writing through a follower paid on every write. A no-op
// appended now is such an entry. When later entries are already in the log
// (concurrent writers) they carry the commit, and nothing is added. The
// no-op is not waited for (only counted once applied); if it cannot be
// enqueued within a millisecond (a busy leader has later entries coming
// anyway) it is skipped.
func (n *Node) nudgeCommit(index uint64) {
	if n.raft.LastIndex() != index {
		return
	}
	// A no-op command rather than raft.Barrier: a barrier never reaches the
	// FSM, so a follower's applied index would stop short of the commit
	// index that read-index rounds hand out.
	f := n.raft.Apply(n.cfg.Hooks.Noop(), time.Millisecond)
	go func() {
		if f.Error() == nil {
			n.m.commitNudges.Inc()
		}
	}()
}

func sign(secret string, body []byte) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// forwarder sends writes to the leader's admin API over pooled connections.
type forwarder struct {
	client *fasthttp.Client
}

func newForwarder(n *Node) *forwarder {
	return &forwarder{client: &fasthttp.Client{
		Name:                     "nexus-forward",
		MaxConnsPerHost:          512,
		MaxIdleConnDuration:      30 * time.Second,
		ReadTimeout:              n.cfg.ApplyTimeout + 2*time.Second,
		WriteTimeout:             5 * time.Second,
		NoDefaultUserAgentHeader: true,
		TLSConfig:                n.cfg.Peer.TLS,
		// A write must never be sent twice by this node.
		RetryIf: func(*fasthttp.Request) bool { return false },
	}}
}

func (f *forwarder) close() { f.client.CloseIdleConnections() }

type forwardAnswer struct {
	command.Result
	Value json.RawMessage `json:"value,omitempty"`
}

type forwardError struct {
	Error command.Error `json:"error"`
}

func (n *Node) forward(ctx context.Context, leader memberState, cmd []byte) (*command.Result, error) {
	_, secret := n.cfg.Hooks.Identity()
	if secret == "" {
		// Not caught up with the cluster identity yet: we cannot sign.
		return nil, ErrNoLeader
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(n.cfg.Peer.url(leader.Meta.HTTPAddr, ForwardPath))
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.Set(ForwardMACHeader, sign(secret, cmd))
	req.Header.SetContentType("application/octet-stream")
	req.SetBodyRaw(cmd)

	timeout := n.cfg.ApplyTimeout + time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	err := n.fwd.client.DoTimeout(req, resp, timeout)
	if err != nil {
		if isDialError(err) {
			// The request never left this node.
			return nil, ErrNoLeader
		}
		return nil, fmt.Errorf("%w: forwarding to %s: %v", ErrOutcomeUnknown, leader.Name, err)
	}
	switch resp.StatusCode() {
	case fasthttp.StatusOK:
	case fasthttp.StatusServiceUnavailable:
		return nil, ErrNoLeader
	default:
		var fe forwardError
		_ = json.Unmarshal(resp.Body(), &fe)
		if resp.StatusCode() == fasthttp.StatusForbidden {
			return nil, fmt.Errorf("%w: leader %s refused the forwarded write: %s", ErrNoLeader, leader.Name, fe.Error.Message)
		}
		return nil, fmt.Errorf("%w: leader %s answered %d: %s", ErrOutcomeUnknown, leader.Name, resp.StatusCode(), fe.Error.Message)
	}
	var ans forwardAnswer
	if err := json.Unmarshal(resp.Body(), &ans); err != nil {
		return nil, fmt.Errorf("%w: undecodable answer from leader %s: %v", ErrOutcomeUnknown, leader.Name, err)
	}
	res := ans.Result
	if len(ans.Value) > 0 && !bytes.Equal(ans.Value, []byte("null")) {
		res.Value = ans.Value
	} else {
		res.Value = nil
	}
	// Read-your-writes: answer only once this node has applied it too.
	waitCtx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	if err := n.cfg.FSM.WaitApplied(waitCtx, res.Index); err != nil {
		return nil, fmt.Errorf("%w: index %d committed by %s", ErrNotApplied, res.Index, leader.Name)
	}
	return &res, nil
}

func isDialError(err error) bool {
	if errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return false
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
