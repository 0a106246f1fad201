package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/cluster/peerproto"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

func indexOf(t *testing.T, r *resp) uint64 {
	t.Helper()
	v := r.get(HeaderIndex)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("X-Nexus-Index %q: %v", v, err)
	}
	return n
}

func TestHealthReadyStatus(t *testing.T) {
	h := newHarness(t)
	var health map[string]string
	h.must(h.do("GET", "/health", nil), 200, &health)
	if health["status"] != "ok" || health["node"] != "n1" {
		t.Fatalf("health %v", health)
	}

	var ready map[string]string
	h.must(h.do("GET", "/ready", nil), 200, &ready)
	if ready["status"] != "ready" {
		t.Fatalf("ready %v", ready)
	}
	h.cluster.readyFn = func() bool { return false }
	r := h.do("GET", "/ready", nil)
	h.mustErr(r, 503, CodeNotReady)
	h.cluster.readyFn = nil

	h.register(reg("web", "http", "127.0.0.1", 9001))
	h.do("POST", "/config", map[string]any{"key": "a", "value": 1})
	var st struct {
		Node string `json:"node"`
		Ver  string `json:"version"`
		Raft struct {
			State        string `json:"state"`
			Term         uint64 `json:"term"`
			Leader       string `json:"leader"`
			CommitIndex  uint64 `json:"commit_index"`
			AppliedIndex uint64 `json:"applied_index"`
		} `json:"raft"`
		Members       []Member `json:"members"`
		Services      int      `json:"services"`
		Routes        int      `json:"routes"`
		ConfigEntries int      `json:"config_entries"`
	}
	h.must(h.do("GET", "/status", nil), 200, &st)
	if st.Node != "n1" || st.Ver != "test" || st.Raft.State != "Leader" || st.Raft.Term != 3 ||
		st.Raft.Leader != "n1" || st.Raft.CommitIndex != 10 || len(st.Members) != 1 ||
		st.Services != 1 || st.Routes != 0 || st.ConfigEntries != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestCommonHeaders(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/health", nil)
	if r.get("X-Nexus-Known-Leader") != "true" || r.get("X-Nexus-Last-Contact") != "0" {
		t.Fatalf("headers %v", r.header)
	}
	if r.get("Content-Type") != "application/json" || r.get(HeaderIndex) == "" {
		t.Fatalf("headers %v", r.header)
	}
	if _, ok := r.header["server"]; ok {
		t.Fatalf("Server header sent: %v", r.header)
	}
	h.cluster.leaderFn = func() (LeaderInfo, bool) { return LeaderInfo{}, false }
	h.cluster.raftFn = func() RaftStatus { return RaftStatus{State: "Follower", LastContact: 1500 * time.Millisecond} }
	r = h.do("GET", "/health", nil)
	if r.get("X-Nexus-Known-Leader") != "false" || r.get("X-Nexus-Last-Contact") != "1500" {
		t.Fatalf("headers %v", r.header)
	}
}

func TestRequestID(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/health", nil, "X-Request-ID", "abc-123")
	if got := r.get("X-Request-ID"); got != "abc-123" {
		t.Fatalf("echo: %q", got)
	}
	a := h.do("GET", "/health", nil).get("X-Request-ID")
	b := h.do("GET", "/nope", nil).get("X-Request-ID")
	for _, id := range []string{a, b} {
		if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("generated id %q", id)
		}
	}
	if a == b {
		t.Fatalf("ids repeat: %q", a)
	}
	// The request id reaches the audit metadata of a write.
	var got string
	h.writer.errFn = func(_ context.Context, cmd []byte) error {
		_, msg, err := command.NewCodec().Decode(cmd)
		if err != nil {
			return err
		}
		m := msg.(*command.ConfigSet).Meta
		got = fmt.Sprintf("%s|%s|%s|%d", m.Actor, m.RequestID, m.Node, m.Time)
		return nil
	}
	h.must(h.do("PUT", "/config/k", "1", "X-Request-ID", "rid-9"), 200, nil)
	if want := fmt.Sprintf("anonymous|rid-9|n1|%d", h.now.UnixNano()); got != want {
		t.Fatalf("meta %q, want %q", got, want)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	h := newHarness(t)
	// / belongs to the web console (package ui): a redirect to /ui/.
	h.must(h.do("GET", "/", nil), 302, nil)
	for _, p := range []string{"/nope", "/services/a/b", "/cluster/x", "/gateway", "/health/", "/services//health"} {
		h.mustErr(h.do("GET", p, nil), 404, "not_found")
	}
	cases := []struct{ method, path, allow string }{
		{"DELETE", "/health", "GET"},
		{"POST", "/services", "GET"},
		{"PUT", "/config", "GET, POST"},
		{"POST", "/config/a", "GET, PUT, DELETE"},
		{"GET", "/cluster/leave", "POST"},
		{"PATCH", "/gateway/routes/r1", "GET, PUT, DELETE"},
		{"GET", "/services/web/instances/i1", "DELETE"},
	}
	for _, c := range cases {
		r := h.do(c.method, c.path, nil)
		h.mustErr(r, 405, "method_not_allowed")
		if r.get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, r.get("Allow"), c.allow)
		}
	}
}

func TestServicesLifecycle(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/services/register", reg("web", "http", "127.0.0.1", 9001,
		"id", "web-1", "tags", []string{"v2", "v1"}, "metadata", map[string]string{"zone": "a"},
		"depends_on", []string{"db"}, "check", map[string]string{"ttl": "10s"}), "Content-Type", "text/plain")
	var in registry.Instance
	h.must(r, 201, &in)
	if in.ID != "web-1" || in.Service != "web" || in.Node != "n1" || in.Status != "critical" ||
		len(in.Checks) != 1 || in.Checks[0].Kind != "ttl" || in.Tags[0] != "v1" || in.CreateIndex != 1 || in.ModifyIndex != 1 {
		t.Fatalf("instance %+v", in)
	}
	if indexOf(t, r) != 1 {
		t.Fatalf("index %d", indexOf(t, r))
	}
	// Exact JSON field names of the contract.
	var raw map[string]any
	_ = json.Unmarshal(r.body, &raw)
	for _, k := range []string{"id", "service", "type", "address", "port", "tags", "metadata", "node", "status", "checks", "depends_on", "create_index", "modify_index"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("instance JSON lacks %q: %s", k, r.body)
		}
	}

	// Re-registration is an update: 200.
	r = h.do("POST", "/services/register", reg("web", "http", "127.0.0.1", 9001, "id", "web-1", "tags", []string{"v3"},
		"check", map[string]string{"ttl": "10s"}))
	h.must(r, 200, &in)
	if in.CreateIndex != 1 || in.ModifyIndex != 2 {
		t.Fatalf("update %+v", in)
	}
	// Default id NAME-ADDRESS-PORT.
	in = h.register(reg("web", "http", "10.0.0.2", 9002))
	if in.ID != "web-10.0.0.2-9002" {
		t.Fatalf("default id %q", in.ID)
	}
	h.register(reg("db", "tcp", "10.0.0.3", 5432, "tags", []string{"primary"}))

	var list []struct {
		Name      string              `json:"name"`
		Type      string              `json:"type"`
		Tags      []string            `json:"tags"`
		Instances []registry.Instance `json:"instances"`
	}
	r = h.do("GET", "/services", nil)
	h.must(r, 200, &list)
	if len(list) != 2 || list[0].Name != "db" || list[1].Name != "web" || len(list[1].Instances) != 2 ||
		strings.Join(list[1].Tags, ",") != "v3" || list[0].Type != "tcp" {
		t.Fatalf("list %+v", list)
	}
	if indexOf(t, r) != 4 {
		t.Fatalf("list index %d", indexOf(t, r))
	}

	var svc struct {
		Name      string              `json:"name"`
		Type      string              `json:"type"`
		Instances []registry.Instance `json:"instances"`
	}
	r = h.do("GET", "/services/web", nil)
	h.must(r, 200, &svc)
	if svc.Name != "web" || svc.Type != "http" || len(svc.Instances) != 2 || indexOf(t, r) != 3 {
		t.Fatalf("service %+v index %d", svc, indexOf(t, r))
	}
	r = h.do("GET", "/services/nope", nil)
	h.mustErr(r, 404, "not_found")
	if indexOf(t, r) != 4 {
		t.Fatalf("404 index %d, want the table index", indexOf(t, r))
	}

	// Heartbeat: unknown 404, same status no write, new status committed.
	h.mustErr(h.do("PUT", "/services/web/instances/nope/heartbeat", nil), 404, "not_found")
	calls := h.writer.Calls()
	r = h.do("PUT", "/services/web/instances/web-1/heartbeat", map[string]string{"status": "critical"})
	h.must(r, 200, &in)
	if h.writer.Calls() != calls || in.ID != "web-1" {
		t.Fatalf("heartbeat with the same status wrote: %+v", in)
	}
	r = h.do("PUT", "/services/web/instances/web-1/heartbeat", map[string]string{"status": "passing", "output": "ok now"})
	h.must(r, 200, &in)
	if in.Status != "passing" || in.Checks[0].Output != "ok now" || in.ModifyIndex != 5 || indexOf(t, r) != 5 {
		t.Fatalf("heartbeat %+v", in)
	}
	r = h.do("PUT", "/services/web/instances/web-1/heartbeat", map[string]string{"status": "critical", "output": "boom"})
	h.must(r, 200, &in)
	if in.Status != "critical" || in.Checks[0].Output != "boom" || in.ModifyIndex != 6 || indexOf(t, r) != 6 {
		t.Fatalf("heartbeat %+v", in)
	}
	h.mustErr(h.do("PUT", "/services/web/instances/web-1/heartbeat", map[string]string{"status": "sick"}), 400, "invalid")

	var hl struct {
		Service   string `json:"service"`
		Status    string `json:"status"`
		Passing   int    `json:"passing"`
		Warning   int    `json:"warning"`
		Critical  int    `json:"critical"`
		Instances []struct {
			ID, Node, Status, Output string
		} `json:"instances"`
	}
	r = h.do("GET", "/services/web/health", nil)
	h.must(r, 200, &hl)
	if hl.Service != "web" || hl.Status != "critical" || hl.Passing != 1 || hl.Critical != 1 || len(hl.Instances) != 2 ||
		hl.Instances[0].ID != "web-1" || hl.Instances[0].Output != "boom" || hl.Instances[0].Node != "n1" || indexOf(t, r) != 6 {
		t.Fatalf("health %+v", hl)
	}
	h.mustErr(h.do("GET", "/services/nope/health", nil), 404, "not_found")

	// Discover: passing only unless all=true; filters.
	var insts []registry.Instance
	h.must(h.do("GET", "/discover/http", nil), 200, &insts)
	if len(insts) != 1 || insts[0].ID != "web-10.0.0.2-9002" {
		t.Fatalf("discover %+v", insts)
	}
	h.must(h.do("GET", "/discover/http?all=true", nil), 200, &insts)
	if len(insts) != 2 {
		t.Fatalf("discover all %+v", insts)
	}
	h.must(h.do("GET", "/discover/http?all=true&tag=v3", nil), 200, &insts)
	if len(insts) != 1 || insts[0].ID != "web-1" {
		t.Fatalf("discover tag %+v", insts)
	}
	h.must(h.do("GET", "/discover/tcp?service=web", nil), 200, &insts)
	if len(insts) != 0 {
		t.Fatalf("discover service filter %+v", insts)
	}
	h.must(h.do("GET", "/discover/tcp?service=db&tag=primary", nil), 200, &insts)
	if len(insts) != 1 {
		t.Fatalf("discover db %+v", insts)
	}
	if r := h.do("GET", "/discover/none", nil); string(r.body) != "[]" {
		t.Fatalf("empty discover %s", r.body)
	}
	h.mustErr(h.do("GET", "/discover/http?all=maybe", nil), 400, "invalid")

	// Deregister one instance, then the service.
	var di fsm.DeregisteredInstance
	r = h.do("DELETE", "/services/web/instances/web-1", nil)
	h.must(r, 200, &di)
	if di.ID != "web-1" || di.Service != "web" || indexOf(t, r) != 7 {
		t.Fatalf("deregister instance %+v", di)
	}
	h.mustErr(h.do("DELETE", "/services/web/instances/web-1", nil), 404, "not_found")
	var ds struct {
		Deregistered int `json:"deregistered"`
	}
	h.must(h.do("DELETE", "/services/web", nil), 200, &ds)
	if ds.Deregistered != 1 {
		t.Fatalf("deregister service %+v", ds)
	}
	h.mustErr(h.do("DELETE", "/services/web", nil), 404, "not_found")
	h.mustErr(h.do("GET", "/services/web", nil), 404, "not_found")
}

func TestTypeConflict(t *testing.T) {
	h := newHarness(t)
	h.register(reg("web", "http", "127.0.0.1", 9001))
	before := h.dump()
	r := h.do("POST", "/services/register", reg("web", "grpc", "127.0.0.1", 9002))
	e := h.mustErr(r, 409, "type_conflict")
	if !strings.Contains(e.Error.Message, "http") {
		t.Fatalf("message %q", e.Error.Message)
	}
	h.assertUnchanged(before)
}

func TestEscapedPathParams(t *testing.T) {
	h := newHarness(t)
	h.register(reg("web", "http", "127.0.0.1", 9001, "id", "web:1"))
	h.must(h.do("PUT", "/services/web/instances/web%3A1/heartbeat", nil), 200, nil)
	h.must(h.do("GET", "/services/%77eb", nil), 200, nil)
	// Config keys hold slashes, escaped or not.
	h.must(h.do("PUT", "/config/app/db/pool", "20"), 200, nil)
	var en registry.ConfigEntry
	h.must(h.do("GET", "/config/app%2Fdb%2Fpool", nil), 200, &en)
	if en.Key != "app/db/pool" || string(en.Value) != "20" {
		t.Fatalf("entry %+v", en)
	}
	h.mustErr(h.do("GET", "/services/%zz", nil), 400, "invalid")
	h.must(h.do("DELETE", "/services/web/instances/web%3A1", nil), 200, nil)
}

func TestConfigEndpoints(t *testing.T) {
	h := newHarness(t)
	var en struct {
		Key         string          `json:"key"`
		Value       json.RawMessage `json:"value"`
		ModifyIndex uint64          `json:"modify_index"`
	}
	r := h.do("POST", "/config", `{"key":"app/db/pool","value": { "max" : 20 }}`)
	h.must(r, 200, &en)
	if en.Key != "app/db/pool" || string(en.Value) != `{"max":20}` || en.ModifyIndex != 1 || indexOf(t, r) != 1 {
		t.Fatalf("set %+v %s", en, r.body)
	}
	var raw map[string]any
	_ = json.Unmarshal(r.body, &raw)
	if len(raw) != 3 {
		t.Fatalf("entry shape %s", r.body)
	}
	var batch struct {
		Entries []registry.ConfigEntry `json:"entries"`
	}
	r = h.do("POST", "/config", map[string]any{"entries": []map[string]any{
		{"key": "app/a", "value": "x"}, {"key": "app/b", "value": []int{1}, "cas": 0}, {"key": "other", "value": nil},
	}})
	h.must(r, 200, &batch)
	if len(batch.Entries) != 3 || batch.Entries[2].Key != "other" || string(batch.Entries[2].Value) != "null" || indexOf(t, r) != 2 {
		t.Fatalf("batch %s", r.body)
	}
	r = h.do("PUT", "/config/app/c", `"hello"`)
	h.must(r, 200, &en)
	if string(en.Value) != `"hello"` || en.ModifyIndex != 3 {
		t.Fatalf("put %s", r.body)
	}

	var list []registry.ConfigEntry
	r = h.do("GET", "/config?prefix=app/", nil)
	h.must(r, 200, &list)
	if len(list) != 4 || list[0].Key != "app/a" || list[3].Key != "app/db/pool" || indexOf(t, r) != 3 {
		t.Fatalf("list %s", r.body)
	}
	h.must(h.do("GET", "/config", nil), 200, &list)
	if len(list) != 5 {
		t.Fatalf("list all %s", r.body)
	}
	r = h.do("GET", "/config/app/a", nil)
	h.must(r, 200, &en)
	if en.ModifyIndex != 2 || indexOf(t, r) != 2 {
		t.Fatalf("get %s", r.body)
	}
	r = h.do("GET", "/config/app/zz", nil)
	h.mustErr(r, 404, "not_found")
	if indexOf(t, r) != 3 {
		t.Fatalf("404 index %d", indexOf(t, r))
	}

	var del struct {
		Key         string `json:"key"`
		ModifyIndex uint64 `json:"modify_index"`
	}
	r = h.do("DELETE", "/config/app/a", nil)
	h.must(r, 200, &del)
	if del.Key != "app/a" || del.ModifyIndex != 4 {
		t.Fatalf("delete %s", r.body)
	}
	// A delete moves the list index.
	r = h.do("GET", "/config?prefix=app/", nil)
	if indexOf(t, r) != 4 {
		t.Fatalf("list index after delete %d", indexOf(t, r))
	}
	h.mustErr(h.do("DELETE", "/config/app/a", nil), 404, "not_found")
}

func TestConfigCAS(t *testing.T) {
	h := newHarness(t)
	// cur returns the modify_index of k.
	cur := func() uint64 {
		var en registry.ConfigEntry
		h.must(h.do("GET", "/config/k", nil), 200, &en)
		return en.ModifyIndex
	}
	step := func(name, method, path string, body any, status int, code string) {
		t.Helper()
		before := h.dump()
		r := h.do(method, path, body)
		if code == "" {
			h.must(r, status, nil)
			return
		}
		h.mustErr(r, status, code)
		h.assertUnchanged(before)
	}
	step("create only", "PUT", "/config/k?cas=0", "1", 200, "")
	step("create only again", "PUT", "/config/k?cas=0", "2", 409, "cas_conflict")
	step("post create only again", "POST", "/config", map[string]any{"key": "k", "value": 2, "cas": 0}, 409, "cas_conflict")
	i := cur()
	step("match", "PUT", fmt.Sprintf("/config/k?cas=%d", i), "3", 200, "")
	step("mismatch (old index)", "PUT", fmt.Sprintf("/config/k?cas=%d", i), "4", 409, "cas_conflict")
	step("post mismatch", "POST", "/config", map[string]any{"key": "k", "value": 5, "cas": 999}, 409, "cas_conflict")
	step("post match", "POST", "/config", map[string]any{"key": "k", "value": 5, "cas": cur()}, 200, "")
	step("batch with one mismatch aborts all", "POST", "/config", map[string]any{"entries": []map[string]any{
		{"key": "new", "value": 1}, {"key": "k", "value": 6, "cas": 1}}}, 409, "cas_conflict")
	h.mustErr(h.do("GET", "/config/new", nil), 404, "not_found")
	step("batch match", "POST", "/config", map[string]any{"entries": []map[string]any{
		{"key": "new", "value": 1, "cas": 0}, {"key": "k", "value": 6, "cas": cur()}}}, 200, "")
	step("delete mismatch", "DELETE", "/config/k?cas=1", nil, 409, "cas_conflict")
	step("delete missing with cas", "DELETE", "/config/zz?cas=3", nil, 409, "cas_conflict")
	step("delete match", "DELETE", fmt.Sprintf("/config/k?cas=%d", cur()), nil, 200, "")
	h.mustErr(h.do("GET", "/config/k", nil), 404, "not_found")
}

func TestRoutes(t *testing.T) {
	h := newHarness(t)
	route := map[string]any{"id": "r-web", "paths": []string{"/web/"}, "service": "web", "methods": []string{"get"},
		"rate_limit": map[string]any{"rps": 100}}
	var rt registry.Route
	r := h.do("POST", "/gateway/routes", route)
	h.must(r, 201, &rt)
	if rt.ID != "r-web" || rt.Match != "prefix" || rt.LoadBalancer != "round_robin" || rt.Timeout != "30s" ||
		rt.Retries == nil || *rt.Retries != 1 || rt.Methods[0] != "GET" || rt.RateLimit.Burst != 100 || rt.CreateIndex != 1 {
		t.Fatalf("route %s", r.body)
	}
	before := h.dump()
	h.mustErr(h.do("POST", "/gateway/routes", route), 409, "conflict")
	h.assertUnchanged(before)

	r = h.do("PUT", "/gateway/routes/r-api", map[string]any{"service": "api", "paths": []string{"/api/"}})
	h.must(r, 201, &rt)
	if rt.ID != "r-api" {
		t.Fatalf("put created %s", r.body)
	}
	created := rt.CreateIndex
	r = h.do("PUT", "/gateway/routes/r-api", map[string]any{"id": "r-api", "service": "api2"})
	h.must(r, 200, &rt)
	if rt.Service != "api2" || rt.CreateIndex != created || rt.ModifyIndex != created+1 || indexOf(t, r) != created+1 {
		t.Fatalf("put replaced %s", r.body)
	}
	e := h.mustErr(h.do("PUT", "/gateway/routes/r-api", map[string]any{"id": "other", "service": "x"}), 400, "invalid")
	if e.Error.Field != "id" {
		t.Fatalf("field %q", e.Error.Field)
	}

	r = h.do("GET", "/gateway/routes/r-api", nil)
	h.must(r, 200, &rt)
	if rt.Service != "api2" || indexOf(t, r) != created+1 {
		t.Fatalf("get %s", r.body)
	}
	var list []registry.Route
	r = h.do("GET", "/gateway/routes", nil)
	h.must(r, 200, &list)
	if len(list) != 2 || list[0].ID != "r-api" || indexOf(t, r) != created+1 {
		t.Fatalf("list %s", r.body)
	}
	h.must(h.do("DELETE", "/gateway/routes/r-api", nil), 200, nil)
	h.mustErr(h.do("GET", "/gateway/routes/r-api", nil), 404, "not_found")
	h.mustErr(h.do("DELETE", "/gateway/routes/r-api", nil), 404, "not_found")
	if r := h.do("GET", "/gateway/routes", nil); indexOf(t, r) != created+2 {
		t.Fatalf("list index after delete %d", indexOf(t, r))
	}
}

func TestCluster(t *testing.T) {
	h := newHarness(t)
	var members []Member
	h.must(h.do("GET", "/cluster/members", nil), 200, &members)
	if len(members) != 1 || members[0].Name != "n1" || members[0].Raft != "leader" {
		t.Fatalf("members %+v", members)
	}
	var l LeaderInfo
	h.must(h.do("GET", "/cluster/leader", nil), 200, &l)
	if l.Node != "n1" || l.HTTPAddr == "" {
		t.Fatalf("leader %+v", l)
	}
	var rf struct {
		Term         uint64       `json:"term"`
		CommitIndex  uint64       `json:"commit_index"`
		AppliedIndex uint64       `json:"applied_index"`
		Servers      []RaftServer `json:"servers"`
	}
	h.must(h.do("GET", "/cluster/raft", nil), 200, &rf)
	if rf.Term != 3 || rf.CommitIndex != 10 || len(rf.Servers) != 1 || !rf.Servers[0].Leader {
		t.Fatalf("raft %+v", rf)
	}
	left := false
	h.cluster.leaveFn = func(context.Context) error { left = true; return nil }
	var lv map[string]bool
	h.must(h.do("POST", "/cluster/leave", nil), 200, &lv)
	if !left || !lv["left"] {
		t.Fatalf("leave %v %v", left, lv)
	}
	h.cluster.leaderFn = func() (LeaderInfo, bool) { return LeaderInfo{}, false }
	r := h.do("GET", "/cluster/leader", nil)
	h.mustErr(r, 503, "no_leader")
	if r.get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
}

// fakePeers stands for peerproto.Service (tested with the real handlers
// in cluster/peerproto).
type fakePeers struct{ paths []string }

func (f *fakePeers) Serve(ctx *fasthttp.RequestCtx) (string, uint64) {
	f.paths = append(f.paths, string(ctx.Path()))
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBodyString("{}")
	return peerproto.PathForward, 42
}

// /internal/... goes to the peer protocol's handlers, whatever the path,
// without ACL checks or the routing table; the route and index they
// return label the answer. Without them it is 404.
func TestInternalPathsMounted(t *testing.T) {
	peers := &fakePeers{}
	h := newHarness(t, func(d *Deps) {
		d.Peers = peers
		d.ACL = ACLOptions{Enabled: true}
	})
	r := h.do("POST", peerproto.PathForward, []byte("cmd"))
	h.must(r, 200, nil)
	if r.get(HeaderIndex) != "42" || len(peers.paths) != 1 || peers.paths[0] != peerproto.PathForward {
		t.Fatalf("index %q, peers saw %q", r.get(HeaderIndex), peers.paths)
	}
	h.must(h.do("GET", peerproto.Prefix+"anything", nil), 200, nil)
	if len(peers.paths) != 2 {
		t.Fatalf("peers saw %q", peers.paths)
	}
	h2 := newHarness(t)
	h2.mustErr(h2.do("POST", peerproto.PathForward, []byte("cmd")), 404, "not_found")
}

func TestWriteOutcomes(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter bool
	}{
		{"no leader", command.ErrNoLeader, 503, "no_leader", true},
		{"wrapped no leader", fmt.Errorf("forward: %w", command.ErrNoLeader), 503, "no_leader", true},
		{"outcome unknown", command.ErrOutcomeUnknown, 504, "outcome_unknown", false},
		{"not applied", command.ErrNotApplied, 504, "outcome_unknown", false},
		{"deadline", context.DeadlineExceeded, 504, "outcome_unknown", false},
		{"other", errors.New("disk on fire"), 500, "internal", false},
		{"feature unavailable", &command.FeatureError{Feature: "f", Type: command.TypeConfigSet, Missing: []string{"n2 (version 1)"}},
			409, "feature_unavailable", false},
	}
	writes := []struct{ method, path, body string }{
		{"POST", "/services/register", `{"name":"web","type":"http","address":"127.0.0.1","port":80}`},
		{"PUT", "/config/k", `1`},
		{"POST", "/config", `{"key":"k","value":1}`},
		{"DELETE", "/config/k", ``},
		{"POST", "/gateway/routes", `{"id":"r","service":"web"}`},
		{"PUT", "/gateway/routes/r", `{"service":"web"}`},
		{"DELETE", "/gateway/routes/r", ``},
		{"DELETE", "/services/web", ``},
		{"DELETE", "/services/web/instances/i", ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.writer.errFn = func(context.Context, []byte) error { return c.err }
			for _, w := range writes {
				r := h.do(w.method, w.path, w.body)
				h.mustErr(r, c.status, c.code)
				if got := r.get("Retry-After") != ""; got != c.retryAfter {
					t.Errorf("%s %s: Retry-After %v", w.method, w.path, got)
				}
			}
		})
	}
}

func TestApplyHasDeadline(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.ApplyTimeout = 50 * time.Millisecond })
	h.writer.errFn = func(ctx context.Context, _ []byte) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("no deadline")
		}
		<-ctx.Done()
		return ctx.Err()
	}
	h.mustErr(h.do("PUT", "/config/k", "1"), 504, "outcome_unknown")
}

func TestConsistentRead(t *testing.T) {
	var calls int
	var fail error
	h := newHarness(t, func(d *Deps) {
		d.Consistency = fakeConsistency{fn: func(ctx context.Context) error {
			calls++
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline")
			}
			return fail
		}}
	})
	h.must(h.do("PUT", "/config/k", "1"), 200, nil)
	h.must(h.do("GET", "/config/k?consistent", nil), 200, nil)
	h.must(h.do("GET", "/config/k", nil), 200, nil)
	h.must(h.do("GET", "/config/k?stale", nil), 200, nil)
	if calls != 1 {
		t.Fatalf("consistent calls %d", calls)
	}
	fail = command.ErrNoLeader
	r := h.do("GET", "/services?consistent=true", nil)
	h.mustErr(r, 503, "no_leader")

	// Without a Consistency, ?consistent reads locally.
	h2 := newHarness(t)
	h2.must(h2.do("GET", "/config?consistent", nil), 200, nil)
}

func TestPanicRecovered(t *testing.T) {
	h := newHarness(t)
	h.cluster.membersFn = func() []Member { panic("boom") }
	r := h.do("GET", "/cluster/members", nil, "X-Request-ID", "rid-panic")
	e := h.mustErr(r, 500, "internal")
	if strings.Contains(e.Error.Message, "boom") || strings.Contains(string(r.body), "goroutine") {
		t.Fatalf("panic leaked: %s", r.body)
	}
	if r.get("X-Request-ID") != "rid-panic" {
		t.Fatalf("request id %q", r.get("X-Request-ID"))
	}
	// The node still serves.
	h.must(h.do("GET", "/health", nil), 200, nil)
}

func TestPaging(t *testing.T) {
	h := newHarness(t)
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		h.register(reg(n, "http", "127.0.0.1", 8000, "id", n+"-1"))
		h.register(reg(n, "http", "127.0.0.1", 8001, "id", n+"-2"))
		h.must(h.do("PUT", "/config/p/"+n, "1"), 200, nil)
		h.must(h.do("PUT", "/gateway/routes/r-"+n, map[string]any{"service": n}), 201, nil)
	}
	type page struct {
		path  string
		names func([]byte) []string
	}
	names := func(field string) func([]byte) []string {
		return func(b []byte) []string {
			var items []map[string]any
			if err := json.Unmarshal(b, &items); err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, it := range items {
				if field == "service/id" {
					out = append(out, it["service"].(string)+"/"+it["id"].(string))
				} else {
					out = append(out, it[field].(string))
				}
			}
			return out
		}
	}
	cases := []struct {
		path  string
		limit int
		field string
		want  []string
	}{
		{"/services", 2, "name", []string{"a", "b", "c", "d", "e"}},
		{"/config?prefix=p/", 2, "key", []string{"p/a", "p/b", "p/c", "p/d", "p/e"}},
		{"/gateway/routes", 3, "id", []string{"r-a", "r-b", "r-c", "r-d", "r-e"}},
		{"/discover/http", 4, "service/id", []string{"a/a-1", "a/a-2", "b/b-1", "b/b-2", "c/c-1", "c/c-2", "d/d-1", "d/d-2", "e/e-1", "e/e-2"}},
	}
	for _, c := range cases {
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("%s: too many pages", c.path)
			}
			sep := "?"
			if strings.Contains(c.path, "?") {
				sep = "&"
			}
			uri := fmt.Sprintf("%s%slimit=%d", c.path, sep, c.limit)
			if after != "" {
				uri += "&after=" + after
			}
			r := h.do("GET", uri, nil)
			h.must(r, 200, nil)
			items := names(c.field)(r.body)
			if len(items) > c.limit {
				t.Fatalf("%s: %d items over limit", uri, len(items))
			}
			got = append(got, items...)
			after = r.get(HeaderNext)
			if after == "" {
				break
			}
			if after != items[len(items)-1] {
				t.Fatalf("%s: next %q is not the last item %q", uri, after, items[len(items)-1])
			}
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: got %v want %v", c.path, got, c.want)
		}
	}
	// An exact last page sets no X-Nexus-Next.
	if r := h.do("GET", "/services?limit=5", nil); r.get(HeaderNext) != "" {
		t.Fatalf("next on the last page: %q", r.get(HeaderNext))
	}
	for _, bad := range []string{"/services?limit=0", "/services?limit=10001", "/config?limit=x", "/discover/http?after=nocursor", "/gateway/routes?limit=-1"} {
		e := h.mustErr(h.do("GET", bad, nil), 400, "invalid")
		if e.Error.Field != "limit" && e.Error.Field != "after" {
			t.Errorf("%s: field %q", bad, e.Error.Field)
		}
	}
}

func TestWriteAndReadIndexes(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/services/register", reg("web", "http", "127.0.0.1", 80))
	if indexOf(t, r) != 1 {
		t.Fatalf("write index %d", indexOf(t, r))
	}
	h.must(h.do("PUT", "/config/k", "1"), 200, nil) // 2
	h.must(h.do("PUT", "/gateway/routes/r", map[string]any{"service": "web"}), 201, nil)
	checks := []struct {
		path string
		want uint64
	}{
		{"/services", 1}, {"/services/web", 1}, {"/discover/http", 1}, {"/config", 2}, {"/config/k", 2},
		{"/gateway/routes", 3}, {"/gateway/routes/r", 3},
	}
	for _, c := range checks {
		if got := indexOf(t, h.do("GET", c.path, nil)); got != c.want {
			t.Errorf("%s: index %d want %d", c.path, got, c.want)
		}
	}
	// A delete moves the services list index too.
	r = h.do("DELETE", "/services/web", nil)
	if indexOf(t, r) != 4 {
		t.Fatalf("delete index %d", indexOf(t, r))
	}
	if got := indexOf(t, h.do("GET", "/services", nil)); got != 4 {
		t.Fatalf("list index after delete %d", got)
	}
	if got := indexOf(t, h.do("GET", "/config", nil)); got != 2 {
		t.Fatalf("config index moved by a services write: %d", got)
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	h.register(reg("web", "http", "127.0.0.1", 80))
	h.do("PUT", "/config/k", "1")
	h.do("PUT", "/config/k?cas=0", "1")
	h.do("POST", "/services/register", `{"name":"BAD"}`)
	h.do("GET", "/config/a/b/c", nil)
	r := h.do("GET", "/metrics", nil)
	h.must(r, 200, nil)
	if !strings.HasPrefix(r.get("Content-Type"), "text/plain") {
		t.Fatalf("content type %q", r.get("Content-Type"))
	}
	body := string(r.body)
	for _, want := range []string{
		`nexus_api_requests_total{code="201",method="POST",route="/services/register"} 1`,
		`nexus_api_requests_total{code="404",method="GET",route="/config/{key}"} 1`,
		`nexus_api_request_duration_seconds_bucket{method="PUT",route="/config/{key}"`,
		`nexus_api_rejected_writes_total{reason="validation"} 1`,
		`nexus_api_rejected_writes_total{reason="cas"} 1`,
		"nexus_registry_services 1", "nexus_registry_instances 1", "nexus_registry_config_entries 1", "nexus_registry_routes 0",
		"nexus_raft_term 3", "nexus_raft_commit_index 10", "nexus_raft_applied_index 10",
		`nexus_raft_state{state="leader"} 1`, `nexus_raft_state{state="follower"} 0`, "nexus_raft_last_contact_seconds 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, `route="/config/a/b/c"`) {
		t.Error("raw path used as a label")
	}
}

func TestNewDefaults(t *testing.T) {
	store := registry.NewStore()
	s, err := New(Deps{Writer: &fakeWriter{}, Reader: fakeReader{store}, Cluster: &fakeCluster{name: "n"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.maxBody != DefaultMaxBodyBytes || s.srv.MaxRequestBodySize != DefaultMaxBodyBytes || s.srv.ReadBufferSize < 8<<10 ||
		!s.srv.NoDefaultServerHeader || s.srv.ReadTimeout == 0 || s.srv.WriteTimeout == 0 || s.srv.IdleTimeout == 0 {
		t.Fatalf("server %+v", s.srv)
	}
	if _, err := New(Deps{}); err == nil {
		t.Fatal("New without deps succeeded")
	}
}

// TestServiceWithoutTagsListsEmptyTags: a service whose instances carry no
// tags lists "tags": [], never null (clients such as the web console
// spread the list).
func TestServiceWithoutTagsListsEmptyTags(t *testing.T) {
	h := newHarness(t)
	h.register(reg("bare", "tcp", "10.0.0.4", 1))
	for _, uri := range []string{"/services", "/services/bare"} {
		r := h.do("GET", uri, nil)
		if r.status != 200 || strings.Contains(string(r.body), `"tags":null`) {
			t.Fatalf("GET %s: %d %s", uri, r.status, r.body)
		}
	}
}
