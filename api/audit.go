package api

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// AuditArchive reads archived audit records (PostgreSQL); storage/archive
// implements it and package agent wires it. Nil in Deps: GET /audit reads the
// replicated backlog only.
type AuditArchive interface {
	List(ctx context.Context, clusterID string, f registry.AuditFilter) ([]registry.AuditRecord, error)
}

// CodeArchiveUnavailable answers GET /audit when the archive cannot be read.
const CodeArchiveUnavailable = "audit_archive_unavailable"

// Sources of GET /audit.
const (
	auditSourceAll     = ""        // archive + backlog (backlog only without an archive)
	auditSourceBacklog = "backlog" // the replicated backlog only
)

// auditEvent is one record as GET /audit shows it (api.md, Audit).
type auditEvent struct {
	RaftIndex    uint64          `json:"raft_index"`
	Position     uint32          `json:"position"`
	Time         string          `json:"time"`
	Actor        string          `json:"actor"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resource_type"`
	Resource     string          `json:"resource"`
	Node         string          `json:"node"`
	RequestID    string          `json:"request_id"`
	Before       json.RawMessage `json:"before"`
	After        json.RawMessage `json:"after"`
}

func newAuditEvent(r *registry.AuditRecord) auditEvent {
	return auditEvent{
		RaftIndex: r.Index, Position: r.Position, Time: time.Unix(0, r.Time).UTC().Format(time.RFC3339Nano),
		Actor: r.Actor, Action: r.Action, ResourceType: r.ResourceType, Resource: r.Resource, Node: r.Node,
		RequestID: r.RequestID, Before: r.Before, After: r.After,
	}
}

// auditResourceTypes are the values resource_type takes.
var auditResourceTypes = []string{registry.AuditService, registry.AuditInstance, registry.AuditConfig,
	registry.AuditRoute, registry.AuditACL, registry.AuditCluster, registry.AuditSession, registry.AuditMaintenance}

// parseAuditFilter reads the filters and paging of GET /audit.
func parseAuditFilter(args *fasthttp.Args) (registry.AuditFilter, string, *apiError) {
	var f registry.AuditFilter
	lo, e := parseListOpts(args)
	if e != nil {
		return f, "", e
	}
	f.Limit = lo.limit
	f.ResourceType = string(args.Peek("resource_type"))
	if f.ResourceType != "" && !contains(auditResourceTypes, f.ResourceType) {
		return f, "", errInvalid("resource_type", "%q must be one of %s", f.ResourceType, strings.Join(auditResourceTypes, ", "))
	}
	f.Resource = string(args.Peek("resource"))
	f.Actor = string(args.Peek("actor"))
	f.Action = string(args.Peek("action"))
	if v := string(args.Peek("since")); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return f, "", errInvalid("since", "%q is not an RFC 3339 time like 2025-01-31T12:00:00Z", v)
		}
		f.Since = t.UnixNano()
	}
	if lo.after != "" {
		k, ok := parseAuditCursor(lo.after)
		if !ok {
			return f, "", errInvalid("after", "%q is not a cursor RAFTINDEX-POSITION (from X-Nexus-Next)", lo.after)
		}
		f.Before = k
	}
	source := string(args.Peek("source"))
	if source != auditSourceAll && source != auditSourceBacklog {
		return f, "", errInvalid("source", "%q must be backlog (or absent)", source)
	}
	return f, source, nil
}

func parseAuditCursor(s string) (registry.AuditKey, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return registry.AuditKey{}, false
	}
	idx, err1 := strconv.ParseUint(a, 10, 64)
	pos, err2 := strconv.ParseUint(b, 10, 32)
	if err1 != nil || err2 != nil || idx == 0 {
		return registry.AuditKey{}, false
	}
	return registry.AuditKey{Index: idx, Position: uint32(pos)}, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// GET /audit: newest first. With an archive, the answer merges archived
// records (PostgreSQL) with the backlog records not archived yet, so a
// write shows at once; without one it reads the backlog (a ring of the
// latest records). ?source=backlog reads the backlog only.
func (s *Server) listAudit(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	f, source, e := parseAuditFilter(ctx.QueryArgs())
	if e != nil {
		writeError(ctx, e)
		return
	}
	useArchive := s.auditArchive != nil && source != auditSourceBacklog
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		st := tx.AuditState(ws)
		res := readResult{index: st.Last.Index}
		// Ask each source for one more than a page to know whether
		// another page follows.
		q := f
		q.Limit = f.Limit + 1
		recs := tx.AuditList(nil, q)
		if useArchive {
			meta := tx.ClusterMeta()
			if meta != nil {
				actx, cancel := context.WithTimeout(s.base, s.applyTimeout)
				archived, err := s.auditArchive.List(actx, meta.ClusterID, q)
				cancel()
				if err != nil {
					s.log.Warn("reading the audit archive failed", "request_id", rc.id, "err", err)
					res.err = &apiError{status: fasthttp.StatusServiceUnavailable, code: CodeArchiveUnavailable, retryAfter: true,
						message: "the audit archive (PostgreSQL) cannot be read: " + err.Error() + "; ?source=backlog reads the records not archived yet"}
					return res
				}
				recs = mergeAudit(recs, archived)
			}
		}
		out := make([]auditEvent, 0, min(len(recs), f.Limit))
		for i := range recs {
			if len(out) == f.Limit {
				last := out[len(out)-1]
				res.next = registry.AuditKey{Index: last.RaftIndex, Position: last.Position}.String()
				break
			}
			out = append(out, newAuditEvent(&recs[i]))
		}
		res.body = out
		return res
	})
}

// mergeAudit merges two newest-first lists, dropping duplicates (a record
// archived while it is still in this replica's backlog).
func mergeAudit(a, b []registry.AuditRecord) []registry.AuditRecord {
	out := make([]registry.AuditRecord, 0, len(a)+len(b))
	out = append(out, a...)
	out = append(out, b...)
	sort.SliceStable(out, func(i, j int) bool { return out[j].Key().Less(out[i].Key()) })
	w := 0
	for i := range out {
		if w > 0 && out[w-1].Key() == out[i].Key() {
			continue
		}
		out[w] = out[i]
		w++
	}
	return out[:w]
}

// auditSettingsView is GET/PUT /audit/settings.
type auditSettingsView struct {
	registry.AuditSettings
	// Archiving is true when records wait for the archiver; false when the
	// backlog is a ring of the latest records.
	Archiving bool `json:"archiving"`
	// Attached is true once an archiver committed a watermark.
	Attached  bool              `json:"attached"`
	Backlog   auditBacklogView  `json:"backlog"`
	Watermark registry.AuditKey `json:"watermark"`
	// ModifyIndex is the Raft index of the last settings or watermark change.
	ModifyIndex uint64 `json:"modify_index"`
}

type auditBacklogView struct {
	Records int64             `json:"records"`
	Bytes   int64             `json:"bytes"`
	Newest  registry.AuditKey `json:"newest"`
	Dropped uint64            `json:"dropped"`
	Evicted uint64            `json:"evicted"`
}

func newAuditSettingsView(st registry.AuditState) auditSettingsView {
	return auditSettingsView{
		AuditSettings: st.Settings, Archiving: st.Archiving(), Attached: st.Attached, Watermark: st.Watermark,
		ModifyIndex: st.ModifyIndex,
		Backlog:     auditBacklogView{Records: st.Records, Bytes: st.Bytes, Newest: st.Last, Dropped: st.Dropped, Evicted: st.Evicted},
	}
}

// GET /audit/settings
func (s *Server) getAuditSettings(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	s.serveRead(ctx, rc, func(tx *registry.Tx, ws memdb.WatchSet) readResult {
		st := tx.AuditState(ws)
		return readResult{index: max(st.ModifyIndex, st.Last.Index), body: newAuditSettingsView(st)}
	})
}

// auditSettingsRequest is the body of PUT /audit/settings; absent fields
// keep their value.
type auditSettingsRequest struct {
	MaxRecords *int64  `json:"max_records"`
	MaxBytes   *int64  `json:"max_bytes"`
	OnFull     *string `json:"on_full"`
	Archive    *string `json:"archive"`
}

// PUT /audit/settings: replicated cluster settings of the audit backlog.
func (s *Server) putAuditSettings(ctx *fasthttp.RequestCtx, rc *reqCtx) {
	var req auditSettingsRequest
	if e := decodeJSON(ctx.PostBody(), &req); e != nil {
		s.reject(ctx, e)
		return
	}
	if req.MaxRecords == nil && req.MaxBytes == nil && req.OnFull == nil && req.Archive == nil {
		s.reject(ctx, errInvalid("body", "give at least one of max_records, max_bytes, on_full, archive"))
		return
	}
	patch := registry.AuditSettingsPatch{MaxRecords: req.MaxRecords, MaxBytes: req.MaxBytes, OnFull: req.OnFull, Archive: req.Archive}
	if verr := patch.Validate(); verr != nil {
		s.reject(ctx, fromRegistry(verr))
		return
	}
	res := s.apply(ctx, rc, command.TypeAuditSettings, &command.AuditSettings{
		Meta: s.meta(rc), MaxRecords: req.MaxRecords, MaxBytes: req.MaxBytes, OnFull: req.OnFull, Archive: req.Archive,
	})
	if res == nil {
		return
	}
	// The write applied on this node: answer the whole state as of now.
	tx := s.reader.Store().ReadTxn()
	st := tx.AuditState(nil)
	tx.Abort()
	rc.index = res.Index
	writeJSON(ctx, fasthttp.StatusOK, newAuditSettingsView(st))
}
