//go:build nexus_gate_fixture

package command

// fixtureGates, in a build with the nexus_gate_fixture tag only (the
// rolling-upgrade test builds one), treats config_delete as if it were new:
// an existing type as the gated feature "gate-fixture", so that the gate
// can be tested against real older builds before any gated type exists.
func fixtureGates() map[Type]string { return map[Type]string{TypeConfigDelete: "gate-fixture"} }
