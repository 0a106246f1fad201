package api

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// BenchmarkGetConfigKey measures the local read path of GET /config/{key}
// in-process (routing, store read, JSON, headers, metrics), without sockets.
func BenchmarkGetConfigKey(b *testing.B) {
	h, w, codec := benchServer(b)
	cmd, _ := codec.Encode(command.TypeConfigSet, &command.ConfigSet{Entries: []command.ConfigOp{{Key: "bench/k1", Value: []byte(`"` + string(make([]byte, 0)) + `value-of-256-bytes"`)}}})
	if _, err := w.Apply(b.Context(), cmd); err != nil {
		b.Fatal(err)
	}
	benchRequests(b, h, "GET", func(int) string { return "/config/bench/k1" }, nil, 200)
}

// BenchmarkWrite measures the write paths in-process up to the Raft
// boundary and back (routing, JSON decode, validation, command encode, the
// FSM's apply of each write alone through a direct writer, the answer),
// without sockets or Raft.
func BenchmarkWrite(b *testing.B) {
	value := `"` + strings.Repeat("x", 254) + `"`
	b.Run("config-put", func(b *testing.B) {
		h, _, _ := benchServer(b)
		benchRequests(b, h, "PUT", func(i int) string { return fmt.Sprintf("/config/bench/k%d", i%4096) },
			func(int) string { return value }, 200)
	})
	b.Run("register", func(b *testing.B) {
		h, _, _ := benchServer(b)
		benchRequests(b, h, "POST", func(int) string { return "/services/register" }, func(i int) string {
			return fmt.Sprintf(`{"name":"svc-%d","type":"http","id":"i-%d","address":"10.0.0.1","port":8080,"tags":["a","b"],"metadata":{"k":"v"}}`, i%1000, i)
		}, 201)
	})
}

// benchServer is an API server over a fresh store, written through its FSM.
func benchServer(b *testing.B) (fasthttp.RequestHandler, *fakeWriter, *command.Codec) {
	store := registry.NewStore()
	codec := command.NewCodec()
	w := &fakeWriter{fsm: fsm.New(fsm.Deps{Store: store, Codec: codec})}
	reg := prometheus.NewRegistry()
	srv, err := New(Deps{Writer: w, Reader: fakeReader{store}, Cluster: &fakeCluster{name: "n1"}, Codec: codec,
		Logger: slog.New(slog.DiscardHandler), Registry: reg, Gatherer: reg, Now: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	return srv.Handler(), w, codec
}

// benchRequests sends b.N requests (body nil: none) and expects status.
func benchRequests(b *testing.B, h fasthttp.RequestHandler, method string, uri, body func(i int) string, status int) {
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURI(uri(i))
		ctx.Request.Header.SetMethod(method)
		if body != nil {
			ctx.Request.SetBodyString(body(i))
		}
		h(&ctx)
		if ctx.Response.StatusCode() != status {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}
