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
		tableServices: {Name: tableServices, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
		}},
		tableInstances: {Name: tableInstances, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "Service"}, &memdb.StringFieldIndex{Field: "ID"},
			}}},
			"service": {Name: "service", Indexer: &memdb.StringFieldIndex{Field: "Service"}},
			"type":    {Name: "type", Indexer: &memdb.StringFieldIndex{Field: "Type"}},
			"node":    {Name: "node", Indexer: &memdb.StringFieldIndex{Field: "Node"}},
			// instance_id finds an instance by its id alone (the Consul
			// agent API names services by id).
			"instance_id": {Name: "instance_id", Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		}},
		tableConfig: {Name: tableConfig, Indexes: map[string]*memdb.IndexSchema{
			"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			"session": configSessionIndex(),
		}},
		tableRoutes: {Name: tableRoutes, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		}},
		tableIndex: {Name: tableIndex, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
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
	return s
}

// Store is the replicated state. Writes come only from the FSM; reads are
// lock-free MVCC snapshots. Restore swaps the whole database and wakes every
// watcher of the old one.
type Store struct {
	mu      sync.RWMutex
	db      *memdb.MemDB
	abandon chan struct{}
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
	return &Tx{txn: s.db.Txn(true), index: idx}
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
	tx.Commit()
	s.mu.Lock()
	old := s.abandon
	s.db = db
	s.abandon = make(chan struct{})
	s.mu.Unlock()
	close(old)
	return nil
}

// Commit makes a write transaction visible and fires watches.
func (tx *Tx) Commit() { tx.txn.Commit() }

// Abort discards a transaction; safe after Commit.
func (tx *Tx) Abort() { tx.txn.Abort() }

// SetIndex moves a write transaction to the next Raft entry of a batch.
func (tx *Tx) SetIndex(idx uint64) { tx.index = idx }

// Index returns the Raft index of a write transaction.
func (tx *Tx) Index() uint64 { return tx.index }

func (tx *Tx) bumpIndex(keys ...string) error {
	for _, k := range keys {
		if err := tx.txn.Insert(tableIndex, &indexEntry{Key: k, Value: tx.index}); err != nil {
			return err
		}
	}
	return nil
}

// TableIndex returns the highest Raft index that changed the named table
// ("services", "config", "routes"), and adds its watch to ws.
func (tx *Tx) TableIndex(ws memdb.WatchSet, table string) uint64 {
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
	return tx.instancesBy(ws, "service", service)
}

// instancesBy returns the instances an index finds for value, in the
// index's order, and adds its watch to ws.
func (tx *Tx) instancesBy(ws memdb.WatchSet, index, value string) []Instance {
	it, err := tx.txn.Get(tableInstances, index, value)
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

// InstancesByType returns instances of a service type, sorted by service then id.
func (tx *Tx) InstancesByType(ws memdb.WatchSet, typ string) []Instance {
	return sortByServiceID(tx.instancesBy(ws, "type", typ))
}

// InstancesByNode returns the instances owned by a node.
func (tx *Tx) InstancesByNode(ws memdb.WatchSet, node string) []Instance {
	return sortByServiceID(tx.instancesBy(ws, "node", node))
}

// InstancesByID returns the instances with this id, in any service, sorted
// by service (ids are unique within a service only).
func (tx *Tx) InstancesByID(ws memdb.WatchSet, id string) []Instance {
	return sortByServiceID(tx.instancesBy(ws, "instance_id", id))
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
	if err := tx.bumpIndex(tableServices); err != nil {
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
	if err := tx.bumpIndex(tableServices); err != nil {
		return nil, internal(err)
	}
	return insts, nil
}

// touchService bumps a service after an instance change, or deletes it when
// it has no instances left.
func (tx *Tx) touchService(service string) error {
	svc := tx.Service(nil, service)
	if svc != nil {
		if len(tx.ServiceInstances(nil, service)) == 0 {
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
	}
	return tx.bumpIndex(tableServices)
}

// SetStatus changes the status of an instance and of its checks. It returns
// the previous and new copies. Callers commit only status changes.
func (tx *Tx) SetStatus(service, id, status, output string) (*Instance, *Instance, *Error) {
	prev := tx.Instance(nil, service, id)
	if prev == nil {
		return nil, nil, errorf(CodeNotFound, "instance %q of service %q not found", id, service)
	}
	next := *prev
	next.Status = status
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

// ---- counts and dump/load for snapshots ----

// Counts returns the number of services, instances, config entries and routes.
func (tx *Tx) Counts() (services, instances, config, routes int) {
	count := func(table string) int {
		it, err := tx.txn.Get(table, "id")
		if err != nil {
			return 0
		}
		n := 0
		for raw := it.Next(); raw != nil; raw = it.Next() {
			n++
		}
		return n
	}
	return count(tableServices), count(tableInstances), count(tableConfig), count(tableRoutes)
}

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
}

// IndexValue is one table index in a dump.
type IndexValue struct {
	Key   string `msgpack:"key"`
	Value uint64 `msgpack:"value"`
}

// Dump copies the whole state, every table in key order.
func (tx *Tx) Dump() *Dump {
	d := &Dump{Services: tx.Services(nil), Config: tx.ConfigList(nil, ""), Routes: tx.Routes(nil), Cluster: tx.ClusterMeta()}
	it, err := tx.txn.Get(tableInstances, "id")
	if err == nil {
		for raw := it.Next(); raw != nil; raw = it.Next() {
			d.Instances = append(d.Instances, *raw.(*Instance))
		}
	}
	it, err = tx.txn.Get(tableIndex, "id")
	if err == nil {
		for raw := it.Next(); raw != nil; raw = it.Next() {
			e := raw.(*indexEntry)
			d.Indexes = append(d.Indexes, IndexValue{Key: e.Key, Value: e.Value})
		}
	}
	tx.dumpAudit(d)
	tx.dumpACL(d)
	tx.dumpSessions(d)
	return d
}

// Load writes a dump into an empty transaction (used by Restore).
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
