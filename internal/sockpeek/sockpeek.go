// Package sockpeek looks at what waits to be read on a TCP socket without
// reading it: one non-blocking MSG_PEEK. The gateway asks whether a
// client's bytes wait unread (to linger before closing); the peer client
// asks whether a pooled connection was closed at the other end.
package sockpeek

import "syscall"

// State is what a peek saw.
type State int

const (
	// Nothing waits (or the peek is not available here).
	Nothing State = iota
	// Data: bytes wait to be read.
	Data
	// Closed: the peer closed the connection (end of stream or an error
	// waits to be read).
	Closed
)

// Peek looks at c's socket. Errors getting at the socket are Nothing.
func Peek(c syscall.Conn) State {
	raw, err := c.SyscallConn()
	if err != nil {
		return Nothing
	}
	st := Nothing
	_ = raw.Control(func(fd uintptr) { st = peekFD(fd) })
	return st
}
