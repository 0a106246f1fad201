package cli

import (
	"os"
	"syscall"
)

// childProcAttr puts CMD in a process group of its own, so that signals
// reach everything it started, and lets the kernel send it SIGTERM if
// nexus lock dies without stopping it (its lock ends with its session).
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// signalGroup signals CMD's process group.
func signalGroup(p *os.Process, sig syscall.Signal) {
	if err := syscall.Kill(-p.Pid, sig); err != nil {
		_ = p.Signal(sig)
	}
}

// exitCodeOf is a process's exit code, 128+N when signal N ended it.
func exitCodeOf(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
