//go:build !linux

package gateway

import "net"

// newRawConn returns c: raw socket calls are implemented for Linux only.
func newRawConn(c net.Conn) net.Conn { return c }

// newRawConnLingering wraps a client connection whose Close lingers.
func newRawConnLingering(tc *net.TCPConn, l *lingerer) net.Conn {
	return lingerConn{TCPConn: tc, linger: l}
}

// hasUnread reports false: lingering is implemented for Linux only.
func hasUnread(lingerable) bool { return false }
