package command

import "github.com/nexus/nexus/registry"

// Command types appended after sessions (never renumbered).
const (
	// TypeMaintenance starts or ends maintenance of a node, a service or
	// an instance.
	TypeMaintenance Type = 26
	// TypeConfigSetRaw is a ConfigSet that carries opaque values (Raw) or
	// Consul KV flags. An older build decodes a ConfigSet without those
	// fields, so it would store the bytes as JSON and drop the flags:
	// replicas would differ. Such writes get their own type, gated as
	// feature "kv_raw"; Apply treats it as a ConfigSet.
	TypeConfigSetRaw Type = 27
)

// ConfigSetType is the type to encode a ConfigSet as: TypeConfigSetRaw
// when an entry is raw or has flags.
func ConfigSetType(m *ConfigSet) Type {
	for _, e := range m.Entries {
		if e.Raw || e.Flags != 0 {
			return TypeConfigSetRaw
		}
	}
	return TypeConfigSet
}

// Maintenance enables (Enable) or disables a maintenance record; the
// proposer validated it and checked a node target against gossip (Apply
// validates again and checks services and instances).
type Maintenance struct {
	Meta   Meta                 `msgpack:"meta"`
	Record registry.Maintenance `msgpack:"record"`
	Enable bool                 `msgpack:"enable"`
}

func maintenanceTypeString(t Type) (string, bool) {
	switch t {
	case TypeMaintenance:
		return "maintenance", true
	case TypeConfigSetRaw:
		return "config_set_raw", true
	}
	return "", false
}

func newMaintenanceMessage(t Type) any {
	switch t {
	case TypeMaintenance:
		return &Maintenance{}
	case TypeConfigSetRaw:
		return &ConfigSet{}
	}
	return nil
}
