package api

import (
	"encoding/json"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// FuzzACLWrites drives the ACL write endpoints (policies, roles, tokens)
// with hostile bodies as the management token, and hostile credentials on
// a read: never a panic, a 5xx or a non-JSON answer.
func FuzzACLWrites(f *testing.F) {
	for _, s := range []string{
		`{"name":"p","rules":[{"resource":"service","prefix":"web","access":"write"}]}`,
		`{"name":"r","policies":["global-management"]}`,
		`{"description":"d","policies":["global-management"],"expires_in":"1h"}`,
		`{"rules":[{"resource":"cluster","prefix":"x","access":"read"}]}`,
		`{"expires_in":"-5s"}`, `{"policies":[1]}`, `{"roles":null}`,
	} {
		for target := byte(0); target < 5; target++ {
			f.Add(target, []byte(s), "")
		}
	}
	for _, g := range fuzzGarbage() {
		f.Add(byte(0), []byte(g), "Bearer "+g)
	}
	f.Add(byte(5), []byte(nil), "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Fuzz(func(t *testing.T, target byte, body []byte, cred string) {
		srv, root := aclFuzzServer(t)
		var method, uri string
		switch target % 6 {
		case 0:
			method, uri = "POST", "/acl/policies"
		case 1:
			method, uri = "PUT", "/acl/policies/p"
		case 2:
			method, uri = "POST", "/acl/roles"
		case 3:
			method, uri = "POST", "/acl/tokens"
		case 4:
			method, uri = "PUT", "/acl/tokens/anonymous"
		default:
			// A hostile credential on a read.
			code, out := fuzzDoAuth(srv, "GET", "/services", nil, cred)
			checkFuzzOut(t, "GET", "/services", []byte(cred), code, out)
			return
		}
		code, out := fuzzDoAuth(srv, method, uri, body, "Bearer "+root)
		checkFuzzOut(t, method, uri, body, code, out)
	})
}

func aclFuzzServer(t *testing.T) (*Server, string) {
	t.Helper()
	store := registry.NewStore()
	codec := command.NewCodec()
	fs := fsm.New(fsm.Deps{Store: store, Codec: codec})
	reg := prometheus.NewRegistry()
	srv, err := New(Deps{
		Writer: &fakeWriter{fsm: fs}, Reader: fakeReader{store}, Cluster: &fakeCluster{name: "n1"}, Codec: codec,
		Logger: slog.New(slog.DiscardHandler), Registry: reg, Gatherer: reg, Version: "fuzz",
		Now: func() time.Time { return time.Unix(1700000000, 0) },
		ACL: ACLOptions{Enabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	code, out := fuzzDoAuth(srv, "POST", "/acl/bootstrap", nil, "")
	var boot bootstrapAnswer
	if code != 200 || json.Unmarshal(out, &boot) != nil {
		t.Fatalf("bootstrap: %d %s", code, out)
	}
	return srv, boot.SecretID
}

func fuzzDoAuth(srv *Server, method, uri string, body []byte, auth string) (int, []byte) {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("nexus")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.SetBody(body)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	srv.Handler()(&ctx)
	return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...)
}

func checkFuzzOut(t *testing.T, method, uri string, body []byte, code int, out []byte) {
	t.Helper()
	if code >= 500 || code < 200 {
		t.Fatalf("%s %s with %q: status %d, body %s", method, uri, body, code, out)
	}
	if !json.Valid(out) {
		t.Fatalf("%s %s with %q: status %d, answer is not JSON: %q", method, uri, body, code, out)
	}
}
