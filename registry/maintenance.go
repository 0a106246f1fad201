package registry

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-memdb"
)

// Maintenance mode (docs/operations.md, "Maintenance"): an operator puts a
// node, a service or one instance in maintenance; every instance it covers
// shows the status critical with the record's reason, so discovery, the
// gateway, DNS and Consul ?passing leave it out without knowing about
// maintenance. The records are the truth; an instance carries a copy of the
// one that covers it (Instance.Maintenance) and the status its own checks
// report, which comes back when the maintenance ends.
const (
	tableMaintenance = "maintenance"
	// TableMaintenance is the table-index key of GET /maintenance.
	TableMaintenance = "maintenance"

	// Scopes of a maintenance record.
	MaintNode     = "node"
	MaintService  = "service"
	MaintInstance = "instance"

	// AuditMaintenance is the audit resource type of maintenance records
	// (resource = the record's key, e.g. "node/n1"), with actions enable
	// and disable.
	AuditMaintenance = "maintenance"
	ActionEnable     = "enable"
	ActionDisable    = "disable"

	// MaxMaintenanceReason is the longest reason, in characters.
	MaxMaintenanceReason = 256
)

// UnixNano is a time kept as Unix nanoseconds (the proposer's clock) and
// shown as RFC 3339 in UTC, the same text on every node.
type UnixNano int64

// MarshalJSON implements json.Marshaler.
func (t UnixNano) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Unix(0, int64(t)).UTC().Format(time.RFC3339Nano))
}

// UnmarshalJSON implements json.Unmarshaler (clients read records back).
func (t *UnixNano) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	*t = UnixNano(v.UnixNano())
	return nil
}

// Maintenance is one record: a node, a service or an instance in
// maintenance since Since, by Actor, for Reason.
type Maintenance struct {
	Key         string   `json:"-" msgpack:"key"`
	Scope       string   `json:"scope" msgpack:"scope"`
	Node        string   `json:"node,omitempty" msgpack:"node,omitempty"`
	Service     string   `json:"service,omitempty" msgpack:"service,omitempty"`
	ID          string   `json:"id,omitempty" msgpack:"id,omitempty"`
	Reason      string   `json:"reason" msgpack:"reason"`
	Since       UnixNano `json:"since" msgpack:"since"`
	Actor       string   `json:"actor" msgpack:"actor"`
	CreateIndex uint64   `json:"create_index" msgpack:"ci"`
	ModifyIndex uint64   `json:"modify_index" msgpack:"mi"`
}

// InstanceMaintenance is what an instance in maintenance shows: the record
// that covers it and the status its own checks report meanwhile.
type InstanceMaintenance struct {
	Scope       string   `json:"scope" msgpack:"scope"`
	Reason      string   `json:"reason" msgpack:"reason"`
	Since       UnixNano `json:"since" msgpack:"since"`
	CheckStatus string   `json:"check_status" msgpack:"check_status"`
}

// CheckStatus is the status the instance's own checks report, whether or
// not it is in maintenance. Health decisions (a status change to commit,
// a check critical long enough to reap) use it; discovery uses Status.
func (in *Instance) CheckStatus() string {
	if in.Maintenance != nil {
		return in.Maintenance.CheckStatus
	}
	return in.Status
}

// MaintenanceKey is the key of the record for a scope and its target.
func MaintenanceKey(scope, node, service, id string) string {
	switch scope {
	case MaintNode:
		return "node/" + node
	case MaintService:
		return "service/" + service
	}
	return "instance/" + service + "/" + id
}

func maintenanceTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableMaintenance, Indexes: map[string]*memdb.IndexSchema{
		"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
	}}
}

// NormalizeMaintenance checks a record's target names and reason and sets
// its key; the proposer and Apply both call it.
func NormalizeMaintenance(m Maintenance) (Maintenance, *Error) {
	switch m.Scope {
	case MaintNode:
		if !nodeNamePattern.MatchString(m.Node) {
			return m, invalid("node", "%q is not a node name", m.Node)
		}
		m.Service, m.ID = "", ""
	case MaintService, MaintInstance:
		if !namePattern.MatchString(m.Service) {
			return m, invalid("service", "%q is not a service name", m.Service)
		}
		m.Node = ""
		if m.Scope == MaintService {
			m.ID = ""
		} else if m.ID == "" || !idPattern.MatchString(m.ID) {
			return m, invalid("id", "%q is not an instance id", m.ID)
		}
	default:
		return m, invalid("scope", "%q must be node, service or instance", m.Scope)
	}
	if !utf8.ValidString(m.Reason) || utf8.RuneCountInString(m.Reason) > MaxMaintenanceReason {
		return m, invalid("reason", "must be valid UTF-8 of at most %d characters", MaxMaintenanceReason)
	}
	m.Key = MaintenanceKey(m.Scope, m.Node, m.Service, m.ID)
	return m, nil
}

// Maintenances returns every record in key order (node/, service/,
// instance/).
func (tx *Tx) Maintenances(ws memdb.WatchSet) []Maintenance {
	return list[Maintenance](tx, ws, tableMaintenance, "id")
}

// MaintenanceOf returns the record with key, or nil.
func (tx *Tx) MaintenanceOf(ws memdb.WatchSet, key string) *Maintenance {
	return first[Maintenance](tx, ws, tableMaintenance, "id", key)
}

// maintenanceFor is the record that covers an instance: its own, else its
// service's, else its node's.
func (tx *Tx) maintenanceFor(in *Instance) *Maintenance {
	if m := tx.MaintenanceOf(nil, MaintenanceKey(MaintInstance, "", in.Service, in.ID)); m != nil {
		return m
	}
	if m := tx.MaintenanceOf(nil, MaintenanceKey(MaintService, "", in.Service, "")); m != nil {
		return m
	}
	if in.Node == "" {
		return nil
	}
	return tx.MaintenanceOf(nil, MaintenanceKey(MaintNode, in.Node, "", ""))
}

// applyMaintenance sets in's maintenance and status from the records; its
// check status is kept.
func (tx *Tx) applyMaintenance(in *Instance) {
	checks := in.CheckStatus()
	m := tx.maintenanceFor(in)
	if m == nil {
		in.Maintenance, in.Status = nil, checks
		return
	}
	in.Maintenance = &InstanceMaintenance{Scope: m.Scope, Reason: m.Reason, Since: m.Since, CheckStatus: checks}
	in.Status = StatusCritical
}

func sameMaintenance(a, b *InstanceMaintenance) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// MaintenanceChange is what enabling or disabling a record did.
type MaintenanceChange struct {
	Before, After *Maintenance
	// Instances is how many instances changed.
	Instances int
}

// EnableMaintenance stores a record (a new reason replaces the old one) and
// puts every instance it covers in maintenance. A service or instance
// must exist; a node is checked by the proposer (gossip knows nodes).
func (tx *Tx) EnableMaintenance(m Maintenance) (MaintenanceChange, *Error) {
	m, e := NormalizeMaintenance(m)
	if e != nil {
		return MaintenanceChange{}, e
	}
	if e := tx.maintenanceTarget(m); e != nil {
		return MaintenanceChange{}, e
	}
	prev := tx.MaintenanceOf(nil, m.Key)
	m.CreateIndex, m.ModifyIndex = tx.index, tx.index
	if prev != nil {
		m.CreateIndex = prev.CreateIndex
	}
	if err := tx.txn.Insert(tableMaintenance, &m); err != nil {
		return MaintenanceChange{}, internal(err)
	}
	n, err := tx.reapplyMaintenance(m)
	if err != nil {
		return MaintenanceChange{}, internal(err)
	}
	if err := tx.bumpIndex(TableMaintenance); err != nil {
		return MaintenanceChange{}, internal(err)
	}
	return MaintenanceChange{Before: prev, After: &m, Instances: n}, nil
}

// DisableMaintenance deletes a record and gives every instance it covered
// the status of its checks back (or the next record that covers it). A
// record that does not exist is not an error: Before is nil. The target
// must still exist, as for EnableMaintenance.
func (tx *Tx) DisableMaintenance(m Maintenance) (MaintenanceChange, *Error) {
	m, e := NormalizeMaintenance(m)
	if e != nil {
		return MaintenanceChange{}, e
	}
	prev := tx.MaintenanceOf(nil, m.Key)
	if prev == nil {
		if e := tx.maintenanceTarget(m); e != nil {
			return MaintenanceChange{}, e
		}
		return MaintenanceChange{}, nil
	}
	if err := tx.txn.Delete(tableMaintenance, prev); err != nil {
		return MaintenanceChange{}, internal(err)
	}
	n, err := tx.reapplyMaintenance(*prev)
	if err != nil {
		return MaintenanceChange{}, internal(err)
	}
	if err := tx.bumpIndex(TableMaintenance); err != nil {
		return MaintenanceChange{}, internal(err)
	}
	return MaintenanceChange{Before: prev, Instances: n}, nil
}

func (tx *Tx) maintenanceTarget(m Maintenance) *Error {
	switch m.Scope {
	case MaintService:
		if tx.Service(nil, m.Service) == nil {
			return &Error{Code: CodeNotFound, Field: "service", Message: fmt.Sprintf("service %q not found", m.Service)}
		}
	case MaintInstance:
		if tx.Instance(nil, m.Service, m.ID) == nil {
			return &Error{Code: CodeNotFound, Field: "id", Message: fmt.Sprintf("instance %q of service %q not found", m.ID, m.Service)}
		}
	}
	return nil
}

// reapplyMaintenance recomputes the instances a record covers and stores
// those that changed; it returns how many did.
func (tx *Tx) reapplyMaintenance(m Maintenance) (int, error) {
	var covered []*Instance
	collect := func(in *Instance) bool {
		covered = append(covered, in)
		return true
	}
	switch m.Scope {
	case MaintNode:
		tx.EachInstanceOfNode(m.Node, collect)
	case MaintService:
		tx.EachServiceInstance(m.Service, "", collect)
	default:
		if in := tx.Instance(nil, m.Service, m.ID); in != nil {
			covered = append(covered, in)
		}
	}
	changed := 0
	touched := map[string]bool{}
	for _, in := range covered {
		next := *in
		tx.applyMaintenance(&next)
		if next.Status == in.Status && sameMaintenance(next.Maintenance, in.Maintenance) {
			continue
		}
		next.ModifyIndex = tx.index
		if err := tx.txn.Insert(tableInstances, &next); err != nil {
			return 0, err
		}
		changed++
		touched[next.Service] = true
	}
	for svc := range touched {
		if err := tx.touchService(svc); err != nil {
			return 0, err
		}
	}
	return changed, nil
}

// dropMaintenance deletes the records of an instance that is gone and, if
// its service is gone too, of the service: maintenance lives and dies with
// its target (a node's record stays: the node comes back).
func (tx *Tx) dropMaintenance(service, id string) error {
	keys := []string{MaintenanceKey(MaintInstance, "", service, id)}
	if tx.Service(nil, service) == nil {
		keys = append(keys, MaintenanceKey(MaintService, "", service, ""))
	}
	dropped := false
	for _, k := range keys {
		if m := tx.MaintenanceOf(nil, k); m != nil {
			if err := tx.txn.Delete(tableMaintenance, m); err != nil {
				return err
			}
			dropped = true
		}
	}
	if dropped {
		return tx.bumpIndex(TableMaintenance)
	}
	return nil
}

func (tx *Tx) dumpMaintenance(d *Dump) {
	d.Maintenance = tx.Maintenances(nil)
}

func (tx *Tx) loadMaintenance(d *Dump) error {
	for i := range d.Maintenance {
		if err := tx.txn.Insert(tableMaintenance, &d.Maintenance[i]); err != nil {
			return err
		}
	}
	return nil
}
