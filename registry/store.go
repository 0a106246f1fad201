package registry

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-memdb"
)

// Table names.
const (
	tableServices  = "services"
	tableInstances = "instances"
	tableConfig    = "config"
	tableRoutes    = "routes"
	tableIndex     = "index"
	tableMeta      = "meta"
)

// indexEntry records the highest Raft index that changed a table, deletions
// included, so that X-Nexus-Index of a list moves on a delete too.
type indexEntry struct {
	Key   string
	Value uint64
}

// ClusterMeta is the identity written by the bootstrapping leader.
type ClusterMeta struct {
	Key       string `msgpack:"key"` // always "cluster"
	ClusterID string `msgpack:"cluster_id"`
	Secret    string `msgpack:"secret"`
	Index     uint64 `msgpack:"index"`
}

func schema() *memdb.DBSchema {
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		// Services are indexed by type (type, then name) so that discovery
		// by type walks the services of that type, then their instances
		// through the instances' id index, in (service, id) order: paged,
		// without an index entry per instance for the type.
		tableServices: {Name: tableServices, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: byString(func(s *Service) string { return s.Name })},
			"type": {Name: "type", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				byString(func(s *Service) string { return s.Type }), byString(func(s *Service) string { return s.Name }),
			}}},
		}},
		// Instances have as few indexes as their queries need: an index
		// entry costs ~470 bytes per instance (radix leaf and node, their
		// watch channels, the key), a fifth of what an instance costs. The
		// instances of a service are a prefix of "id"; "critical" holds
		// only critical instances (the leader's reaping). Instances by
		// node are a walk of all of them (EachInstanceOfNode): only the
		// owner's periodic pass and the leader's failed-node pass need
		// them, not a write.
		tableInstances: {Name: tableInstances, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				byString(func(in *Instance) string { return in.Service }), byString(func(in *Instance) string { return in.ID }),
			}}},
			"critical": {Name: "critical", AllowMissing: true, Indexer: criticalIndex{}},
			// instance_id finds an instance by its id alone (the Consul
			// agent API names services by id).
			"instance_id": {Name: "instance_id", Indexer: byString(func(in *Instance) string { return in.ID })},
		}},
		tableConfig: {Name: tableConfig, Indexes: map[string]*memdb.IndexSchema{
			"id":      {Name: "id", Unique: true, Indexer: byString(func(e *ConfigEntry) string { return e.Key })},
			"session": configSessionIndex(),
		}},
		tableRoutes: {Name: tableRoutes, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: byString(func(r *Route) string { return r.ID })},
		}},
		tableIndex: {Name: tableIndex, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: byString(func(e *indexEntry) string { return e.Key })},
		}},
		tableMeta: {Name: tableMeta, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		}},
	}}
	for name, t := range auditTables() {
		s.Tables[name] = t
	}
	for name, t := range aclTables() {
		s.Tables[name] = t
	}
	for name, t := range sessionTables() {
		s.Tables[name] = t
	}
	s.Tables[tableMaintenance] = maintenanceTable()
	s.Tables[tableCounts] = countsTable()
	return s
}

// Store is the replicated state. Writes come only from the FSM; reads are
// lock-free MVCC snapshots. Restore swaps the whole database and wakes every
// watcher of the old one.
type Store struct {
	mu      sync.RWMutex
	db      *memdb.MemDB
	abandon chan struct{}
	ls      listeners
}

// NewStore returns an empty store.
func NewStore() *Store {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		// The schema is a literal; an error here is a programming error.
		panic(fmt.Sprintf("registry: invalid schema: %v", err))
	}
	return &Store{db: db, abandon: make(chan struct{})}
}

// Tx is a read or write transaction on the store.
type Tx struct {
	txn   *memdb.Txn
	index uint64 // the Raft index of a write transaction
	store *Store // of a write transaction: its listeners hear of the commit
	// Rows a write transaction rewrites on every entry of a batch, of which
	// only the last value is ever read outside it: kept here and written
	// once, when the transaction commits (a go-memdb insert of each on every
	// entry was a sixth of the Apply of a config write).
	audit   *auditRow         // the audit state row, when changed
	indexes map[string]uint64 // table indexes moved (bumpIndex)
}

// ReadTxn returns a consistent read-only view.
func (s *Store) ReadTxn() *Tx {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &Tx{txn: s.db.Txn(false)}
}

// WriteTxn starts the write transaction of Raft index idx. Only the FSM
// writes, one transaction at a time.
func (s *Store) WriteTxn(idx uint64) *Tx {
	s.mu.RLock()
	defer s.mu.RUnlock()
	txn := s.db.Txn(true)
	// Always tracked: the counts and the listeners are derived from the
	// changes (a listener that registers while this transaction runs must
	// hear of it).
	txn.TrackChanges()
	return &Tx{txn: txn, index: idx, store: s}
}

// AbandonCh is closed when the store is replaced by a restore; blocking
// queries add it to their watch set.
func (s *Store) AbandonCh() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.abandon
}

// Restore replaces the whole state with what fill writes into a fresh
// database, then wakes every watcher of the old one.
func (s *Store) Restore(fill func(tx *Tx) error) error {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return err
	}
	tx := &Tx{txn: db.Txn(true)}
	if err := fill(tx); err != nil {
		tx.Abort()
		return err
	}
	if err := tx.recount(); err != nil {
		tx.Abort()
		return err
	}
	if err := tx.flush(); err != nil {
		tx.Abort()
		return err
	}
	tx.txn.Commit()
	s.mu.Lock()
	old := s.abandon
	s.db = db
	s.abandon = make(chan struct{})
	s.mu.Unlock()
	close(old)
	s.publishReset()
	return nil
}

// Commit makes a write transaction visible, fires watches and tells the
// store's listeners what changed.
func (tx *Tx) Commit() {
	if err := tx.flush(); err != nil {
		// Both rows are literal tables of the schema.
		panic("registry: commit: " + err.Error())
	}
	changes := tx.txn.Changes()
	if err := tx.applyCounts(changes); err != nil {
		// The counts row is a literal table of the schema.
		panic("registry: counts: " + err.Error())
	}
	tx.txn.Commit()
	if tx.store != nil {
		tx.store.publish(tx.index, changes)
	}
}

// Abort discards a transaction; safe after Commit.
func (tx *Tx) Abort() { tx.txn.Abort() }

// SetIndex moves a write transaction to the next Raft entry of a batch.
func (tx *Tx) SetIndex(idx uint64) { tx.index = idx }

// Index returns the Raft index of a write transaction.
func (tx *Tx) Index() uint64 { return tx.index }

// bumpIndex moves the named tables' indexes to this entry's; they are
// written when the transaction commits (flush).
func (tx *Tx) bumpIndex(keys ...string) error {
	if tx.indexes == nil {
		tx.indexes = make(map[string]uint64, 4)
	}
	for _, k := range keys {
		tx.indexes[k] = tx.index
	}
	return nil
}

// flush writes the rows a write transaction kept pending.
func (tx *Tx) flush() error {
	for k, v := range tx.indexes {
		if err := tx.txn.Insert(tableIndex, &indexEntry{Key: k, Value: v}); err != nil {
			return err
		}
	}
	tx.indexes = nil
	if tx.audit != nil {
		if err := tx.txn.Insert(tableAuditState, tx.audit); err != nil {
			return err
		}
		tx.audit = nil
	}
	return nil
}

// TableIndex returns the highest Raft index that changed the named table
// ("services", "config", "routes"), and adds its watch to ws.
func (tx *Tx) TableIndex(ws memdb.WatchSet, table string) uint64 {
	if v, ok := tx.indexes[table]; ok {
		return v
	}
	ch, raw, err := tx.txn.FirstWatch(tableIndex, "id", table)
	if err != nil {
		return 0
	}
	ws.Add(ch)
	if raw == nil {
		return 0
	}
	return raw.(*indexEntry).Value
}

// typeIndexKey is the key in the index table of the highest Raft index
// that changed an instance of a service type (discovery by type).
func typeIndexKey(typ string) string { return "type:" + typ }

// TypeIndex returns the highest Raft index that changed an instance of a
// service of type typ (0 before any), and adds its watch to ws: a
// discovery by type wakes on changes of that type only.
func (tx *Tx) TypeIndex(ws memdb.WatchSet, typ string) uint64 {
	return tx.TableIndex(ws, typeIndexKey(typ))
}

// ---- services and instances ----

// Instance returns one instance or nil.
func (tx *Tx) Instance(ws memdb.WatchSet, service, id string) *Instance {
	ch, raw, err := tx.txn.FirstWatch(tableInstances, "id", service, id)
	if err != nil {
		return nil
	}
	ws.Add(ch)
	if raw == nil {
		return nil
	}
	return raw.(*Instance)
}

// Service returns a service record or nil.
func (tx *Tx) Service(ws memdb.WatchSet, name string) *Service {
	ch, raw, err := tx.txn.FirstWatch(tableServices, "id", name)
	if err != nil {
		return nil
	}
	ws.Add(ch)
	if raw == nil {
		return nil
	}
	return raw.(*Service)
}

// ServiceInstances returns the instances of a service sorted by id.
func (tx *Tx) ServiceInstances(ws memdb.WatchSet, service string) []Instance {
	return tx.instancesBy(ws, "id_prefix", service, "")
}

// instancesBy returns the instances an index finds for args, in the
// index's order, and adds its watch to ws.
func (tx *Tx) instancesBy(ws memdb.WatchSet, index string, args ...any) []Instance {
	it, err := tx.txn.Get(tableInstances, index, args...)
	if err != nil {
		return nil
	}
	ws.Add(it.WatchCh())
	var out []Instance
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, *raw.(*Instance))
	}
	return out
}

// sortByServiceID orders instances by service, then id.
func sortByServiceID(out []Instance) []Instance {
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// EachServiceInstance calls fn with the instances of a service in id
// order, starting after the id after ("" for all), until fn returns false.
// The instances are the stored objects: read them, never modify them.
func (tx *Tx) EachServiceInstance(service, after string, fn func(*Instance) bool) {
	var it memdb.ResultIterator
	var err error
	if after == "" {
		it, err = tx.txn.Get(tableInstances, "id_prefix", service, "")
	} else {
		it, err = tx.txn.LowerBound(tableInstances, "id", service, after)
	}
	if err != nil {
		return
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		in := raw.(*Instance)
		if in.Service != service {
			return // LowerBound runs on past the service
		}
		if after != "" && in.ID <= after {
			continue
		}
		if !fn(in) {
			return
		}
	}
}

// Services returns every service record sorted by name.
func (tx *Tx) Services(ws memdb.WatchSet) []Service {
	it, err := tx.txn.Get(tableServices, "id")
	if err != nil {
		return nil
	}
	ws.Add(it.WatchCh())
	var out []Service
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, *raw.(*Service))
	}
	return out
}

// EachService calls fn with the services whose name sorts after after (""
// for all), in name order, until fn returns false: a page costs what it
// reads, not the size of the catalog. The services are the stored objects.
func (tx *Tx) EachService(after string, fn func(*Service) bool) {
	eachAfter(tx, tableServices, after, func(s *Service) string { return s.Name }, fn)
}

// eachAfter walks a table whose "id" index is a string field, from the
// first key above after, in key order, until fn returns false.
func eachAfter[T any](tx *Tx, table, after string, key func(*T) string, fn func(*T) bool) {
	it, err := tx.txn.LowerBound(table, "id", after)
	if err != nil {
		return
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		x := raw.(*T)
		if after != "" && key(x) <= after {
			continue
		}
		if !fn(x) {
			return
		}
	}
}

// EachServiceOfType calls fn with the services of a type whose name sorts
// at or after from ("" for all), in name order, until fn returns false.
func (tx *Tx) EachServiceOfType(typ, from string, fn func(*Service) bool) {
	it, err := tx.txn.LowerBound(tableServices, "type", typ, from)
	if err != nil {
		return
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		svc := raw.(*Service)
		if svc.Type != typ {
			return
		}
		if !fn(svc) {
			return
		}
	}
}

// InstancesByType returns instances of a service type, sorted by service then id.
func (tx *Tx) InstancesByType(ws memdb.WatchSet, typ string) []Instance {
	tx.TypeIndex(ws, typ)
	var out []Instance
	tx.EachInstanceOfType(typ, "", "", func(in *Instance) bool {
		out = append(out, *in)
		return true
	})
	return out
}

// EachInstanceOfType calls fn with the instances of a service type in
// (service, id) order, starting after (afterService, afterID) (empty for
// all), until fn returns false. The instances are the stored objects.
func (tx *Tx) EachInstanceOfType(typ, afterService, afterID string, fn func(*Instance) bool) {
	more := true
	tx.EachServiceOfType(typ, afterService, func(svc *Service) bool {
		after := ""
		if svc.Name == afterService {
			after = afterID
		}
		tx.EachServiceInstance(svc.Name, after, func(in *Instance) bool {
			more = fn(in)
			return more
		})
		return more
	})
}

// InstancesByNode returns the instances owned by a node, sorted by service
// then id. It walks every instance (there is no index by node): for
// passes that run now and then, not for a write path. ws watches the
// whole instances table.
func (tx *Tx) InstancesByNode(ws memdb.WatchSet, node string) []Instance {
	it, err := tx.txn.Get(tableInstances, "id")
	if err != nil {
		return nil
	}
	ws.Add(it.WatchCh())
	var out []Instance
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if in := raw.(*Instance); in.Node == node {
			out = append(out, *in)
		}
	}
	return out
}

// InstancesByID returns the instances with this id, in any service, sorted
// by service (ids are unique within a service only).
func (tx *Tx) InstancesByID(ws memdb.WatchSet, id string) []Instance {
	return sortByServiceID(tx.instancesBy(ws, "instance_id", id))
}

// EachInstanceOfNode calls fn with the instances owned by a node in
// (service, id) order until fn returns false. It walks every instance
// without copying (~5 ms for 100,000): for periodic passes, not for a
// write path. The instances are the stored objects: never modify them.
func (tx *Tx) EachInstanceOfNode(node string, fn func(*Instance) bool) {
	it, err := tx.txn.Get(tableInstances, "id")
	if err != nil {
		return
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if in := raw.(*Instance); in.Node == node && !fn(in) {
			return
		}
	}
}

// EachCriticalInstance calls fn with every critical instance, in (service,
// id) order, until fn returns false. Only critical instances are in this
// index, so the walk costs what is critical, not the catalog.
func (tx *Tx) EachCriticalInstance(fn func(*Instance) bool) {
	it, err := tx.txn.Get(tableInstances, "critical")
	if err != nil {
		return
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if !fn(raw.(*Instance)) {
			return
		}
	}
}

// criticalIndex indexes only instances whose checks are critical (memdb
// leaves an object out of an AllowMissing index when FromObject reports
// false); maintenance alone does not put an instance there: it must not be
// reaped by deregister_critical_after.
type criticalIndex struct{}

var criticalKey = []byte("critical\x00")

func (criticalIndex) FromObject(raw any) (bool, []byte, error) {
	in, ok := raw.(*Instance)
	if !ok {
		return false, nil, fmt.Errorf("critical index: %T is not an instance", raw)
	}
	if in.CheckStatus() != StatusCritical {
		return false, nil, nil
	}
	return true, criticalKey, nil
}

func (criticalIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 0 {
		return nil, fmt.Errorf("critical index: no argument expected, got %d", len(args))
	}
	return criticalKey, nil
}

// RegisterInstance inserts or replaces an instance. It returns whether it was
// created and the stored copy, or a business error.
func (tx *Tx) RegisterInstance(in Instance) (bool, *Instance, *Error) {
	svc := tx.Service(nil, in.Service)
	if svc != nil && svc.Type != in.Type {
		return false, nil, errorf(CodeTypeConflict, "service %q has type %q, not %q", in.Service, svc.Type, in.Type)
	}
	prev := tx.Instance(nil, in.Service, in.ID)
	created := prev == nil
	in.CreateIndex = tx.index
	if prev != nil {
		in.CreateIndex = prev.CreateIndex
	}
	in.ModifyIndex = tx.index
	// The registration gives the check status; maintenance comes from the
	// records only, never from the request.
	in.Maintenance = nil
	tx.applyMaintenance(&in)
	if svc == nil {
		svc = &Service{Name: in.Service, Type: in.Type, CreateIndex: tx.index}
	} else {
		cp := *svc
		svc = &cp
	}
	svc.ModifyIndex = tx.index
	stored := in
	if err := tx.txn.Insert(tableInstances, &stored); err != nil {
		return false, nil, internal(err)
	}
	if err := tx.txn.Insert(tableServices, svc); err != nil {
		return false, nil, internal(err)
	}
	if err := tx.bumpIndex(tableServices, typeIndexKey(svc.Type)); err != nil {
		return false, nil, internal(err)
	}
	return created, &stored, nil
}

// DeregisterInstance removes one instance; the service goes with its last one.
func (tx *Tx) DeregisterInstance(service, id string) (*Instance, *Error) {
	prev := tx.Instance(nil, service, id)
	if prev == nil {
		return nil, errorf(CodeNotFound, "instance %q of service %q not found", id, service)
	}
	if err := tx.txn.Delete(tableInstances, prev); err != nil {
		return nil, internal(err)
	}
	if err := tx.touchService(service); err != nil {
		return nil, internal(err)
	}
	if err := tx.dropMaintenance(service, id); err != nil {
		return nil, internal(err)
	}
	return prev, nil
}

// DeregisterService removes every instance of a service and the service.
func (tx *Tx) DeregisterService(service string) ([]Instance, *Error) {
	svc := tx.Service(nil, service)
	if svc == nil {
		return nil, errorf(CodeNotFound, "service %q not found", service)
	}
	insts := tx.ServiceInstances(nil, service)
	for i := range insts {
		if _, err := tx.txn.DeleteAll(tableInstances, "id", insts[i].Service, insts[i].ID); err != nil {
			return nil, internal(err)
		}
	}
	if err := tx.txn.Delete(tableServices, svc); err != nil {
		return nil, internal(err)
	}
	if err := tx.bumpIndex(tableServices, typeIndexKey(svc.Type)); err != nil {
		return nil, internal(err)
	}
	for i := range insts {
		if err := tx.dropMaintenance(service, insts[i].ID); err != nil {
			return nil, internal(err)
		}
	}
	return insts, nil
}

// touchService bumps a service after an instance change, or deletes it when
// it has no instances left.
func (tx *Tx) touchService(service string) error {
	svc := tx.Service(nil, service)
	if svc != nil {
		empty := true
		tx.EachServiceInstance(service, "", func(*Instance) bool {
			empty = false
			return false
		})
		if empty {
			if err := tx.txn.Delete(tableServices, svc); err != nil {
				return err
			}
		} else {
			cp := *svc
			cp.ModifyIndex = tx.index
			if err := tx.txn.Insert(tableServices, &cp); err != nil {
				return err
			}
		}
		return tx.bumpIndex(tableServices, typeIndexKey(svc.Type))
	}
	return tx.bumpIndex(tableServices)
}

// SetStatus changes the status of an instance's checks, and of the
// instance unless it is in maintenance. It returns the previous and new
// copies. Callers commit only changes of CheckStatus.
func (tx *Tx) SetStatus(service, id, status, output string) (*Instance, *Instance, *Error) {
	prev := tx.Instance(nil, service, id)
	if prev == nil {
		return nil, nil, errorf(CodeNotFound, "instance %q of service %q not found", id, service)
	}
	next := *prev
	next.Status = status
	if prev.Maintenance != nil {
		// In maintenance the instance stays critical; its checks' status
		// is kept for when the maintenance ends.
		m := *prev.Maintenance
		m.CheckStatus = status
		next.Maintenance, next.Status = &m, StatusCritical
	}
	next.Checks = make([]Check, len(prev.Checks))
	for i, c := range prev.Checks {
		c.Status = status
		c.Output = output
		next.Checks[i] = c
	}
	next.ModifyIndex = tx.index
	if err := tx.txn.Insert(tableInstances, &next); err != nil {
		return nil, nil, internal(err)
	}
	if err := tx.touchService(service); err != nil {
		return nil, nil, internal(err)
	}
	return prev, &next, nil
}

// ---- configuration ----

// ConfigGet returns one entry or nil.
func (tx *Tx) ConfigGet(ws memdb.WatchSet, key string) *ConfigEntry {
	ch, raw, err := tx.txn.FirstWatch(tableConfig, "id", key)
	if err != nil {
		return nil
	}
	ws.Add(ch)
	if raw == nil {
		return nil
	}
	return raw.(*ConfigEntry)
}

// ConfigList returns the entries whose key starts with prefix, sorted by key.
func (tx *Tx) ConfigList(ws memdb.WatchSet, prefix string) []ConfigEntry {
	it, err := tx.txn.Get(tableConfig, "id_prefix", prefix)
	if err != nil {
		return nil
	}
	ws.Add(it.WatchCh())
	var out []ConfigEntry
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, *raw.(*ConfigEntry))
	}
	return out
}

// EachConfig calls fn with the entries whose key starts with prefix and
// sorts after after ("" for all), in key order, until fn returns false: a
// page costs what it reads. The entries are the stored objects.
func (tx *Tx) EachConfig(prefix, after string, fn func(*ConfigEntry) bool) {
	var it memdb.ResultIterator
	var err error
	if after > prefix {
		it, err = tx.txn.LowerBound(tableConfig, "id", after)
	} else {
		it, err = tx.txn.Get(tableConfig, "id_prefix", prefix)
	}
	if err != nil {
		return
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		e := raw.(*ConfigEntry)
		if !strings.HasPrefix(e.Key, prefix) {
			if e.Key > prefix {
				return // past the prefix (LowerBound runs on)
			}
			continue
		}
		if after != "" && e.Key <= after {
			continue
		}
		if !fn(e) {
			return
		}
	}
}

// ConfigWrite is one key of an atomic config write. Raw marks Value as
// opaque bytes; Flags is kept with the key (ConfigEntry).
type ConfigWrite struct {
	Key   string
	Value []byte
	CAS   *uint64
	Raw   bool
	Flags uint64
}

// ConfigSet writes every key or none: a CAS mismatch on any key aborts all.
// One key must not appear twice in one write.
func (tx *Tx) ConfigSet(writes []ConfigWrite) ([]ConfigEntry, []*ConfigEntry, *Error) {
	if len(writes) == 0 {
		// The FSM answers entries[0]: an empty write must be refused here.
		return nil, nil, invalid("entries", "at least one entry is required")
	}
	seen := make(map[string]bool, len(writes))
	prevs := make([]*ConfigEntry, len(writes))
	for i, w := range writes {
		if seen[w.Key] {
			return nil, nil, invalid("entries", "key %q appears twice", w.Key)
		}
		seen[w.Key] = true
		prev := tx.ConfigGet(nil, w.Key)
		if e := checkCAS(w.Key, w.CAS, prev); e != nil {
			return nil, nil, e
		}
		prevs[i] = prev
	}
	out := make([]ConfigEntry, len(writes))
	for i, w := range writes {
		e := ConfigEntry{Key: w.Key, Value: w.Value, CreateIndex: tx.index, ModifyIndex: tx.index, Raw: w.Raw, Flags: w.Flags}
		if prevs[i] != nil {
			// A held key stays held: a plain set changes its value only.
			e.CreateIndex, e.Session, e.LockIndex = prevs[i].CreateIndex, prevs[i].Session, prevs[i].LockIndex
		}
		stored := e
		if err := tx.txn.Insert(tableConfig, &stored); err != nil {
			return nil, nil, internal(err)
		}
		out[i] = e
	}
	if err := tx.bumpIndex(tableConfig); err != nil {
		return nil, nil, internal(err)
	}
	return out, prevs, nil
}

// ConfigDelete deletes a key, optionally under CAS.
func (tx *Tx) ConfigDelete(key string, cas *uint64) (*ConfigEntry, *Error) {
	prev := tx.ConfigGet(nil, key)
	if prev == nil {
		if cas != nil && *cas != 0 {
			return nil, errorf(CodeCASConflict, "config key %q does not exist (cas %d)", key, *cas)
		}
		return nil, errorf(CodeNotFound, "config key %q not found", key)
	}
	if e := checkCAS(key, cas, prev); e != nil {
		return nil, e
	}
	if err := tx.txn.Delete(tableConfig, prev); err != nil {
		return nil, internal(err)
	}
	if err := tx.bumpIndex(tableConfig); err != nil {
		return nil, internal(err)
	}
	return prev, nil
}

// ConfigDeletePrefix deletes every key that starts with prefix ("" is
// every key) and returns them in key order; none is not an error. The
// table index moves only when a key was deleted.
func (tx *Tx) ConfigDeletePrefix(prefix string) ([]ConfigEntry, *Error) {
	prevs := tx.ConfigList(nil, prefix)
	if len(prevs) == 0 {
		return nil, nil
	}
	for i := range prevs {
		if _, err := tx.txn.DeleteAll(tableConfig, "id", prevs[i].Key); err != nil {
			return nil, internal(err)
		}
	}
	if err := tx.bumpIndex(tableConfig); err != nil {
		return nil, internal(err)
	}
	return prevs, nil
}

func checkCAS(key string, cas *uint64, prev *ConfigEntry) *Error {
	if cas == nil {
		return nil
	}
	switch {
	case *cas == 0 && prev != nil:
		return errorf(CodeCASConflict, "config key %q already exists (modify_index %d)", key, prev.ModifyIndex)
	case *cas != 0 && prev == nil:
		return errorf(CodeCASConflict, "config key %q does not exist (cas %d)", key, *cas)
	case *cas != 0 && prev.ModifyIndex != *cas:
		return errorf(CodeCASConflict, "config key %q has modify_index %d, not %d", key, prev.ModifyIndex, *cas)
	}
	return nil
}

// ---- routes ----

// Route returns one route or nil.
func (tx *Tx) Route(ws memdb.WatchSet, id string) *Route {
	ch, raw, err := tx.txn.FirstWatch(tableRoutes, "id", id)
	if err != nil {
		return nil
	}
	ws.Add(ch)
	if raw == nil {
		return nil
	}
	return raw.(*Route)
}

// Routes returns every route sorted by id.
func (tx *Tx) Routes(ws memdb.WatchSet) []Route {
	it, err := tx.txn.Get(tableRoutes, "id")
	if err != nil {
		return nil
	}
	ws.Add(it.WatchCh())
	var out []Route
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, *raw.(*Route))
	}
	return out
}

// EachRoute calls fn with the routes whose id sorts after after ("" for
// all), in id order, until fn returns false. The routes are the stored
// objects.
func (tx *Tx) EachRoute(after string, fn func(*Route) bool) {
	eachAfter(tx, tableRoutes, after, func(r *Route) string { return r.ID }, fn)
}

// UpsertRoute stores a route; createOnly refuses to replace one.
func (tx *Tx) UpsertRoute(r Route, createOnly bool) (bool, *Route, *Route, *Error) {
	prev := tx.Route(nil, r.ID)
	if prev != nil && createOnly {
		return false, nil, nil, errorf(CodeConflict, "route %q already exists", r.ID)
	}
	r.CreateIndex, r.ModifyIndex = tx.index, tx.index
	if prev != nil {
		r.CreateIndex = prev.CreateIndex
	}
	stored := r
	if err := tx.txn.Insert(tableRoutes, &stored); err != nil {
		return false, nil, nil, internal(err)
	}
	if err := tx.bumpIndex(tableRoutes); err != nil {
		return false, nil, nil, internal(err)
	}
	return prev == nil, prev, &stored, nil
}

// DeleteRoute deletes a route.
func (tx *Tx) DeleteRoute(id string) (*Route, *Error) {
	prev := tx.Route(nil, id)
	if prev == nil {
		return nil, errorf(CodeNotFound, "route %q not found", id)
	}
	if err := tx.txn.Delete(tableRoutes, prev); err != nil {
		return nil, internal(err)
	}
	if err := tx.bumpIndex(tableRoutes); err != nil {
		return nil, internal(err)
	}
	return prev, nil
}

// ---- cluster identity ----

// ClusterMeta returns the cluster identity, or nil before bootstrap applied.
func (tx *Tx) ClusterMeta() *ClusterMeta {
	raw, err := tx.txn.First(tableMeta, "id", "cluster")
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*ClusterMeta)
}

// InitCluster records the cluster identity once; later inits are ignored so
// that a replayed or duplicate init never changes it.
func (tx *Tx) InitCluster(id, secret string) (*ClusterMeta, bool) {
	if cur := tx.ClusterMeta(); cur != nil {
		return cur, false
	}
	m := &ClusterMeta{Key: "cluster", ClusterID: id, Secret: secret, Index: tx.index}
	if err := tx.txn.Insert(tableMeta, m); err != nil {
		return nil, false
	}
	return m, true
}

// ---- dump/load for snapshots ----

// Dump is the whole state in a deterministic order, for snapshots.
type Dump struct {
	Services  []Service     `msgpack:"services"`
	Instances []Instance    `msgpack:"instances"`
	Config    []ConfigEntry `msgpack:"config"`
	Routes    []Route       `msgpack:"routes"`
	Indexes   []IndexValue  `msgpack:"indexes"`
	Cluster   *ClusterMeta  `msgpack:"cluster"`
	// Audit is the backlog of records not yet archived, in key order, and
	// AuditState its settings, bounds and watermark (registry/audit.go).
	Audit      []AuditRecord `msgpack:"audit"`
	AuditState *AuditState   `msgpack:"audit_state"`
	// ACL objects; tokens hold the hash of their secret only.
	ACLTokens   []ACLToken  `msgpack:"acl_tokens"`
	ACLPolicies []ACLPolicy `msgpack:"acl_policies"`
	ACLRoles    []ACLRole   `msgpack:"acl_roles"`
	ACL         *ACLMeta    `msgpack:"acl"`
	// Sessions and the keys in their lock delay (registry/session.go).
	Sessions   []Session   `msgpack:"sessions"`
	LockDelays []LockDelay `msgpack:"lock_delays"`
	// Maintenance records (registry/maintenance.go).
	Maintenance []Maintenance `msgpack:"maintenance,omitempty"`
}

// IndexValue is one table index in a dump.
type IndexValue struct {
	Key   string `msgpack:"key"`
	Value uint64 `msgpack:"value"`
}

// Dump copies the whole state, every table in key order.
func (tx *Tx) Dump() *Dump {
	// Slices sized from the counts: appending would copy the catalog
	// again and again while it grows (and peak at twice its size). An
	// empty table stays a nil slice, as before.
	c := tx.counts()
	d := tx.DumpSmall()
	d.Instances, d.Config = sized[Instance](c.Instances), sized[ConfigEntry](c.Config)
	if d.AuditState != nil {
		d.Audit = sized[AuditRecord](d.AuditState.Records)
	}
	_ = tx.EachInstance(func(in *Instance) error { d.Instances = append(d.Instances, *in); return nil })
	_ = tx.EachConfigEntry(func(e *ConfigEntry) error { d.Config = append(d.Config, *e); return nil })
	_ = tx.EachAuditRecord(func(r *AuditRecord) error { d.Audit = append(d.Audit, *r); return nil })
	return d
}

// DumpSmall copies the state except the three tables that grow to
// hundreds of thousands of rows (instances, config entries, audit
// records), which a snapshot streams with EachInstance, EachConfigEntry
// and EachAuditRecord instead of holding a copy of them.
func (tx *Tx) DumpSmall() *Dump {
	c := tx.counts()
	d := &Dump{Services: sized[Service](c.Services), Routes: sized[Route](c.Routes), Cluster: tx.ClusterMeta()}
	_ = each(tx, tableServices, func(s *Service) error { d.Services = append(d.Services, *s); return nil })
	_ = each(tx, tableRoutes, func(r *Route) error { d.Routes = append(d.Routes, *r); return nil })
	_ = each(tx, tableIndex, func(e *indexEntry) error {
		d.Indexes = append(d.Indexes, IndexValue{Key: e.Key, Value: e.Value})
		return nil
	})
	if raw, err := tx.txn.First(tableAuditState, "id", auditStateKey); err == nil && raw != nil {
		s := raw.(*auditRow).AuditState
		d.AuditState = &s
	}
	tx.dumpACL(d)
	tx.dumpSessions(d)
	tx.dumpMaintenance(d)
	return d
}

// EachInstance calls fn for every instance in (service, id) order and
// stops at its first error. fn must not keep or change the instance.
func (tx *Tx) EachInstance(fn func(*Instance) error) error { return each(tx, tableInstances, fn) }

// EachConfigEntry calls fn for every config entry in key order and stops
// at its first error. fn must not keep or change the entry.
func (tx *Tx) EachConfigEntry(fn func(*ConfigEntry) error) error { return each(tx, tableConfig, fn) }

// EachAuditRecord calls fn for every record of the audit backlog in key
// order and stops at its first error. fn must not keep or change it.
func (tx *Tx) EachAuditRecord(fn func(*AuditRecord) error) error { return tx.eachAuditRecord(fn) }

// each walks table by its id index.
func each[T any](tx *Tx, table string, fn func(*T) error) error {
	it, err := tx.txn.Get(table, "id")
	if err != nil {
		return err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if err := fn(raw.(*T)); err != nil {
			return err
		}
	}
	return nil
}

// sized returns a slice with room for n elements, nil for none.
func sized[T any](n int64) []T {
	if n <= 0 {
		return nil
	}
	return make([]T, 0, n)
}

// Load writes a dump into an empty transaction (used by Restore). A
// restore may load a dump in parts, one Load each (snapshot format 2
// loads the instances, config entries and audit records in chunks).
func (tx *Tx) Load(d *Dump) error {
	for i := range d.Services {
		if err := tx.txn.Insert(tableServices, &d.Services[i]); err != nil {
			return err
		}
	}
	for i := range d.Instances {
		if err := tx.txn.Insert(tableInstances, &d.Instances[i]); err != nil {
			return err
		}
	}
	for i := range d.Config {
		if err := tx.txn.Insert(tableConfig, &d.Config[i]); err != nil {
			return err
		}
	}
	for i := range d.Routes {
		if err := tx.txn.Insert(tableRoutes, &d.Routes[i]); err != nil {
			return err
		}
	}
	for _, iv := range d.Indexes {
		if err := tx.txn.Insert(tableIndex, &indexEntry{Key: iv.Key, Value: iv.Value}); err != nil {
			return err
		}
	}
	if d.Cluster != nil {
		if err := tx.txn.Insert(tableMeta, d.Cluster); err != nil {
			return err
		}
	}
	if err := tx.loadACL(d); err != nil {
		return err
	}
	if err := tx.loadSessions(d); err != nil {
		return err
	}
	if err := tx.loadMaintenance(d); err != nil {
		return err
	}
	return tx.loadAudit(d)
}

// ServiceTags returns the sorted union of the tags of instances.
func ServiceTags(insts []Instance) []string {
	set := map[string]bool{}
	for _, in := range insts {
		for _, t := range in.Tags {
			set[t] = true
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// HasTags reports whether an instance carries every one of tags.
func (in *Instance) HasTags(tags []string) bool {
	for _, t := range tags {
		if !in.HasTag(t) {
			return false
		}
	}
	return true
}

// HasTag reports whether an instance carries tag t.
func (in *Instance) HasTag(t string) bool {
	for _, x := range in.Tags {
		if strings.EqualFold(x, t) {
			return true
		}
	}
	return false
}
