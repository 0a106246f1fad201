//go:build !linux

package sockpeek

// peekFD: no non-blocking peek here; callers act as if nothing waited.
func peekFD(uintptr) State { return Nothing }
