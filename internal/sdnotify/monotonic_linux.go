package sdnotify

import (
	"syscall"
	"unsafe"
)

// clockMonotonic is CLOCK_MONOTONIC of clock_gettime(2), the clock of
// systemd's MONOTONIC_USEC.
const clockMonotonic = 1

// monotonicUsec reads CLOCK_MONOTONIC in microseconds (Go's own monotonic
// clock readings are relative to the process start, not to the boot).
func monotonicUsec() (uint64, bool) {
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, false
	}
	return uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3, true
}
