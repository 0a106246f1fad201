//go:build !linux

package sdnotify

// monotonicUsec is not available here: RELOADING=1 goes without
// MONOTONIC_USEC (systemd runs on Linux only).
func monotonicUsec() (uint64, bool) { return 0, false }
