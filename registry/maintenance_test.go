package registry_test

import (
	"strings"
	"testing"

	"github.com/nexus/nexus/registry"
)

func TestNormalizeMaintenance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		in    registry.Maintenance
		key   string
		field string // "" = valid
	}{
		{"node", registry.Maintenance{Scope: "node", Node: "n1", Service: "x"}, "node/n1", ""},
		{"service", registry.Maintenance{Scope: "service", Service: "web", ID: "x"}, "service/web", ""},
		{"instance", registry.Maintenance{Scope: "instance", Service: "web", ID: "web-1"}, "instance/web/web-1", ""},
		{"reason at the limit", registry.Maintenance{Scope: "node", Node: "n1", Reason: strings.Repeat("é", 256)}, "node/n1", ""},
		{"reason too long", registry.Maintenance{Scope: "node", Node: "n1", Reason: strings.Repeat("a", 257)}, "", "reason"},
		{"reason not utf-8", registry.Maintenance{Scope: "node", Node: "n1", Reason: "\xff"}, "", "reason"},
		{"bad node", registry.Maintenance{Scope: "node", Node: "a b"}, "", "node"},
		{"no node", registry.Maintenance{Scope: "node"}, "", "node"},
		{"bad service", registry.Maintenance{Scope: "service", Service: "Web"}, "", "service"},
		{"instance without id", registry.Maintenance{Scope: "instance", Service: "web"}, "", "id"},
		{"bad scope", registry.Maintenance{Scope: "rack"}, "", "scope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, e := registry.NormalizeMaintenance(c.in)
			if c.field == "" {
				wantCode(t, e, "")
				if got.Key != c.key {
					t.Fatalf("key %q, want %q", got.Key, c.key)
				}
				return
			}
			wantCode(t, e, registry.CodeInvalid)
			if e.Field != c.field {
				t.Fatalf("field %q, want %q (%s)", e.Field, c.field, e.Message)
			}
		})
	}
}

func instanceOf(t *testing.T, s *registry.Store, service, id string) registry.Instance {
	t.Helper()
	tx := s.ReadTxn()
	defer tx.Abort()
	in := tx.Instance(nil, service, id)
	if in == nil {
		t.Fatalf("%s/%s is gone", service, id)
	}
	return *in
}

func maint(t *testing.T, s *registry.Store, idx uint64, m registry.Maintenance, enable bool) registry.MaintenanceChange {
	t.Helper()
	var ch registry.MaintenanceChange
	write(t, s, idx, func(tx *registry.Tx) {
		var e *registry.Error
		if enable {
			ch, e = tx.EnableMaintenance(m)
		} else {
			ch, e = tx.DisableMaintenance(m)
		}
		if e != nil {
			t.Fatalf("maintenance %+v enable=%v: %v", m, enable, e)
		}
	})
	return ch
}

// wantState checks each instance's status, check status and maintenance
// scope ("" = not in maintenance).
func wantState(t *testing.T, s *registry.Store, want map[string][3]string) {
	t.Helper()
	for k, w := range want {
		svc, id, _ := strings.Cut(k, "/")
		in := instanceOf(t, s, svc, id)
		scope := ""
		if in.Maintenance != nil {
			scope = in.Maintenance.Scope
		}
		if got := [3]string{in.Status, in.CheckStatus(), scope}; got != w {
			t.Errorf("%s: status/check status/scope %v, want %v", k, got, w)
		}
	}
}

// Maintenance turns what it covers critical, keeps the checks' own status
// (a heartbeat during maintenance changes it, not the status), overlapping
// records give way to each other, and the end restores the checks' status.
func TestMaintenance_CoversAndRestores(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	a1, a2, b1 := inst("a", "a-1", "http"), inst("a", "a-2", "http"), inst("b", "b-1", "http")
	b1.Node = "n2"
	mustRegister(t, s, 1, a1)
	mustRegister(t, s, 2, a2)
	mustRegister(t, s, 3, b1)
	const P, C, W = registry.StatusPassing, registry.StatusCritical, registry.StatusWarning

	ch := maint(t, s, 4, registry.Maintenance{Scope: "node", Node: "n1", Reason: "rack move", Since: 42}, true)
	if ch.Instances != 2 || ch.Before != nil || ch.After.Key != "node/n1" || ch.After.CreateIndex != 4 {
		t.Fatalf("enable node: %+v", ch)
	}
	wantState(t, s, map[string][3]string{"a/a-1": {C, P, "node"}, "a/a-2": {C, P, "node"}, "b/b-1": {P, P, ""}})
	if in := instanceOf(t, s, "a", "a-1"); in.Maintenance.Reason != "rack move" || in.Maintenance.Since != 42 || in.ModifyIndex != 4 {
		t.Fatalf("a-1: %+v", in.Maintenance)
	}
	// A heartbeat while in maintenance: the checks say warning now.
	write(t, s, 5, func(tx *registry.Tx) {
		if _, _, e := tx.SetStatus("a", "a-1", W, "slow"); e != nil {
			t.Fatal(e)
		}
	})
	wantState(t, s, map[string][3]string{"a/a-1": {C, W, "node"}})
	// The instance's own record wins over the node's; ending the node's
	// leaves it covered.
	maint(t, s, 6, registry.Maintenance{Scope: "instance", Service: "a", ID: "a-1", Reason: "disk"}, true)
	wantState(t, s, map[string][3]string{"a/a-1": {C, W, "instance"}})
	if ch := maint(t, s, 7, registry.Maintenance{Scope: "node", Node: "n1"}, false); ch.Before == nil || ch.Instances != 1 {
		t.Fatalf("disable node: %+v", ch)
	}
	wantState(t, s, map[string][3]string{"a/a-1": {C, W, "instance"}, "a/a-2": {P, P, ""}})
	// A re-registration keeps the maintenance: it comes from the records,
	// never from the request.
	again := a1
	again.Maintenance = nil
	mustRegister(t, s, 8, again)
	wantState(t, s, map[string][3]string{"a/a-1": {C, P, "instance"}})
	// A registration of a new instance of a service in maintenance.
	maint(t, s, 9, registry.Maintenance{Scope: "service", Service: "b"}, true)
	b2 := inst("b", "b-2", "http")
	mustRegister(t, s, 10, b2)
	wantState(t, s, map[string][3]string{"b/b-1": {C, P, "service"}, "b/b-2": {C, P, "service"}})
	// Disabling what is not in maintenance changes nothing.
	if ch := maint(t, s, 11, registry.Maintenance{Scope: "node", Node: "n1"}, false); ch.Before != nil || ch.Instances != 0 {
		t.Fatalf("disable again: %+v", ch)
	}
	maint(t, s, 12, registry.Maintenance{Scope: "instance", Service: "a", ID: "a-1"}, false)
	wantState(t, s, map[string][3]string{"a/a-1": {P, P, ""}})

	tx := s.ReadTxn()
	defer tx.Abort()
	if n := tx.MaintenanceCount(); n != 2 {
		t.Fatalf("instances in maintenance: %d, want 2 (b-1, b-2)", n)
	}
	if p, w, c := tx.StatusCounts(); p != 2 || w != 0 || c != 2 {
		t.Fatalf("status counts %d/%d/%d", p, w, c)
	}
	// Only the checks' critical status puts an instance in the reaper's
	// index: maintenance alone does not.
	n := 0
	tx.EachCriticalInstance(func(*registry.Instance) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d instances in the critical index", n)
	}
}

func TestMaintenance_Targets(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	mustRegister(t, s, 1, inst("a", "a-1", "http"))
	for _, m := range []registry.Maintenance{
		{Scope: "service", Service: "nope"},
		{Scope: "instance", Service: "a", ID: "nope"},
	} {
		tx := s.WriteTxn(2)
		_, e := tx.EnableMaintenance(m)
		wantCode(t, e, registry.CodeNotFound)
		_, e = tx.DisableMaintenance(m)
		wantCode(t, e, registry.CodeNotFound)
		tx.Abort()
	}
	// A node gossip knows is checked by the proposer: any name passes here.
	ch := maint(t, s, 3, registry.Maintenance{Scope: "node", Node: "n9"}, true)
	if ch.Instances != 0 {
		t.Fatalf("%+v", ch)
	}
}

// Records live and die with their target; a node's record stays.
func TestMaintenance_GoesWithItsTarget(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	mustRegister(t, s, 1, inst("a", "a-1", "http"))
	mustRegister(t, s, 2, inst("a", "a-2", "http"))
	maint(t, s, 3, registry.Maintenance{Scope: "instance", Service: "a", ID: "a-1"}, true)
	maint(t, s, 4, registry.Maintenance{Scope: "service", Service: "a"}, true)
	maint(t, s, 5, registry.Maintenance{Scope: "node", Node: "n1"}, true)
	keys := func() []string {
		tx := s.ReadTxn()
		defer tx.Abort()
		var out []string
		for _, m := range tx.Maintenances(nil) {
			out = append(out, m.Key)
		}
		return out
	}
	write(t, s, 6, func(tx *registry.Tx) {
		if _, e := tx.DeregisterInstance("a", "a-1"); e != nil {
			t.Fatal(e)
		}
	})
	if got := strings.Join(keys(), " "); got != "node/n1 service/a" {
		t.Fatalf("after the instance left: %s", got)
	}
	before := tableIndex(s, registry.TableMaintenance)
	write(t, s, 7, func(tx *registry.Tx) {
		if _, e := tx.DeregisterService("a"); e != nil {
			t.Fatal(e)
		}
	})
	if got := strings.Join(keys(), " "); got != "node/n1" {
		t.Fatalf("after the service left: %s", got)
	}
	if after := tableIndex(s, registry.TableMaintenance); after != 7 || before != 6 {
		t.Fatalf("maintenance index %d -> %d, want 6 -> 7 (each drop moves it)", before, after)
	}
}

func TestMaintenance_SurvivesDumpAndLoad(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	mustRegister(t, s, 1, inst("a", "a-1", "http"))
	maint(t, s, 2, registry.Maintenance{Scope: "node", Node: "n1", Reason: "r"}, true)
	tx := s.ReadTxn()
	d := tx.Dump()
	tx.Abort()
	s2 := registry.NewStore()
	if err := s2.Restore(func(tx *registry.Tx) error { return tx.Load(d) }); err != nil {
		t.Fatal(err)
	}
	wantState(t, s2, map[string][3]string{"a/a-1": {registry.StatusCritical, registry.StatusPassing, "node"}})
	tx2 := s2.ReadTxn()
	defer tx2.Abort()
	if m := tx2.MaintenanceOf(nil, "node/n1"); m == nil || m.Reason != "r" {
		t.Fatalf("record after restore: %+v", m)
	}
	if tx2.MaintenanceCount() != 1 {
		t.Fatalf("count after restore: %d", tx2.MaintenanceCount())
	}
	// Ending it after the restore gives the checks' status back.
	maint(t, s2, 3, registry.Maintenance{Scope: "node", Node: "n1"}, false)
	wantState(t, s2, map[string][3]string{"a/a-1": {registry.StatusPassing, registry.StatusPassing, ""}})
}
