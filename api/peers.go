package api

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/cluster/peerproto"
)

// Relay describes how an operator request reached this node.
type Relay struct {
	// Forwarded is true when another node relayed the request here.
	Forwarded bool
	// Headers go with the request when it is relayed to the leader.
	Headers map[string]string
}

func relayOf(ctx *fasthttp.RequestCtx, rc *reqCtx) Relay {
	r := Relay{Forwarded: len(ctx.Request.Header.Peek(peerproto.HeaderRelayed)) > 0, Headers: map[string]string{}}
	// Credentials and the request id go with a relayed request.
	for _, h := range []string{"Authorization", HeaderToken, HeaderRequestID} {
		if v := ctx.Request.Header.Peek(h); len(v) > 0 {
			r.Headers[h] = string(v)
		}
	}
	r.Headers[HeaderRequestID] = rc.id
	return r
}

// operatorError maps the error of an operator request to its answer
// (errorOf).
func operatorError(err error) *apiError {
	e, _ := errorOf("the operation", err)
	return e
}

// DELETE /cluster/peers/{node}: remove a failed server from Raft.
func (s *Server) deletePeer(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	cctx, cancel := context.WithTimeout(context.Background(), s.applyTimeout+5*time.Second)
	idx, err := s.cluster.RemovePeer(cctx, rc.name, relayOf(ctx, rc))
	cancel()
	if err != nil {
		e := operatorError(err)
		if e.status >= 500 {
			s.log.Warn("remove-peer failed", "request_id", rc.id, "node", rc.name, "err", err)
		}
		writeError(ctx, e)
		return
	}
	rc.index = idx
	writeJSON(ctx, fasthttp.StatusOK, struct {
		Node    string `json:"node"`
		Removed bool   `json:"removed"`
		Index   uint64 `json:"index"`
	}{rc.name, true, idx})
}
