package api

import (
	"log/slog"
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
	store := registry.NewStore()
	codec := command.NewCodec()
	f := fsm.New(fsm.Deps{Store: store, Codec: codec})
	w := &fakeWriter{fsm: f}
	cmd, _ := codec.Encode(command.TypeConfigSet, &command.ConfigSet{Entries: []command.ConfigOp{{Key: "bench/k1", Value: []byte(`"` + string(make([]byte, 0)) + `value-of-256-bytes"`)}}})
	if _, err := w.Apply(b.Context(), cmd); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := New(Deps{Writer: w, Reader: fakeReader{store}, Cluster: &fakeCluster{name: "n1"}, Codec: codec,
		Logger: slog.New(slog.DiscardHandler), Registry: reg, Gatherer: reg, Now: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.SetRequestURI("/config/bench/k1")
		ctx.Request.Header.SetMethod("GET")
		h(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}
