package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/cluster/peerproto"
)

func TestGetSnapshot(t *testing.T) {
	var h *harness
	ops := &opsCluster{snap: func(w io.Writer) (uint64, error) {
		return h.fsm.AppliedIndex(), h.fsm.WriteSnapshot(w)
	}}
	consistentCalls := 0
	h = newHarness(t, withOps(ops), func(d *Deps) {
		d.Consistency = fakeConsistency{fn: func(context.Context) error { consistentCalls++; return nil }}
	})
	h.register(reg("web", "http", "10.0.0.1", 80))
	var want bytes.Buffer
	if err := h.fsm.WriteSnapshot(&want); err != nil {
		t.Fatal(err)
	}
	r := h.do("GET", "/cluster/snapshot", nil)
	if r.status != 200 || !bytes.Equal(r.body, want.Bytes()) {
		t.Fatalf("status %d, %d bytes, want the FSM's %d bytes", r.status, len(r.body), want.Len())
	}
	if ct := r.get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("content type %q", ct)
	}
	if r.get(HeaderIndex) != fmt.Sprint(h.fsm.AppliedIndex()) {
		t.Errorf("index %q, applied %d", r.get(HeaderIndex), h.fsm.AppliedIndex())
	}
	if consistentCalls != 0 {
		t.Errorf("a default snapshot made a consistent read")
	}
	h.do("GET", "/cluster/snapshot?consistent", nil)
	if consistentCalls != 1 {
		t.Errorf("?consistent made %d consistent reads", consistentCalls)
	}
}

func TestGetSnapshotErrors(t *testing.T) {
	tests := []struct {
		name       string
		uri        string
		consistent error
		snap       error
		status     int
		code       string
	}{
		{"consistent read refused", "/cluster/snapshot?consistent", errors.New("no quorum"), nil, 503, CodeNoLeader},
		{"snapshot fails", "/cluster/snapshot", nil, errors.New("disk on fire"), 500, "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := &opsCluster{snap: func(w io.Writer) (uint64, error) { return 0, tt.snap }}
			h := newHarness(t, withOps(ops), func(d *Deps) {
				d.Consistency = fakeConsistency{fn: func(context.Context) error { return tt.consistent }}
			})
			h.mustErr(h.do("GET", tt.uri, nil), tt.status, tt.code)
		})
	}
}

func TestPutSnapshot(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		hdr    []string
		err    error
		status int
		code   string
	}{
		{name: "restored", body: "SNAP\x00\x01", status: 200},
		{name: "relayed", body: "SNAP", hdr: []string{peerproto.HeaderRelayed, "n2"}, status: 200},
		{name: "empty body", body: "", status: 400, code: "invalid_snapshot"},
		{name: "invalid", body: "garbage", err: coded{400, "invalid_snapshot"}, status: 400, code: "invalid_snapshot"},
		{name: "no leader", body: "SNAP", err: coded{503, "no_leader"}, status: 503, code: "no_leader"},
		{name: "outcome unknown", body: "SNAP", err: context.DeadlineExceeded, status: 504, code: CodeOutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []byte
			var relay Relay
			ops := &opsCluster{restore: func(data []byte, r Relay) (uint64, error) {
				got, relay = data, r
				if tt.err != nil {
					return 0, tt.err
				}
				return 77, nil
			}}
			h := newHarness(t, withOps(ops))
			r := h.do("PUT", "/cluster/snapshot", tt.body, tt.hdr...)
			if tt.code != "" {
				h.mustErr(r, tt.status, tt.code)
				return
			}
			var ans struct {
				Restored bool   `json:"restored"`
				Bytes    int    `json:"bytes"`
				Index    uint64 `json:"index"`
			}
			h.must(r, tt.status, &ans)
			if !ans.Restored || ans.Bytes != len(tt.body) || ans.Index != 77 || r.get(HeaderIndex) != "77" {
				t.Errorf("answer %+v, index %q", ans, r.get(HeaderIndex))
			}
			if string(got) != tt.body {
				t.Errorf("restored %q, want %q", got, tt.body)
			}
			if relay.Forwarded != (len(tt.hdr) > 0) {
				t.Errorf("relay %+v", relay)
			}
		})
	}
}

// PUT /cluster/snapshot alone takes bodies up to MaxSnapshotBytes; every
// other endpoint keeps the server's limit.
func TestSnapshotBodyLimit(t *testing.T) {
	restored := 0
	ops := &opsCluster{restore: func(data []byte, r Relay) (uint64, error) { restored = len(data); return 1, nil }}
	h := newHarness(t, withOps(ops), func(d *Deps) { d.MaxBodyBytes = 4 << 10 })

	big := strings.Repeat("x", 2<<20)
	h.must(h.do("PUT", "/cluster/snapshot?x=1", big), 200, nil)
	if restored != len(big) {
		t.Fatalf("restored %d bytes, want %d", restored, len(big))
	}
	h.mustErr(h.do("POST", "/config", `{"key":"k","value":"`+strings.Repeat("v", 8<<10)+`"}`), 413, CodeBodyTooLarge)

	// fasthttp enforces the limit headerReceived picks while reading; the
	// handler checks it again (Handler() used on its own).
	tests := []struct {
		method, uri string
		want        int
	}{
		{"PUT", "/cluster/snapshot", MaxSnapshotBytes},
		{"PUT", "/cluster/snapshot?stale", MaxSnapshotBytes},
		{"GET", "/cluster/snapshot", 0},
		{"PUT", "/cluster/snapshots", 0},
		{"PUT", "/config/cluster/snapshot", 0},
		{"POST", "/cluster/snapshot", 0},
	}
	for _, tt := range tests {
		var hdr fasthttp.RequestHeader
		hdr.SetMethod(tt.method)
		hdr.SetRequestURI(tt.uri)
		if got := h.srv.headerReceived(&hdr).MaxRequestBodySize; got != tt.want {
			t.Errorf("%s %s: body limit %d, want %d", tt.method, tt.uri, got, tt.want)
		}
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("PUT")
	ctx.Request.SetRequestURI("/cluster/snapshot")
	ctx.Request.SetBodyString(strings.Repeat("x", MaxSnapshotBytes+1))
	h.srv.Handler()(&ctx)
	if ctx.Response.StatusCode() != 413 || !strings.Contains(string(ctx.Response.Body()), fmt.Sprint(MaxSnapshotBytes)) {
		t.Errorf("over the snapshot limit: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}
