package sockpeek_test

import (
	"net"
	"runtime"
	"syscall"
	"testing"

	"github.com/nexus/nexus/internal/retry"
	"github.com/nexus/nexus/internal/sockpeek"
)

func TestPeek(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the peek is Linux's")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := client.(syscall.Conn)
	if got := sockpeek.Peek(c); got != sockpeek.Nothing {
		t.Fatalf("idle connection: %v", got)
	}
	if _, err := server.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	retry.Run(t, func(r *retry.R) {
		if got := sockpeek.Peek(c); got != sockpeek.Data {
			r.Fatalf("a byte waits: %v", got)
		}
	})
	// The peek consumed nothing.
	b := make([]byte, 4)
	if n, err := client.Read(b); n != 1 || err != nil {
		t.Fatalf("read after the peek: %d %v", n, err)
	}
	server.Close()
	retry.Run(t, func(r *retry.R) {
		if got := sockpeek.Peek(c); got != sockpeek.Closed {
			r.Fatalf("closed by the peer: %v", got)
		}
	})
}
