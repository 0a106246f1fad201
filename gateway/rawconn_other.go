//go:build !linux

package gateway

import "net"

// newRawConn returns c: raw socket calls are implemented for Linux only.
func newRawConn(c net.Conn) net.Conn { return c }
