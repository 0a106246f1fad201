//go:build !linux

package cli

import (
	"os"
	"syscall"
)

// childProcAttr: no process group handling outside Linux.
func childProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup signals CMD itself.
func signalGroup(p *os.Process, sig syscall.Signal) { _ = p.Signal(sig) }

// exitCodeOf is a process's exit code (1 when a signal ended it).
func exitCodeOf(st *os.ProcessState) int {
	if c := st.ExitCode(); c >= 0 {
		return c
	}
	return 1
}
