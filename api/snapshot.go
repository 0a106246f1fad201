package api

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/fsm/command"
)

// Limits of PUT /cluster/snapshot, the one endpoint that takes more than
// Deps.MaxBodyBytes: the body limit and the time to read it, and the bound
// on the whole restore (raft installs the snapshot on a quorum).
const (
	MaxSnapshotBytes    = 64 << 20
	snapshotReadTimeout = 2 * time.Minute
	restoreTimeout      = 3 * time.Minute
)

// headerReceived gives PUT /cluster/snapshot its own body limit and read
// timeout, decided on the headers before fasthttp reads the body; every
// other request keeps the server's.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if string(h.Method()) != fasthttp.MethodPut {
		return fasthttp.RequestConfig{}
	}
	path, _, _ := strings.Cut(string(h.RequestURI()), "?")
	if path != "/cluster/snapshot" {
		return fasthttp.RequestConfig{}
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: max(MaxSnapshotBytes, s.maxBody), ReadTimeout: snapshotReadTimeout}
}

// GET /cluster/snapshot: the state as one consistent (MVCC) view, in the
// FSM's snapshot format. ?consistent first waits until this node applied
// everything committed (linearizable), as for other reads. The body is
// built in memory (the state is in memory anyway) so that a failure is an
// error answer, not a truncated 200.
func (s *Server) getSnapshot(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if ctx.QueryArgs().Has("consistent") && s.consistency != nil {
		cctx, cancel := context.WithTimeout(context.Background(), s.applyTimeout)
		err := s.consistency.ConsistentRead(cctx)
		cancel()
		if err != nil {
			writeError(ctx, errNoLeader("consistent snapshot impossible: "+err.Error()))
			return
		}
	}
	var buf bytes.Buffer
	idx, err := s.cluster.Snapshot(&buf)
	if err != nil {
		s.log.Error("snapshot failed", "request_id", rc.id, "err", err)
		writeError(ctx, errInternal("snapshot failed: "+err.Error()))
		return
	}
	rc.index = idx
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/octet-stream")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="nexus.snap"`)
	ctx.Response.SetBodyRaw(buf.Bytes()) // not copied: buf is this answer's alone
}

// PUT /cluster/snapshot: restore the body through Raft, on every node.
func (s *Server) putSnapshot(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	body := ctx.PostBody()
	if len(body) == 0 {
		writeError(ctx, &apiError{status: fasthttp.StatusBadRequest, code: command.CodeInvalidSnapshot,
			message: "request body is empty; a snapshot file (nexus snapshot save) is expected"})
		return
	}
	// Raft may still read the bytes after a timed-out answer: never hand
	// it fasthttp's reused body buffer.
	data := bytes.Clone(body)
	cctx, cancel := context.WithTimeout(context.Background(), restoreTimeout)
	idx, err := s.cluster.RestoreSnapshot(cctx, data, relayOf(ctx, rc))
	cancel()
	if err != nil {
		e := operatorError(err)
		if e.status >= 500 {
			s.log.Warn("snapshot restore failed", "request_id", rc.id, "bytes", len(data), "err", err)
		}
		writeError(ctx, e)
		return
	}
	rc.index = idx
	s.log.Info("snapshot restored", "request_id", rc.id, "bytes", len(data), "index", idx)
	writeJSON(ctx, fasthttp.StatusOK, struct {
		Restored bool   `json:"restored"`
		Bytes    int    `json:"bytes"`
		Index    uint64 `json:"index"`
	}{true, len(data), idx})
}
