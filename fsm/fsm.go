// Package fsm is the Raft state machine of Nexus: it decodes committed
// commands and applies them to the registry store, answers snapshots and
// restores them. Apply is deterministic: it reads no clock, no network, no
// disk and never lets map order reach state or output.
package fsm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Deps are what the FSM needs.
type Deps struct {
	Store  *registry.Store
	Codec  *command.Codec
	Logger *slog.Logger
	// OnApply, when set, is called after each applied command (metrics).
	OnApply func(t command.Type, r *command.Result)
	// SnapshotFormat, when set, picks the format of each snapshot
	// (snapshot.go): the latest only once every Raft server reads it.
	// Unset: LatestSnapshotFormat.
	SnapshotFormat func() int
}

// FSM implements raft.BatchingFSM over the registry store.
type FSM struct {
	store   *registry.Store
	codec   *command.Codec
	logger  *slog.Logger
	onApply func(command.Type, *command.Result)

	snapshotFormat func() int

	applied atomic.Uint64
	results results       // of the latest applied entries, for Result
	term    atomic.Uint64 // Raft term of the last applied entry (snapshot header)
	mu      sync.Mutex
	advance chan struct{} // closed and replaced whenever applied moves
}

var _ raft.BatchingFSM = (*FSM)(nil)

// New returns an FSM applying to deps.Store.
func New(deps Deps) *FSM {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &FSM{store: deps.Store, codec: deps.Codec, logger: deps.Logger, onApply: deps.OnApply, snapshotFormat: deps.SnapshotFormat, advance: make(chan struct{})}
}

// Store returns the state store the FSM writes.
func (f *FSM) Store() *registry.Store { return f.store }

// AppliedIndex returns the index of the last applied entry.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// WaitApplied blocks until the FSM has applied idx or ctx ends.
func (f *FSM) WaitApplied(ctx context.Context, idx uint64) error {
	for {
		f.mu.Lock()
		ch := f.advance
		f.mu.Unlock()
		if f.applied.Load() >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *FSM) setApplied(idx uint64) {
	f.applied.Store(idx)
	f.mu.Lock()
	close(f.advance)
	f.advance = make(chan struct{})
	f.mu.Unlock()
}

// Apply applies one entry.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in one store transaction, so readers
// see the batch at once and watchers fire once.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if len(logs) == 0 {
		return out
	}
	tx := f.store.WriteTxn(logs[0].Index)
	defer tx.Abort()
	type applied struct {
		t command.Type
		r *command.Result
	}
	var done []applied
	var st batchStats
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		tx.SetIndex(l.Index)
		t, r := f.applyOne(tx, l, &st)
		out[i] = r
		if r != nil {
			done = append(done, applied{t, r})
		}
	}
	tx.Commit()
	f.results.putBatch(logs, out) // before setApplied: a waiter woken by it finds them
	f.term.Store(logs[len(logs)-1].Term)
	f.setApplied(logs[len(logs)-1].Index)
	if st.dropped > 0 {
		f.logger.Warn("audit backlog full: dropped the oldest unarchived records (on_full drop_oldest)",
			"dropped", st.dropped, "last_index", logs[len(logs)-1].Index)
	}
	if f.onApply != nil {
		for _, a := range done {
			f.onApply(a.t, a.r)
		}
	}
	return out
}

func (f *FSM) applyOne(tx *registry.Tx, l *raft.Log, st *batchStats) (command.Type, *command.Result) {
	t, msg, err := f.codec.Decode(l.Data)
	if err != nil {
		unknown := errors.Is(err, command.ErrUnknownType) || errors.Is(err, command.ErrUnknownVersion)
		if unknown && t&command.SkippableFlag != 0 {
			f.logger.Warn("skipping unknown skippable command", "type", uint8(t), "index", l.Index)
			return t, nil
		}
		// Skipping a committed entry could let replicas diverge: stop loudly.
		panic(fmt.Sprintf("fsm: cannot apply committed entry %d: %v", l.Index, err))
	}
	res := &command.Result{Index: l.Index}
	au := &entryAudit{index: l.Index, meta: metaOf(msg)}
	if e := authorize(tx, msg, au.meta); e != nil {
		res.Err = e
		return t, res
	}
	if e := tx.AuditAdmit(isSystem(t, au.meta)); e != nil {
		res.Err = toErr(e)
		return t, res
	}
	f.dispatch(tx, l.Index, msg, res, au)
	if res.Err != nil && res.Err.Code == registry.CodeInternal {
		// The store refused an insert: state and replicas may now differ.
		panic(fmt.Sprintf("fsm: internal error applying entry %d: %s", l.Index, res.Err.Message))
	}
	if res.Err == nil && len(au.recs) > 0 {
		dropped, evicted, err := tx.AppendAudit(au.recs)
		if err != nil {
			panic(fmt.Sprintf("fsm: audit backlog of entry %d: %v", l.Index, err))
		}
		st.dropped += dropped
		st.evicted += evicted
	}
	return t, res
}

// batchStats counts what a batch did to the audit backlog, for one log
// line per batch instead of one per record.
type batchStats struct {
	dropped, evicted int
}

// dispatch applies one decoded command, sets its answer and collects its
// audit records. A business error leaves state and audit untouched.
func (f *FSM) dispatch(tx *registry.Tx, idx uint64, msg any, res *command.Result, au *entryAudit) {
	switch m := msg.(type) {
	case *command.RegisterInstance:
		svcBefore := copyService(tx.Service(nil, m.Instance.Service))
		prev := copyInstance(tx.Instance(nil, m.Instance.Service, m.Instance.ID))
		created, inst, e := tx.RegisterInstance(m.Instance)
		if e != nil {
			res.Err = toErr(e)
			return
		}
		res.Created, res.Value = created, inst
		if svcBefore == nil {
			au.add(registry.ActionRegister, registry.AuditService, m.Instance.Service, nil, tx.Service(nil, m.Instance.Service))
		}
		action := registry.ActionUpdate
		if created {
			action = registry.ActionRegister
		}
		au.add(action, registry.AuditInstance, instanceResource(inst.Service, inst.ID), prev, inst)
	case *command.DeregisterInstance:
		svcBefore := copyService(tx.Service(nil, m.Service))
		prev, e := tx.DeregisterInstance(m.Service, m.ID)
		if e != nil {
			res.Err = toErr(e)
			return
		}
		res.Value = DeregisteredInstance{Service: m.Service, ID: m.ID, ModifyIndex: idx}
		au.add(registry.ActionDeregister, registry.AuditInstance, instanceResource(m.Service, m.ID), prev, nil)
		if svcBefore != nil && tx.Service(nil, m.Service) == nil {
			au.add(registry.ActionDeregister, registry.AuditService, m.Service, svcBefore, nil)
		}
	case *command.DeregisterService:
		svcBefore := copyService(tx.Service(nil, m.Service))
		insts, e := tx.DeregisterService(m.Service)
		if e != nil {
			res.Err = toErr(e)
			return
		}
		res.Value = DeregisteredService{Deregistered: len(insts), ModifyIndex: idx}
		for i := range insts {
			au.add(registry.ActionDeregister, registry.AuditInstance, instanceResource(insts[i].Service, insts[i].ID), &insts[i], nil)
		}
		au.add(registry.ActionDeregister, registry.AuditService, m.Service, svcBefore, nil)
	case *command.SetStatus:
		prev, next, e := tx.SetStatus(m.Service, m.ID, m.Status, m.Output)
		if e != nil {
			res.Err = toErr(e)
			return
		}
		res.Value = next
		au.add(registry.ActionStatus, registry.AuditInstance, instanceResource(m.Service, m.ID), prev, next)
	case *command.ConfigSet:
		writes := make([]registry.ConfigWrite, len(m.Entries))
		for i, op := range m.Entries {
			writes[i] = registry.ConfigWrite{Key: op.Key, Value: op.Value, CAS: op.CAS, Raw: op.Raw, Flags: op.Flags}
		}
		entries, prevs, e := tx.ConfigSet(writes)
		if e != nil {
			res.Err = toErr(e)
			return
		}
		if m.Batch {
			res.Value = ConfigEntries{Entries: entries}
		} else {
			res.Value = entries[0]
		}
		for i := range entries {
			au.add(registry.ActionSet, registry.AuditConfig, entries[i].Key, prevs[i], &entries[i])
		}
	case *command.ConfigDelete:
		if m.Prefix {
			applyDeletePrefix(tx, idx, m, res, au)
			return
		}
		prev, e := tx.ConfigDelete(m.Key, m.CAS)
		if e != nil {
			res.Err = toErr(e)
			return
		}
		res.Value = DeletedKey{Key: m.Key, ModifyIndex: idx}
		au.add(registry.ActionDelete, registry.AuditConfig, m.Key, prev, nil)
	case *command.RouteUpsert:
		created, prev, route, e := tx.UpsertRoute(m.Route, m.CreateOnly)
		if e != nil {
			res.Err = toErr(e)
			return
		}
		res.Created, res.Value = created, route
		au.add(registry.ActionUpsert, registry.AuditRoute, route.ID, prev, route)
	case *command.RouteDelete:
		prev, e := tx.DeleteRoute(m.ID)
		if e != nil {
			res.Err = toErr(e)
			return
		}
		res.Value = DeletedRoute{ID: m.ID, ModifyIndex: idx}
		au.add(registry.ActionDelete, registry.AuditRoute, m.ID, prev, nil)
	case *command.ClusterInit:
		meta, created := tx.InitCluster(m.ClusterID, m.Secret)
		if meta != nil {
			res.Value = ClusterIdentity{ClusterID: meta.ClusterID}
		}
		if created {
			au.add(registry.ActionInit, registry.AuditCluster, meta.ClusterID, nil, clusterDoc{ClusterID: meta.ClusterID})
		}
	case *command.AuditSettings:
		f.applyAuditSettings(tx, m, res, au)
	case *command.AuditWatermark:
		k := registry.AuditKey{Index: m.Index, Position: m.Position}
		if _, err := tx.SetAuditWatermark(k, m.Attach); err != nil {
			res.Err = &command.Error{Code: registry.CodeInternal, Message: err.Error()}
			return
		}
		st := tx.AuditState(nil)
		res.Value = AuditWatermark{Watermark: st.Watermark, Records: st.Records}
	case *command.Noop:
	case *command.Maintenance:
		applyMaintenance(tx, m, res, au)
	default:
		if !dispatchACL(tx, idx, msg, res, au) {
			dispatchSession(tx, idx, msg, res, au)
		}
	}
}

// applyAuditSettings changes the replicated audit settings; the change is
// itself audited (resource type cluster, resource "audit").
func (f *FSM) applyAuditSettings(tx *registry.Tx, m *command.AuditSettings, res *command.Result, au *entryAudit) {
	before, after, dropped, evicted, e := tx.SetAuditSettings(registry.AuditSettingsPatch{
		MaxRecords: m.MaxRecords, MaxBytes: m.MaxBytes, OnFull: m.OnFull, Archive: m.Archive,
	})
	if e != nil {
		res.Err = toErr(e)
		return
	}
	if dropped+evicted > 0 {
		f.logger.Warn("audit settings shrank the backlog", "index", au.index, "dropped", dropped, "evicted", evicted)
	}
	res.Value = after
	au.add(registry.ActionSet, registry.AuditCluster, AuditSettingsResource, before, after)
}

// applyDeletePrefix deletes every key under a prefix (a Consul recursive
// delete), each audited as a delete.
func applyDeletePrefix(tx *registry.Tx, idx uint64, m *command.ConfigDelete, res *command.Result, au *entryAudit) {
	if m.CAS != nil {
		res.Err = &command.Error{Code: registry.CodeInvalid, Message: "cas: not allowed with a prefix delete"}
		return
	}
	prevs, e := tx.ConfigDeletePrefix(m.Key)
	if e != nil {
		res.Err = toErr(e)
		return
	}
	res.Value = DeletedPrefix{Prefix: m.Key, Deleted: len(prevs), ModifyIndex: idx}
	for i := range prevs {
		au.add(registry.ActionDelete, registry.AuditConfig, prevs[i].Key, &prevs[i], nil)
	}
}

// AuditSettingsResource is the resource name of audit settings changes.
const AuditSettingsResource = "audit_settings"

func toErr(e *registry.Error) *command.Error {
	return &command.Error{Code: e.Code, Message: e.Message}
}

// Answer bodies of commands that do not return a stored object.
type (
	// DeregisteredInstance answers DELETE /services/{name}/instances/{id}.
	DeregisteredInstance struct {
		Service     string `json:"service"`
		ID          string `json:"id"`
		ModifyIndex uint64 `json:"modify_index"`
	}
	// DeregisteredService answers DELETE /services/{name}.
	DeregisteredService struct {
		Deregistered int    `json:"deregistered"`
		ModifyIndex  uint64 `json:"modify_index"`
	}
	// ConfigEntries answers an atomic multi-key write.
	ConfigEntries struct {
		Entries []registry.ConfigEntry `json:"entries"`
	}
	// DeletedKey answers DELETE /config/{key}.
	DeletedKey struct {
		Key         string `json:"key"`
		ModifyIndex uint64 `json:"modify_index"`
	}
	// DeletedPrefix answers a prefix delete: how many keys went.
	DeletedPrefix struct {
		Prefix      string `json:"prefix"`
		Deleted     int    `json:"deleted"`
		ModifyIndex uint64 `json:"modify_index"`
	}
	// DeletedRoute answers DELETE /gateway/routes/{id}.
	DeletedRoute struct {
		ID          string `json:"id"`
		ModifyIndex uint64 `json:"modify_index"`
	}
	// ClusterIdentity answers the bootstrap entry.
	ClusterIdentity struct {
		ClusterID string `json:"cluster_id"`
	}
	// AuditWatermark answers a watermark: where it is now and how many
	// records the backlog still holds.
	AuditWatermark struct {
		Watermark registry.AuditKey `json:"watermark"`
		Records   int64             `json:"records"`
	}
)
