package sockpeek

import "syscall"

func peekFD(fd uintptr) State {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case err == nil && n > 0:
		return Data
	case err == nil:
		return Closed
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return Nothing
	}
	return Closed
}
