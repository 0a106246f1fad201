package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"

	"github.com/nexus/nexus/registry"
)

// isGzipProfile reports whether b is a pprof protobuf profile (gzipped).
func isGzipProfile(b []byte) bool {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return false
	}
	raw, err := io.ReadAll(zr)
	return err == nil && len(raw) > 0
}

func TestDebugPprofOffWithoutFlagOrACLs(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1"} {
		h.mustErr(h.do("GET", p, nil), 404, registry.CodeNotFound)
	}
}

func TestDebugPprofWithFlag(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.EnableDebug = true })
	r := h.do("GET", "/debug/pprof/", nil)
	h.must(r, 200, nil)
	if !strings.Contains(string(r.body), "goroutine") {
		t.Errorf("index does not list the goroutine profile: %.300s", r.body)
	}
	if r := h.do("GET", "/debug/pprof/goroutine?debug=1", nil); r.status != 200 || !strings.Contains(string(r.body), "goroutine profile:") {
		t.Errorf("goroutine?debug=1: %d %.200s", r.status, r.body)
	}
	if r := h.do("GET", "/debug/pprof/heap", nil); r.status != 200 || !isGzipProfile(r.body) {
		t.Errorf("heap: %d, %d bytes, want a gzipped profile", r.status, len(r.body))
	}
	if r := h.do("GET", "/debug/pprof/profile?seconds=1", nil); r.status != 200 || !isGzipProfile(r.body) {
		t.Errorf("profile: %d, %d bytes, want a gzipped profile", r.status, len(r.body))
	}
	if r := h.do("GET", "/debug/pprof/trace?seconds=1", nil); r.status != 200 || len(r.body) == 0 {
		t.Errorf("trace: %d, %d bytes", r.status, len(r.body))
	}
	// The request metrics carry one bounded route label.
	if m := string(h.do("GET", "/metrics", nil).body); !strings.Contains(m, `route="/debug/pprof/"`) {
		t.Error(`/metrics has no request series with route="/debug/pprof/"`)
	}
}

func TestDebugPprofBadInput(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.EnableDebug = true })
	for _, c := range []struct {
		method, path   string
		status         int
		code, field    string
		messageContain string
	}{
		{"GET", "/debug/pprof/profile?seconds=abc", 400, registry.CodeInvalid, "seconds", "1..300"},
		{"GET", "/debug/pprof/profile?seconds=0", 400, registry.CodeInvalid, "seconds", "1..300"},
		{"GET", "/debug/pprof/trace?seconds=301", 400, registry.CodeInvalid, "seconds", "1..300"},
		{"GET", "/debug/pprof/heap?debug=7", 400, registry.CodeInvalid, "debug", "0..2"},
		{"GET", "/debug/pprof/heap?gc=x", 400, registry.CodeInvalid, "gc", "0..1"},
		{"GET", "/debug/pprof/nosuch", 404, registry.CodeNotFound, "", "goroutine"},
		{"GET", "/debug/pprof/cmdline", 404, registry.CodeNotFound, "", "secrets"},
		{"POST", "/debug/pprof/heap", 405, "method_not_allowed", "", "GET"},
	} {
		e := h.mustErr(h.do(c.method, c.path, nil), c.status, c.code)
		if e.Error.Field != c.field || !strings.Contains(e.Error.Message, c.messageContain) {
			t.Errorf("%s %s: field %q message %q; want field %q, a message with %q", c.method, c.path,
				e.Error.Field, e.Error.Message, c.field, c.messageContain)
		}
	}
}

func TestDebugPprofOneCPUProfileAtATime(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.EnableDebug = true })
	if !h.srv.debug.cpuBusy.CompareAndSwap(false, true) {
		t.Fatal("CPU profile marked busy at start")
	}
	h.mustErr(h.do("GET", "/debug/pprof/profile?seconds=1", nil), 409, "profile_in_progress")
	h.srv.debug.cpuBusy.Store(false)
	if r := h.do("GET", "/debug/pprof/profile?seconds=1", nil); r.status != 200 {
		t.Errorf("profile after the other ended: %d %s", r.status, r.body)
	}
}

func TestDebugPprofBehindOperatorRight(t *testing.T) {
	// ACLs on: served without --enable-debug, behind cluster:write.
	h, root := aclHarness(t)
	reader, _ := h.token(root, "cluster-read", registry.ACLRule{Resource: "cluster", Access: "read"})
	operator, _ := h.token(root, "operator", registry.ACLRule{Resource: "cluster", Access: "write"})
	h.mustErr(h.do("GET", "/debug/pprof/heap", nil), 401, CodeUnauthenticated)
	h.mustErr(h.do("GET", "/debug/pprof/heap", nil, "X-Nexus-Token", reader), 403, CodePermissionDenied)
	h.mustErr(h.do("GET", "/debug/pprof/", nil, "X-Nexus-Token", reader), 403, CodePermissionDenied)
	for _, tok := range []string{operator, root} {
		if r := h.do("GET", "/debug/pprof/heap", nil, "X-Nexus-Token", tok); r.status != 200 || !isGzipProfile(r.body) {
			t.Errorf("heap with cluster:write: %d %.200s", r.status, r.body)
		}
	}
	// The right is checked before the input.
	h.mustErr(h.do("GET", "/debug/pprof/profile?seconds=abc", nil, "X-Nexus-Token", reader), 403, CodePermissionDenied)
}
