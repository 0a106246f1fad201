package client

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/jepsen/history"
)

func TestClassifyAnswers(t *testing.T) {
	t.Parallel()
	errBody := func(code string) string { return `{"error":{"code":"` + code + `","message":"m"}}` }
	tests := []struct {
		name     string
		kind     Kind
		status   int
		body     string
		wantType history.Type
		wantCode string
	}{
		{"write applied", Write, 200, `{}`, history.OK, ""},
		{"register created", Write, 201, `{}`, history.OK, ""},
		{"no leader: not applied", Write, 503, errBody("no_leader"), history.Fail, "no_leader"},
		{"outcome unknown", Write, 504, errBody("outcome_unknown"), history.Info, "outcome_unknown"},
		{"cas conflict", Write, 409, errBody("cas_conflict"), history.Fail, "cas_conflict"},
		{"bad request", Write, 400, errBody("invalid"), history.Fail, "invalid"},
		{"internal error on a write: unknown", Write, 500, errBody("internal"), history.Info, "internal"},
		{"internal error on a read", Read, 500, errBody("internal"), history.Fail, "internal"},
		{"read not found is an answer", Read, 404, errBody("not_found"), history.OK, "not_found"},
		{"remove not found", Write, 404, errBody("not_found"), history.Fail, "not_found"},
		{"no error shape", Write, 502, "bad gateway", history.Info, CodeHTTP},
		{"read 504", Read, 504, errBody("outcome_unknown"), history.Fail, "outcome_unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := classify(tc.kind, tc.status, []byte(tc.body), nil)
			if r.Type != tc.wantType || r.Code != tc.wantCode {
				t.Fatalf("got %s %q, want %s %q", r.Type, r.Code, tc.wantType, tc.wantCode)
			}
		})
	}
}

func TestClassifyTransportErrors(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: connection refused, nothing was sent.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	// A server that never answers: a timeout after sending.
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer slow.Close()
	defer close(block)
	// A server that hangs up after reading the request.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
	}))
	defer hang.Close()

	c := New(Options{Timeout: 300 * time.Millisecond, MaxConnsPerNode: 2})
	defer c.Close()
	tests := []struct {
		name     string
		kind     Kind
		addr     string
		wantType history.Type
		wantCode string
	}{
		{"refused write", Write, closed, history.Fail, CodeConnect},
		{"refused read", Read, closed, history.Fail, CodeConnect},
		{"write timeout", Write, strings.TrimPrefix(slow.URL, "http://"), history.Info, CodeTimeout},
		{"read timeout", Read, strings.TrimPrefix(slow.URL, "http://"), history.Fail, CodeTimeout},
		{"write connection lost", Write, strings.TrimPrefix(hang.URL, "http://"), history.Info, CodeNetwork},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodPut
			if tc.kind == Read {
				method = http.MethodGet
			}
			r := c.Do(context.Background(), tc.kind, method, tc.addr, "/config/k", []byte("1"))
			if r.Type != tc.wantType || r.Code != tc.wantCode {
				t.Fatalf("got %s %q (%s), want %s %q", r.Type, r.Code, r.Err, tc.wantType, tc.wantCode)
			}
		})
	}
}

func TestConfigCalls(t *testing.T) {
	t.Parallel()
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := new(strings.Builder)
		_, _ = io.Copy(buf, r.Body)
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+buf.String())
		switch {
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "missing"):
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"x"}}`))
		default:
			_, _ = w.Write([]byte(`{"key":"a/b","value":42,"modify_index":9}`))
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	c := New(Options{Timeout: time.Second, MaxConnsPerNode: 1})
	defer c.Close()
	ctx := context.Background()
	if r := c.ReadConfig(ctx, addr, "a/b"); !r.Present || r.Entry.ModifyIndex != 9 {
		t.Fatalf("read %+v", r)
	}
	if r := c.ReadConfig(ctx, addr, "missing"); r.Type != history.OK || r.Present {
		t.Fatalf("read missing %+v", r)
	}
	if r := c.CASConfig(ctx, addr, "a/b", 42, 7, true); r.Type != history.OK || r.Entry.ModifyIndex != 9 {
		t.Fatalf("cas %+v", r)
	}
	c.CASConfig(ctx, addr, "a/b", 43, 0, false)
	c.WriteConfig(ctx, addr, "a/b", 44)
	want := []string{
		"GET /config/a%2Fb?consistent ",
		"GET /config/missing?consistent ",
		`POST /config {"key":"a/b","value":42,"cas":7}`,
		"PUT /config/a%2Fb?cas=0 43",
		"PUT /config/a%2Fb 44",
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}

func TestAuditCalls(t *testing.T) {
	t.Parallel()
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := new(strings.Builder)
		_, _ = io.Copy(buf, r.Body)
		seen = append(seen, r.Method+" "+r.URL.RequestURI()+" "+buf.String()+" id="+r.Header.Get("X-Request-ID"))
		switch {
		case r.URL.Path == "/config":
			_, _ = w.Write([]byte(`{"entries":[{"key":"k1","value":1,"modify_index":7},{"key":"k2","value":2,"modify_index":7}]}`))
		default:
			_, _ = w.Write([]byte(`{"on_full":"reject","archive":"auto","archiving":true,"attached":true,` +
				`"backlog":{"records":3,"newest":{"raft_index":12,"position":1}},"watermark":{"raft_index":11,"position":0}}`))
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	c := New(Options{Timeout: time.Second, MaxConnsPerNode: 1, StaleReads: true})
	defer c.Close()
	ctx := context.Background()
	r := c.WriteConfigBatch(ctx, addr, []string{"k1", "k2"}, []int64{1, 2})
	if r.Type != history.OK || len(r.Entries) != 2 || r.Entries[1].Key != "k2" || r.Entries[0].ModifyIndex != 7 || r.RequestID == "" {
		t.Fatalf("batch %+v", r)
	}
	st, err := c.AuditSettings(ctx, addr)
	if err != nil || !st.Archiving || !st.Attached || st.Backlog.Records != 3 || st.Backlog.Newest != (AuditKey{12, 1}) ||
		!st.Watermark.Less(st.Backlog.Newest) {
		t.Fatalf("settings %+v %v", st, err)
	}
	if err := c.SetAuditSettings(ctx, addr, []byte(`{"max_records":1}`)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`POST /config {"entries":[{"key":"k1","value":1},{"key":"k2","value":2}]} id=` + r.RequestID,
		"GET /audit/settings?consistent  id=" + c.prefix + "2", // consistent even with StaleReads
		`PUT /audit/settings {"max_records":1} id=` + RequestIDHarness,
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}
