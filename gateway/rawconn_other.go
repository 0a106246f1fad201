//go:build !linux

package gateway

import "net"

// newRawConn returns c: raw socket calls are implemented for Linux only.
func newRawConn(c net.Conn, merge bool) net.Conn { return c }
