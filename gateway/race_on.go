//go:build race

package gateway

import "sync/atomic"

// raceEnabled is true in -race builds.
const raceEnabled = true

// ioSync gives the race detector the happens-before edge between a raw
// socket write and the read of the same bytes (in this process, e.g. a test
// talking to the gateway over loopback), as package syscall does for its
// Read and Write with a variable of its own. It exists in -race builds only.
var ioSync atomic.Uint64

func raceWrote() { ioSync.Add(1) }
func raceRead()  { ioSync.Load() }
