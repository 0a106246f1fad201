package consul_test

import (
	"strings"
	"testing"

	consulapi "github.com/hashicorp/consul/api"
)

// TestConsulAgentMaintenance drives maintenance with the real Consul client
// (what `consul maint` sends): the instance's checks gain the critical
// _service_maintenance:<id> (or _node_maintenance) check with the reason,
// ?passing leaves it out (the client's AggregatedStatus names it
// "maintenance": it knows those check ids), and disabling brings it back.
func TestConsulAgentMaintenance(t *testing.T) {
	h := newHarness(t)
	agent := h.client.Agent()
	for _, id := range []string{"web-1", "web-2"} {
		if err := agent.ServiceRegister(&consulapi.AgentServiceRegistration{ID: id, Name: "web", Port: 9001}); err != nil {
			t.Fatal(err)
		}
	}
	passing := func() []string {
		t.Helper()
		entries, _, err := h.client.Health().Service("web", "", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range entries {
			ids = append(ids, e.Service.ID)
		}
		return ids
	}
	checksOf := func(id string) consulapi.HealthChecks {
		t.Helper()
		entries, _, err := h.client.Health().Service("web", "", false, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Service.ID == id {
				return e.Checks
			}
		}
		t.Fatalf("%s not listed", id)
		return nil
	}
	if got := passing(); len(got) != 2 {
		t.Fatalf("before: %v", got)
	}

	if err := agent.EnableServiceMaintenance("web-1", "disk swap"); err != nil {
		t.Fatal(err)
	}
	if got := passing(); len(got) != 1 || got[0] != "web-2" {
		t.Fatalf("web-1 in maintenance, passing: %v", got)
	}
	cs := checksOf("web-1")
	if len(cs) != 1 || cs[0].CheckID != "_service_maintenance:web-1" || cs[0].Status != "critical" ||
		cs[0].Notes != "disk swap" || cs.AggregatedStatus() != consulapi.HealthMaint {
		t.Fatalf("checks of web-1: %+v", *cs[0])
	}

	if err := agent.EnableNodeMaintenance("rack move"); err != nil {
		t.Fatal(err)
	}
	if got := passing(); len(got) != 0 {
		t.Fatalf("node in maintenance, passing: %v", got)
	}
	if cs := checksOf("web-2"); len(cs) != 1 || cs[0].CheckID != "_node_maintenance" || cs[0].Notes != "rack move" || cs[0].ServiceID != "" {
		t.Fatalf("checks of web-2: %+v", cs)
	}
	if err := agent.DisableNodeMaintenance(); err != nil {
		t.Fatal(err)
	}
	if err := agent.DisableServiceMaintenance("web-1"); err != nil {
		t.Fatal(err)
	}
	if got := passing(); len(got) != 2 {
		t.Fatalf("after: %v", got)
	}
	// An unknown service id is Consul's 404; enable must be a boolean.
	if err := agent.EnableServiceMaintenance("nope", ""); err == nil {
		t.Fatal("maintenance of an unknown service id accepted")
	}
	if code, _, body := h.raw("PUT", "/v1/agent/maintenance?enable=maybe", ""); code != 400 || !strings.Contains(body, "enable") {
		t.Fatalf("enable=maybe: %d %s", code, body)
	}
}
