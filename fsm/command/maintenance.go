package command

import "github.com/nexus/nexus/registry"

// TypeMaintenance starts or ends maintenance of a node, a service or an
// instance (appended; never renumbered).
const TypeMaintenance Type = 26

// Maintenance enables (Enable) or disables a maintenance record; the
// proposer validated it and checked a node target against gossip (Apply
// validates again and checks services and instances).
type Maintenance struct {
	Meta   Meta                 `msgpack:"meta"`
	Record registry.Maintenance `msgpack:"record"`
	Enable bool                 `msgpack:"enable"`
}

func maintenanceTypeString(t Type) (string, bool) {
	if t == TypeMaintenance {
		return "maintenance", true
	}
	return "", false
}

func newMaintenanceMessage(t Type) any {
	if t == TypeMaintenance {
		return &Maintenance{}
	}
	return nil
}
