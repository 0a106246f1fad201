//go:build !nexus_gate_fixture

package command

// fixtureGates is empty in every normal build (gates_fixture.go).
func fixtureGates() map[Type]string { return nil }
