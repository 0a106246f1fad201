package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nexus/nexus/registry"
)

// Maintenance through the API: an instance, its service and its node, each
// left out of discovery while covered; a heartbeat meanwhile changes only
// the check status; the end gives discovery the instance back; each
// enable and disable is audited.
func TestMaintenance_Lifecycle(t *testing.T) {
	h := newHarness(t)
	h.register(reg("web", "http", "10.0.0.1", 80, "id", "web-1", "check", map[string]string{"ttl": "1m"}))
	h.register(reg("web", "http", "10.0.0.2", 80, "id", "web-2"))
	h.must(h.do("PUT", "/services/web/instances/web-1/heartbeat", map[string]string{"status": "passing"}), 200, nil)
	discovered := func() string {
		var out []registry.Instance
		h.must(h.do("GET", "/discover/http", nil), 200, &out)
		var ids []string
		for _, in := range out {
			ids = append(ids, in.ID)
		}
		return strings.Join(ids, ",")
	}
	if got := discovered(); got != "web-1,web-2" {
		t.Fatalf("before: %s", got)
	}

	var rec struct {
		registry.Maintenance
		Since     string `json:"since"`
		Instances int    `json:"instances"`
	}
	h.must(h.do("PUT", "/maintenance/services/web/instances/web-1", map[string]string{"reason": "disk swap"}), 200, &rec)
	if rec.Scope != "instance" || rec.Service != "web" || rec.ID != "web-1" || rec.Reason != "disk swap" || rec.Instances != 1 || rec.Since == "" {
		t.Fatalf("record: %+v", rec)
	}
	if got := discovered(); got != "web-2" {
		t.Fatalf("in maintenance: %s", got)
	}
	var in registry.Instance
	h.must(h.do("GET", "/services/web", nil), 200, &struct {
		Instances []*registry.Instance `json:"instances"`
	}{Instances: []*registry.Instance{&in}})
	if in.Status != "critical" || in.Maintenance == nil || in.Maintenance.Reason != "disk swap" || in.Maintenance.CheckStatus != "passing" {
		t.Fatalf("instance: status %s maintenance %+v", in.Status, in.Maintenance)
	}
	var health struct {
		Instances []struct {
			ID, Status, Output string
			Maintenance        *registry.InstanceMaintenance `json:"maintenance"`
		} `json:"instances"`
	}
	h.must(h.do("GET", "/services/web/health", nil), 200, &health)
	if hi := health.Instances[0]; hi.Status != "critical" || hi.Output != "maintenance: disk swap" || hi.Maintenance == nil {
		t.Fatalf("health view: %+v", hi)
	}
	// A heartbeat while in maintenance: still critical, the checks warn.
	h.must(h.do("PUT", "/services/web/instances/web-1/heartbeat", map[string]string{"status": "warning"}), 200, &in)
	if in.Status != "critical" || in.CheckStatus() != "warning" {
		t.Fatalf("after a heartbeat: %s / %s", in.Status, in.CheckStatus())
	}

	// The node: web-2 as well.
	h.must(h.do("PUT", "/maintenance/nodes/n1", nil), 200, &rec)
	if rec.Scope != "node" || rec.Node != "n1" || rec.Instances != 1 {
		t.Fatalf("node record: %+v", rec)
	}
	if got := discovered(); got != "" {
		t.Fatalf("node in maintenance: %s", got)
	}
	var list []registry.Maintenance
	r := h.do("GET", "/maintenance", nil)
	h.must(r, 200, &list)
	if len(list) != 2 || list[0].Key != "" || list[0].Scope != "instance" || list[1].Scope != "node" {
		t.Fatalf("list: %+v", list)
	}
	if r.get("X-Nexus-Index") == "" {
		t.Fatal("no X-Nexus-Index on GET /maintenance")
	}
	h.must(h.do("GET", "/maintenance/nodes/n1", nil), 200, nil)

	var ended struct {
		Ended     bool `json:"ended"`
		Instances int  `json:"instances"`
	}
	h.must(h.do("DELETE", "/maintenance/nodes/n1", nil), 200, &ended)
	if !ended.Ended || ended.Instances != 1 {
		t.Fatalf("end node: %+v", ended)
	}
	h.must(h.do("DELETE", "/maintenance/services/web/instances/web-1", nil), 200, &ended)
	if !ended.Ended {
		t.Fatalf("end instance: %+v", ended)
	}
	h.must(h.do("DELETE", "/maintenance/services/web/instances/web-1", nil), 200, &ended)
	if ended.Ended {
		t.Fatal("a second end reported ended")
	}
	h.mustErr(h.do("GET", "/maintenance/nodes/n1", nil), 404, "not_found")
	// The checks said warning last: that is the status now.
	in = registry.Instance{}
	h.must(h.do("GET", "/services/web", nil), 200, &struct {
		Instances []*registry.Instance `json:"instances"`
	}{Instances: []*registry.Instance{&in}})
	if in.Status != "warning" || in.Maintenance != nil {
		t.Fatalf("after the end: %s %+v", in.Status, in.Maintenance)
	}

	var audit []struct {
		Action   string          `json:"action"`
		Resource string          `json:"resource"`
		Before   json.RawMessage `json:"before"`
		After    json.RawMessage `json:"after"`
	}
	h.must(h.do("GET", "/audit?resource_type=maintenance", nil), 200, &audit)
	var got []string
	for _, a := range audit {
		got = append(got, a.Action+" "+a.Resource)
	}
	if strings.Join(got, "; ") != "disable instance/web/web-1; disable node/n1; enable node/n1; enable instance/web/web-1" {
		t.Fatalf("audit: %v", got)
	}
}

// Bad input: a clear error naming the field, and nothing changed.
func TestMaintenance_Validation(t *testing.T) {
	h := newHarness(t)
	h.register(reg("web", "http", "10.0.0.1", 80, "id", "web-1"))
	before := h.dump()
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code, field        string
	}{
		{"unknown node", "PUT", "/maintenance/nodes/n9", nil, 404, "not_found", "node"},
		{"unknown node, disable", "DELETE", "/maintenance/nodes/n9", nil, 404, "not_found", "node"},
		{"unknown service", "PUT", "/maintenance/services/db", nil, 404, "not_found", "service"},
		{"unknown instance", "PUT", "/maintenance/services/web/instances/web-9", nil, 404, "not_found", "id"},
		{"unknown instance, disable", "DELETE", "/maintenance/services/web/instances/web-9", nil, 404, "not_found", "id"},
		{"bad service name", "PUT", "/maintenance/services/Web", nil, 400, "invalid", "service"},
		{"reason too long", "PUT", "/maintenance/nodes/n1", map[string]string{"reason": strings.Repeat("a", 257)}, 400, "invalid", "reason"},
		{"reason not a string", "PUT", "/maintenance/nodes/n1", map[string]any{"reason": 7}, 400, "invalid", "reason"},
		{"not JSON", "PUT", "/maintenance/nodes/n1", "{", 400, "invalid_json", ""},
		{"POST", "POST", "/maintenance/nodes/n1", nil, 405, "method_not_allowed", ""},
		{"no such path", "PUT", "/maintenance/racks/r1", nil, 404, "not_found", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := h.mustErr(h.do(c.method, c.path, c.body), c.status, c.code)
			if c.field != "" && e.Error.Field != c.field {
				t.Fatalf("field %q, want %q: %s", e.Error.Field, c.field, e.Error.Message)
			}
			h.assertUnchanged(before)
		})
	}
}
