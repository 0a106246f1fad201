package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/cluster/peerproto"
	"github.com/nexus/nexus/fsm/command"
)

// The operator methods of fakeCluster; opsCluster overrides them per test.

func (c *fakeCluster) RemovePeer(ctx context.Context, node string, relay Relay) (uint64, error) {
	return 0, errors.New("not implemented")
}

func (c *fakeCluster) Snapshot(w io.Writer) (uint64, error) {
	return 0, errors.New("not implemented")
}

func (c *fakeCluster) RestoreSnapshot(ctx context.Context, data []byte, relay Relay) (uint64, error) {
	return 0, errors.New("not implemented")
}

// opsCluster is a fakeCluster whose operator methods are functions.
type opsCluster struct {
	*fakeCluster
	remove  func(node string, relay Relay) (uint64, error)
	snap    func(w io.Writer) (uint64, error)
	restore func(data []byte, relay Relay) (uint64, error)
}

func (c *opsCluster) RemovePeer(ctx context.Context, node string, relay Relay) (uint64, error) {
	return c.remove(node, relay)
}

func (c *opsCluster) Snapshot(w io.Writer) (uint64, error) { return c.snap(w) }

func (c *opsCluster) RestoreSnapshot(ctx context.Context, data []byte, relay Relay) (uint64, error) {
	return c.restore(data, relay)
}

// coded is an error that knows its answer, like cluster.OpError.
type coded struct {
	status int
	code   string
}

func (e coded) Error() string     { return fmt.Sprintf("%s (%d)", e.code, e.status) }
func (e coded) StatusCode() int   { return e.status }
func (e coded) ErrorCode() string { return e.code }

func withOps(c *opsCluster) func(*Deps) {
	return func(d *Deps) {
		c.fakeCluster = d.Cluster.(*fakeCluster)
		d.Cluster = c
	}
}

func TestDeletePeer(t *testing.T) {
	tests := []struct {
		name       string
		path       string
		err        error
		wantStatus int
		wantCode   string
		wantNode   string
	}{
		{name: "removed", path: "/cluster/peers/n4", wantStatus: 200, wantNode: "n4"},
		{name: "escaped name", path: "/cluster/peers/n%2D4", wantStatus: 200, wantNode: "n-4"},
		{name: "alive", path: "/cluster/peers/n2", err: coded{409, "member_alive"}, wantStatus: 409, wantCode: "member_alive", wantNode: "n2"},
		{name: "unknown", path: "/cluster/peers/zz", err: coded{404, "not_found"}, wantStatus: 404, wantCode: "not_found", wantNode: "zz"},
		{name: "no leader", path: "/cluster/peers/n4", err: fmt.Errorf("%w: x", command.ErrNoLeader), wantStatus: 503, wantCode: CodeNoLeader, wantNode: "n4"},
		{name: "relayed 503 keeps retry", path: "/cluster/peers/n4", err: coded{503, "no_leader"}, wantStatus: 503, wantCode: "no_leader", wantNode: "n4"},
		{name: "outcome unknown", path: "/cluster/peers/n4", err: fmt.Errorf("%w: x", command.ErrOutcomeUnknown), wantStatus: 504, wantCode: CodeOutcomeUnknown, wantNode: "n4"},
		{name: "timeout", path: "/cluster/peers/n4", err: context.DeadlineExceeded, wantStatus: 504, wantCode: CodeOutcomeUnknown, wantNode: "n4"},
		{name: "bad status in error", path: "/cluster/peers/n4", err: coded{200, "weird"}, wantStatus: 500, wantCode: "weird", wantNode: "n4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			ops := &opsCluster{remove: func(node string, relay Relay) (uint64, error) {
				got = node
				if tt.err != nil {
					return 0, tt.err
				}
				return 42, nil
			}}
			h := newHarness(t, withOps(ops))
			r := h.do("DELETE", tt.path, nil)
			if got != tt.wantNode {
				t.Errorf("RemovePeer got node %q, want %q", got, tt.wantNode)
			}
			if tt.wantCode != "" {
				h.mustErr(r, tt.wantStatus, tt.wantCode)
				if (tt.wantStatus == 503) != (r.get("Retry-After") != "") {
					t.Errorf("status %d with Retry-After %q", r.status, r.get("Retry-After"))
				}
				return
			}
			var body struct {
				Node    string `json:"node"`
				Removed bool   `json:"removed"`
				Index   uint64 `json:"index"`
			}
			h.must(r, tt.wantStatus, &body)
			if body.Node != tt.wantNode || !body.Removed || body.Index != 42 || r.get(HeaderIndex) != "42" {
				t.Errorf("answer %+v, index header %q", body, r.get(HeaderIndex))
			}
		})
	}
}

func TestDeletePeerRelay(t *testing.T) {
	var relays []Relay
	ops := &opsCluster{remove: func(node string, relay Relay) (uint64, error) {
		relays = append(relays, relay)
		return 1, nil
	}}
	h := newHarness(t, withOps(ops))
	h.must(h.do("DELETE", "/cluster/peers/n4", nil, "Authorization", "Bearer s3cret", HeaderRequestID, "rid-1"), 200, nil)
	h.must(h.do("DELETE", "/cluster/peers/n4", nil, peerproto.HeaderRelayed, "n2", "X-Nexus-Token", "tok"), 200, nil)
	if len(relays) != 2 {
		t.Fatalf("calls %d", len(relays))
	}
	if r := relays[0]; r.Forwarded || r.Headers["Authorization"] != "Bearer s3cret" || r.Headers[HeaderRequestID] != "rid-1" {
		t.Errorf("first relay %+v", r)
	}
	if r := relays[1]; !r.Forwarded || r.Headers["X-Nexus-Token"] != "tok" || r.Headers[HeaderRequestID] == "" {
		t.Errorf("second relay %+v", r)
	}
}

func TestPeersRouting(t *testing.T) {
	ops := &opsCluster{remove: func(string, Relay) (uint64, error) { return 1, nil }}
	h := newHarness(t, withOps(ops))
	r := h.do("GET", "/cluster/peers/n4", nil)
	h.mustErr(r, 405, CodeMethodNotAllowed)
	if r.get("Allow") != "DELETE" {
		t.Errorf("Allow %q", r.get("Allow"))
	}
	h.mustErr(h.do("DELETE", "/cluster/peers", nil), 404, "not_found")
	h.mustErr(h.do("DELETE", "/cluster/peers/a/b", nil), 404, "not_found")
}

// The paths a follower relays to (peerproto) are this API's remove-peer
// and snapshot routes.
func TestRelayPathsAreRoutes(t *testing.T) {
	h := newHarness(t)
	for path, want := range map[string]*endpoint{
		peerproto.PathSnapshot:      &h.srv.eps.snapshot,
		peerproto.PeerPath("n/4 x"): &h.srv.eps.peers,
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI(path)
		ep, p, err := h.srv.route(&ctx)
		if ep != want || err != nil {
			t.Errorf("%s routes to %v (%v)", path, ep, err)
		}
		if want == &h.srv.eps.peers && p.name != "n/4 x" {
			t.Errorf("%s: node %q", path, p.name)
		}
	}
}
