package peerproto

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/fsm/command"
)

// holdNode holds every forwarded write until release is closed.
type holdNode struct {
	Node
	got     chan struct{}
	release chan struct{}
}

func (n *holdNode) Forwarded(context.Context, string, string, []byte) (*command.Result, error) {
	n.got <- struct{}{}
	<-n.release
	return &command.Result{Index: 1}, nil
}

// A stream closes for idleness only with nothing in flight and unused since
// the given time; the client's next get for another leader sweeps it.
func TestStreamCloseIfIdle(t *testing.T) {
	n := &holdNode{got: make(chan struct{}, 1), release: make(chan struct{})}
	svc := NewService(n, 2*time.Second, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { svc.Serve(ctx) }}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		svc.Close(ctx)
	})
	ss := &streams{slots: map[string]*streamSlot{}, http: map[string]time.Time{}, log: slog.New(slog.DiscardHandler)}
	defer ss.close()
	ctx := context.Background()
	s, useHTTP, err := ss.get(ctx, ln.Addr().String(), "n2", time.Second)
	if err != nil || useHTTP {
		t.Fatalf("get = %v, %v", useHTTP, err)
	}
	done := make(chan streamAnswer, 1)
	go func() { done <- s.do(ctx, "mac", []byte("cmd"), 2*time.Second) }()
	<-n.got
	if s.closeIfIdle(time.Now().Add(time.Hour)) {
		t.Fatal("a stream with a write in flight was closed as idle")
	}
	close(n.release)
	if a := <-done; a.err != nil || a.status != 200 {
		t.Fatalf("the write in flight: %d %v", a.status, a.err)
	}
	if s.closeIfIdle(time.Now().Add(-time.Hour)) {
		t.Fatal("a stream used just now was closed as idle")
	}
	if ss.open() != 1 {
		t.Fatalf("open streams %d, want 1", ss.open())
	}
	if !s.closeIfIdle(time.Now().Add(time.Hour)) || s.alive() || ss.open() != 0 {
		t.Fatal("an idle stream stayed open")
	}
	if a := s.do(ctx, "mac", []byte("cmd"), time.Second); a.err == nil {
		t.Fatal("a closed stream took a write")
	}
}
