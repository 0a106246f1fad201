//go:build !race

package gateway

// raceEnabled is true in -race builds.
const raceEnabled = false

// Without -race there is no detector to tell: see race_on.go.
func raceWrote() {}
func raceRead()  {}
