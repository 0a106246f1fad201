package gateway

import "net"

// Socket reads and writes of the gateway's own connections (clients and
// upstreams, not WebSocket tunnels) go through rawConn on Linux: the same
// non-blocking sockets and runtime network poller as net.Conn, but the
// read(2) and write(2) calls are made with syscall.RawSyscall. See
// rawconn_linux.go for why; elsewhere, and with Options.PlainSocketIO,
// connections are used as they come.

// rawListener hands out connections wrapped by newRawConn.
type rawListener struct{ net.Listener }

func (l rawListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newRawConn(c), nil
}
