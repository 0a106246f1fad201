package fsm

import (
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// MaintenanceEnabled answers an enable: the record and how many instances
// it put in maintenance.
type MaintenanceEnabled struct {
	registry.Maintenance
	Instances int `json:"instances"`
}

// MaintenanceEnded answers a disable: whether a record ended and how many
// instances left maintenance.
type MaintenanceEnded struct {
	Ended     bool `json:"ended"`
	Instances int  `json:"instances"`
}

// applyMaintenance enables or disables a maintenance record (one audit
// record: resource type maintenance, the record's key as resource). A
// disable of a record that does not exist changes nothing and writes no
// audit record.
func applyMaintenance(tx *registry.Tx, m *command.Maintenance, res *command.Result, au *entryAudit) {
	rec := m.Record
	if m.Enable {
		rec.Since, rec.Actor = registry.UnixNano(m.Meta.Time), m.Meta.Actor
		ch, e := tx.EnableMaintenance(rec)
		if e != nil {
			res.Err = toErr(e)
			return
		}
		res.Created = ch.Before == nil
		res.Value = MaintenanceEnabled{Maintenance: *ch.After, Instances: ch.Instances}
		au.add(registry.ActionEnable, registry.AuditMaintenance, ch.After.Key, ch.Before, ch.After)
		return
	}
	ch, e := tx.DisableMaintenance(rec)
	if e != nil {
		res.Err = toErr(e)
		return
	}
	res.Value = MaintenanceEnded{Ended: ch.Before != nil, Instances: ch.Instances}
	if ch.Before != nil {
		au.add(registry.ActionDisable, registry.AuditMaintenance, ch.Before.Key, ch.Before, nil)
	}
}
