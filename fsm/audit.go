package fsm

import (
	"encoding/json"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// entryAudit collects the audit records of one Raft entry: what the
// proposer knew (Meta) plus what Apply saw in this replica's own state
// (before and after). Positions number the records of the entry from 0.
type entryAudit struct {
	index uint64
	meta  command.Meta
	recs  []registry.AuditRecord
}

func (a *entryAudit) add(action, resourceType, resource string, before, after any) {
	a.recs = append(a.recs, registry.AuditRecord{
		Index: a.index, Position: uint32(len(a.recs)), Time: a.meta.Time,
		Actor: a.meta.Actor, Action: action, ResourceType: resourceType, Resource: resource,
		Node: a.meta.Node, RequestID: a.meta.RequestID,
		Before: auditJSON(before), After: auditJSON(after),
	})
}

// auditJSON encodes a before/after document. encoding/json sorts map keys,
// so equal states give equal bytes on every replica. nil (or a typed nil
// pointer) is no document.
func auditJSON(v any) json.RawMessage {
	switch x := v.(type) {
	case nil:
		return nil
	case *registry.Instance:
		if x == nil {
			return nil
		}
	case *registry.Service:
		if x == nil {
			return nil
		}
	case *registry.Route:
		if x == nil {
			return nil
		}
	case *registry.Maintenance:
		if x == nil {
			return nil
		}
	case *registry.ConfigEntry:
		if x == nil {
			return nil
		}
		// The same bytes as Marshal of configDocOf(x), without its
		// reflection or its scan of the value (a third of the Apply of a
		// config write); a value that is not JSON takes Marshal's path.
		if b, ok := x.AppendRecordJSON(make([]byte, 0, 128+len(x.Key)+len(x.Session)+len(x.Value)*4/3)); ok {
			return b
		}
		v = configDocOf(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Every document is a plain struct of the registry: this cannot
		// happen, and a deterministic null keeps replicas equal if it did.
		return json.RawMessage("null")
	}
	return b
}

// auditConfigDoc is a config entry as audit documents show it (the API's
// entry plus create_index, which the history tables need).
type auditConfigDoc struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value"`
	CreateIndex uint64          `json:"create_index"`
	ModifyIndex uint64          `json:"modify_index"`
	Session     string          `json:"session,omitempty"`
	LockIndex   uint64          `json:"lock_index,omitempty"`
	Raw         bool            `json:"raw,omitempty"`
	Flags       uint64          `json:"flags,omitempty"`
}

func configDocOf(x *registry.ConfigEntry) auditConfigDoc {
	return auditConfigDoc{Key: x.Key, Value: x.JSONValue(), CreateIndex: x.CreateIndex, ModifyIndex: x.ModifyIndex,
		Session: x.Session, LockIndex: x.LockIndex, Raw: x.Raw, Flags: x.Flags}
}

// clusterDoc is the audit document of the cluster identity (never the
// forwarding secret).
type clusterDoc struct {
	ClusterID string `json:"cluster_id"`
}

// metaOf returns the proposer metadata of a decoded command.
func metaOf(msg any) command.Meta {
	switch m := msg.(type) {
	case *command.RegisterInstance:
		return m.Meta
	case *command.DeregisterInstance:
		return m.Meta
	case *command.DeregisterService:
		return m.Meta
	case *command.SetStatus:
		return m.Meta
	case *command.ConfigSet:
		return m.Meta
	case *command.ConfigDelete:
		return m.Meta
	case *command.RouteUpsert:
		return m.Meta
	case *command.RouteDelete:
		return m.Meta
	case *command.ClusterInit:
		return m.Meta
	case *command.AuditSettings:
		return m.Meta
	case *command.AuditWatermark:
		return m.Meta
	case *command.Noop:
		return m.Meta
	}
	if m, ok := aclMetaOf(msg); ok {
		return m
	}
	if m, ok := msg.(*command.Maintenance); ok {
		return m.Meta
	}
	m, _ := command.SessionMeta(msg)
	return m
}

// isSystem reports whether a full backlog must let a command pass: health
// marking, the cluster identity, audit settings (an operator must be able
// to raise a bound or switch to drop_oldest when the backlog is full), the
// watermark, barriers, and anything a node proposes on its own.
func isSystem(t command.Type, m command.Meta) bool {
	switch t {
	case command.TypeSetStatus, command.TypeClusterInit, command.TypeAuditSettings,
		command.TypeAuditWatermark, command.TypeNoop:
		return true
	}
	if isSessionSystem(t) {
		return true
	}
	return command.IsSystemActor(m.Actor)
}

// copyInstance returns a copy of a stored instance, or nil.
func copyInstance(in *registry.Instance) *registry.Instance {
	if in == nil {
		return nil
	}
	cp := *in
	return &cp
}

func copyService(s *registry.Service) *registry.Service {
	if s == nil {
		return nil
	}
	cp := *s
	return &cp
}

func instanceResource(service, id string) string { return service + "/" + id }
