package api

import (
	"context"

	"github.com/valyala/fasthttp"
)

// GET /health
func (s *Server) getHealth(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	writeJSON(ctx, fasthttp.StatusOK, struct {
		Status string `json:"status"`
		Node   string `json:"node"`
	}{"ok", s.cluster.NodeName()})
}

// GET /ready
func (s *Server) getReady(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	if !s.cluster.Ready() {
		writeError(ctx, &apiError{status: fasthttp.StatusServiceUnavailable, code: CodeNotReady,
			message: "this node has no leader or has not applied up to its commit index yet", retryAfter: true})
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, struct {
		Status string `json:"status"`
	}{"ready"})
}

// statusBody is GET /status.
type statusBody struct {
	Node          string     `json:"node"`
	Version       string     `json:"version"`
	Raft          RaftStatus `json:"raft"`
	Members       []Member   `json:"members"`
	Services      int        `json:"services"`
	Instances     int        `json:"instances"`
	Routes        int        `json:"routes"`
	ConfigEntries int        `json:"config_entries"`
}

// GET /status
func (s *Server) getStatus(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	st := s.cluster.Raft()
	b := statusBody{Node: s.cluster.NodeName(), Version: s.version, Raft: st, Members: s.cluster.Members()}
	if b.Members == nil {
		b.Members = []Member{}
	}
	tx := s.reader.Store().ReadTxn()
	b.Services, b.Instances, b.ConfigEntries, b.Routes = tx.Counts()
	tx.Abort()
	rc.index = st.AppliedIndex
	writeJSON(ctx, fasthttp.StatusOK, b)
}

// GET /metrics
func (s *Server) getMetrics(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	s.metrics.handler(ctx)
}

// GET /cluster/members
func (s *Server) getMembers(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	m := s.cluster.Members()
	if m == nil {
		m = []Member{}
	}
	writeJSON(ctx, fasthttp.StatusOK, m)
}

// GET /cluster/leader
func (s *Server) getLeader(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	l, ok := s.cluster.Leader()
	if !ok {
		writeError(ctx, errNoLeader("no known leader"))
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, l)
}

// raftBody is GET /cluster/raft.
type raftBody struct {
	Term         uint64       `json:"term"`
	CommitIndex  uint64       `json:"commit_index"`
	AppliedIndex uint64       `json:"applied_index"`
	Servers      []RaftServer `json:"servers"`
}

// GET /cluster/raft
func (s *Server) getRaft(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	st := s.cluster.Raft()
	b := raftBody{Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, Servers: st.Servers}
	if b.Servers == nil {
		b.Servers = []RaftServer{}
	}
	rc.index = st.AppliedIndex
	writeJSON(ctx, fasthttp.StatusOK, b)
}

// POST /cluster/leave
func (s *Server) postLeave(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	lctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	err := s.cluster.Leave(lctx, relayOf(ctx, rc))
	cancel()
	if err != nil {
		e, ok := errorOf("the leave", err)
		if !ok {
			s.log.Error("leave failed", "request_id", rc.id, "err", err)
		}
		writeError(ctx, e)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, struct {
		Left bool `json:"left"`
	}{true})
}
