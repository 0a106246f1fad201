package registry_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/nexus/nexus/registry"
)

func u64(n uint64) *uint64 { return &n }

// write runs fn in the write transaction of Raft index idx and commits it.
func write(t *testing.T, s *registry.Store, idx uint64, fn func(tx *registry.Tx)) {
	t.Helper()
	tx := s.WriteTxn(idx)
	defer tx.Abort()
	fn(tx)
	tx.Commit()
}

func inst(service, id, typ string) registry.Instance {
	return registry.Instance{
		ID: id, Service: service, Type: typ, Address: "10.0.0.1", Port: 80,
		Tags: []string{}, Metadata: map[string]string{}, Node: "n1", Status: registry.StatusPassing,
		Checks: []registry.Check{}, DependsOn: []string{},
	}
}

func mustRegister(t *testing.T, s *registry.Store, idx uint64, in registry.Instance) {
	t.Helper()
	write(t, s, idx, func(tx *registry.Tx) {
		if _, _, e := tx.RegisterInstance(in); e != nil {
			t.Fatalf("RegisterInstance(%s/%s) at %d: %v", in.Service, in.ID, idx, e)
		}
	})
}

func wantCode(t *testing.T, e *registry.Error, code string) {
	t.Helper()
	if code == "" {
		if e != nil {
			t.Fatalf("unexpected error %s: %s", e.Code, e.Message)
		}
		return
	}
	if e == nil {
		t.Fatalf("want error %q, got none", code)
	}
	if e.Code != code {
		t.Fatalf("code = %q (%s), want %q", e.Code, e.Message, code)
	}
	if e.Message == "" {
		t.Errorf("error %q has no message", code)
	}
}

func tableIndex(s *registry.Store, table string) uint64 {
	tx := s.ReadTxn()
	defer tx.Abort()
	return tx.TableIndex(nil, table)
}

func TestStore_RegisterKeepsCreateIndex(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	in := inst("web", "web-1", "http")

	write(t, s, 10, func(tx *registry.Tx) {
		created, got, e := tx.RegisterInstance(in)
		wantCode(t, e, "")
		if !created || got.CreateIndex != 10 || got.ModifyIndex != 10 {
			t.Fatalf("first register: created=%v ci=%d mi=%d", created, got.CreateIndex, got.ModifyIndex)
		}
	})
	in.Port = 81
	in.Tags = []string{"v2"}
	write(t, s, 12, func(tx *registry.Tx) {
		created, got, e := tx.RegisterInstance(in)
		wantCode(t, e, "")
		if created || got.CreateIndex != 10 || got.ModifyIndex != 12 || got.Port != 81 {
			t.Fatalf("update: created=%v ci=%d mi=%d port=%d", created, got.CreateIndex, got.ModifyIndex, got.Port)
		}
	})
	tx := s.ReadTxn()
	defer tx.Abort()
	svc := tx.Service(nil, "web")
	if svc == nil || svc.Type != "http" || svc.CreateIndex != 10 || svc.ModifyIndex != 12 {
		t.Fatalf("service = %+v", svc)
	}
	got := tx.Instance(nil, "web", "web-1")
	if got == nil || got.CreateIndex != 10 || got.ModifyIndex != 12 || !reflect.DeepEqual(got.Tags, []string{"v2"}) {
		t.Fatalf("instance = %+v", got)
	}
	if n := tx.TableIndex(nil, "services"); n != 12 {
		t.Errorf("services table index = %d, want 12", n)
	}
}

func TestStore_TypeConflict(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	mustRegister(t, s, 3, inst("web", "web-1", "http"))
	tests := []struct {
		name string
		in   registry.Instance
		code string
	}{
		{"new instance other type", inst("web", "web-2", "grpc"), registry.CodeTypeConflict},
		{"same instance other type", inst("web", "web-1", "tcp"), registry.CodeTypeConflict},
		{"new instance same type", inst("web", "web-3", "http"), ""},
		{"other service other type", inst("db", "db-1", "postgres"), ""},
	}
	for i, tc := range tests {
		idx := uint64(10 + i)
		write(t, s, idx, func(tx *registry.Tx) {
			_, got, e := tx.RegisterInstance(tc.in)
			wantCode(t, e, tc.code)
			if e != nil && got != nil {
				t.Errorf("%s: returned an instance with an error", tc.name)
			}
		})
	}
	tx := s.ReadTxn()
	defer tx.Abort()
	if svc := tx.Service(nil, "web"); svc.Type != "http" {
		t.Errorf("type changed to %q", svc.Type)
	}
	if got := tx.Instance(nil, "web", "web-1"); got.Type != "http" || got.ModifyIndex != 3 {
		t.Errorf("web-1 changed by a refused write: %+v", got)
	}
	if tx.Instance(nil, "web", "web-2") != nil {
		t.Errorf("web-2 stored despite type conflict")
	}
}

func TestStore_DeregisterInstance(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	mustRegister(t, s, 1, inst("web", "web-1", "http"))
	mustRegister(t, s, 2, inst("web", "web-2", "http"))

	write(t, s, 3, func(tx *registry.Tx) {
		prev, e := tx.DeregisterInstance("web", "web-1")
		wantCode(t, e, "")
		if prev.ID != "web-1" || prev.ModifyIndex != 1 {
			t.Errorf("prev = %+v", prev)
		}
	})
	tx := s.ReadTxn()
	if svc := tx.Service(nil, "web"); svc == nil || svc.ModifyIndex != 3 || svc.CreateIndex != 1 {
		t.Fatalf("service after first deregister = %+v", svc)
	}
	tx.Abort()

	write(t, s, 4, func(tx *registry.Tx) {
		_, e := tx.DeregisterInstance("web", "nope")
		wantCode(t, e, registry.CodeNotFound)
		_, e = tx.DeregisterInstance("nope", "web-2")
		wantCode(t, e, registry.CodeNotFound)
	})
	write(t, s, 5, func(tx *registry.Tx) {
		_, e := tx.DeregisterInstance("web", "web-2")
		wantCode(t, e, "")
	})
	tx = s.ReadTxn()
	defer tx.Abort()
	if svc := tx.Service(nil, "web"); svc != nil {
		t.Fatalf("service survived its last instance: %+v", svc)
	}
	if got := tx.Services(nil); len(got) != 0 {
		t.Fatalf("services = %+v", got)
	}
	if n := tx.TableIndex(nil, "services"); n != 5 {
		t.Errorf("services table index = %d, want 5 (the delete)", n)
	}
	// The service can be registered again with another type once gone.
	tx.Abort()
	write(t, s, 6, func(tx *registry.Tx) {
		created, _, e := tx.RegisterInstance(inst("web", "web-9", "grpc"))
		wantCode(t, e, "")
		if !created {
			t.Error("not created")
		}
	})
}

func TestStore_DeregisterService(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	for i, id := range []string{"web-1", "web-2", "web-3"} {
		mustRegister(t, s, uint64(i+1), inst("web", id, "http"))
	}
	mustRegister(t, s, 4, inst("db", "db-1", "postgres"))

	write(t, s, 5, func(tx *registry.Tx) {
		insts, e := tx.DeregisterService("web")
		wantCode(t, e, "")
		if len(insts) != 3 {
			t.Fatalf("deregistered %d, want 3", len(insts))
		}
		_, e = tx.DeregisterService("web")
		wantCode(t, e, registry.CodeNotFound)
		_, e = tx.DeregisterService("nope")
		wantCode(t, e, registry.CodeNotFound)
	})
	tx := s.ReadTxn()
	defer tx.Abort()
	if tx.Service(nil, "web") != nil || len(tx.ServiceInstances(nil, "web")) != 0 {
		t.Fatal("web survived")
	}
	if tx.Service(nil, "db") == nil || len(tx.ServiceInstances(nil, "db")) != 1 {
		t.Fatal("db was removed too")
	}
	if n := tx.TableIndex(nil, "services"); n != 5 {
		t.Errorf("services table index = %d, want 5", n)
	}
	svcs, insts, cfg, routes := tx.Counts()
	if svcs != 1 || insts != 1 || cfg != 0 || routes != 0 {
		t.Errorf("counts = %d %d %d %d", svcs, insts, cfg, routes)
	}
}

func TestStore_SetStatus(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	in := inst("web", "web-1", "http")
	in.Checks = []registry.Check{{Kind: registry.CheckTTL, TTL: "10s", Status: registry.StatusPassing}}
	mustRegister(t, s, 1, in)
	mustRegister(t, s, 2, inst("web", "web-2", "http"))

	write(t, s, 7, func(tx *registry.Tx) {
		prev, next, e := tx.SetStatus("web", "web-1", registry.StatusCritical, "ttl expired")
		wantCode(t, e, "")
		if prev.Status != registry.StatusPassing || prev.Checks[0].Status != registry.StatusPassing || prev.Checks[0].Output != "" {
			t.Errorf("prev was modified in place: %+v", prev)
		}
		if next.Status != registry.StatusCritical || next.ModifyIndex != 7 || next.CreateIndex != 1 {
			t.Errorf("next = %+v", next)
		}
		if c := next.Checks[0]; c.Status != registry.StatusCritical || c.Output != "ttl expired" || c.TTL != "10s" {
			t.Errorf("next check = %+v", c)
		}
		_, _, e = tx.SetStatus("web", "nope", registry.StatusCritical, "")
		wantCode(t, e, registry.CodeNotFound)
	})
	tx := s.ReadTxn()
	defer tx.Abort()
	if got := tx.Instance(nil, "web", "web-1"); got.Status != registry.StatusCritical || got.Checks[0].Output != "ttl expired" {
		t.Errorf("stored = %+v", got)
	}
	if got := tx.Instance(nil, "web", "web-2"); got.Status != registry.StatusPassing {
		t.Errorf("other instance changed: %+v", got)
	}
	if svc := tx.Service(nil, "web"); svc.ModifyIndex != 7 {
		t.Errorf("service modify index = %d, want 7", svc.ModifyIndex)
	}
}

func TestStore_ConfigSet(t *testing.T) {
	t.Parallel()
	w := func(key, val string, cas *uint64) registry.ConfigWrite {
		return registry.ConfigWrite{Key: key, Value: []byte(val), CAS: cas}
	}
	tests := []struct {
		name   string
		writes []registry.ConfigWrite
		code   string
		field  string
		want   map[string]string // expected values afterwards (all keys)
	}{
		{"unconditional create", []registry.ConfigWrite{w("b", "2", nil)}, "", "", map[string]string{"a": "1", "b": "2"}},
		{"unconditional overwrite", []registry.ConfigWrite{w("a", "9", nil)}, "", "", map[string]string{"a": "9"}},
		{"create only on new key", []registry.ConfigWrite{w("b", "2", u64(0))}, "", "", map[string]string{"a": "1", "b": "2"}},
		{"create only on existing key", []registry.ConfigWrite{w("a", "2", u64(0))}, registry.CodeCASConflict, "", map[string]string{"a": "1"}},
		{"cas match", []registry.ConfigWrite{w("a", "2", u64(5))}, "", "", map[string]string{"a": "2"}},
		{"cas mismatch", []registry.ConfigWrite{w("a", "2", u64(4))}, registry.CodeCASConflict, "", map[string]string{"a": "1"}},
		{"cas on missing key", []registry.ConfigWrite{w("b", "2", u64(5))}, registry.CodeCASConflict, "", map[string]string{"a": "1"}},
		{"multi all ok", []registry.ConfigWrite{w("a", "2", u64(5)), w("b", "3", u64(0)), w("c", "4", nil)}, "", "",
			map[string]string{"a": "2", "b": "3", "c": "4"}},
		{"multi last conflicts: nothing written", []registry.ConfigWrite{w("b", "3", u64(0)), w("c", "4", nil), w("a", "2", u64(4))},
			registry.CodeCASConflict, "", map[string]string{"a": "1"}},
		{"multi first conflicts: nothing written", []registry.ConfigWrite{w("a", "2", u64(0)), w("b", "3", nil)},
			registry.CodeCASConflict, "", map[string]string{"a": "1"}},
		{"duplicate key", []registry.ConfigWrite{w("b", "1", nil), w("b", "2", nil)}, registry.CodeInvalid, "entries", map[string]string{"a": "1"}},
		{"duplicate existing key with cas", []registry.ConfigWrite{w("a", "1", u64(5)), w("a", "2", u64(5))}, registry.CodeInvalid, "entries", map[string]string{"a": "1"}},
		{"no entries", nil, registry.CodeInvalid, "entries", map[string]string{"a": "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := registry.NewStore()
			write(t, s, 5, func(tx *registry.Tx) {
				if _, _, e := tx.ConfigSet([]registry.ConfigWrite{w("a", "1", nil)}); e != nil {
					t.Fatal(e)
				}
			})
			write(t, s, 9, func(tx *registry.Tx) {
				out, prevs, e := tx.ConfigSet(tc.writes)
				wantCode(t, e, tc.code)
				if e != nil {
					if e.Field != tc.field {
						t.Errorf("field = %q, want %q", e.Field, tc.field)
					}
					if out != nil || prevs != nil {
						t.Errorf("results returned with an error")
					}
					return
				}
				if len(out) != len(tc.writes) || len(prevs) != len(tc.writes) {
					t.Fatalf("got %d entries / %d prevs for %d writes", len(out), len(prevs), len(tc.writes))
				}
				for i, e := range out {
					if e.Key != tc.writes[i].Key || e.ModifyIndex != 9 {
						t.Errorf("entry %d = %+v", i, e)
					}
					wantCI := uint64(9)
					if prevs[i] != nil {
						wantCI = prevs[i].CreateIndex
						if e.Key != "a" || prevs[i].ModifyIndex != 5 || string(prevs[i].Value) != "1" {
							t.Errorf("prev %d = %+v", i, prevs[i])
						}
					}
					if e.CreateIndex != wantCI {
						t.Errorf("entry %d create index = %d, want %d", i, e.CreateIndex, wantCI)
					}
				}
			})
			tx := s.ReadTxn()
			defer tx.Abort()
			got := map[string]string{}
			for _, e := range tx.ConfigList(nil, "") {
				got[e.Key] = string(e.Value)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("state = %v, want %v", got, tc.want)
			}
			wantIdx := uint64(9)
			if tc.code != "" {
				wantIdx = 5
			}
			if n := tx.TableIndex(nil, "config"); n != wantIdx {
				t.Errorf("config table index = %d, want %d", n, wantIdx)
			}
		})
	}
}

func TestStore_ConfigDelete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  string
		cas  *uint64
		code string
	}{
		{"unconditional", "a", nil, ""},
		{"cas match", "a", u64(5), ""},
		{"cas mismatch", "a", u64(4), registry.CodeCASConflict},
		{"cas 0 on existing", "a", u64(0), registry.CodeCASConflict},
		{"missing", "b", nil, registry.CodeNotFound},
		{"missing cas 0", "b", u64(0), registry.CodeNotFound},
		{"missing cas N", "b", u64(5), registry.CodeCASConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := registry.NewStore()
			write(t, s, 5, func(tx *registry.Tx) {
				if _, _, e := tx.ConfigSet([]registry.ConfigWrite{{Key: "a", Value: []byte(`1`)}}); e != nil {
					t.Fatal(e)
				}
			})
			write(t, s, 8, func(tx *registry.Tx) {
				prev, e := tx.ConfigDelete(tc.key, tc.cas)
				wantCode(t, e, tc.code)
				if e == nil && (prev == nil || prev.Key != "a" || prev.ModifyIndex != 5) {
					t.Errorf("prev = %+v", prev)
				}
			})
			tx := s.ReadTxn()
			defer tx.Abort()
			exists := tx.ConfigGet(nil, "a") != nil
			if exists != (tc.code != "") {
				t.Errorf("key a exists = %v after code %q", exists, tc.code)
			}
			wantIdx := uint64(8)
			if tc.code != "" {
				wantIdx = 5
			}
			if n := tx.TableIndex(nil, "config"); n != wantIdx {
				t.Errorf("config table index = %d, want %d (deletes move it)", n, wantIdx)
			}
		})
	}
}

func TestStore_ConfigList(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	write(t, s, 1, func(tx *registry.Tx) {
		var ws []registry.ConfigWrite
		for _, k := range []string{"app/db/pool", "app/a", "other", "app/db/host", "apple"} {
			ws = append(ws, registry.ConfigWrite{Key: k, Value: []byte(`1`)})
		}
		if _, _, e := tx.ConfigSet(ws); e != nil {
			t.Fatal(e)
		}
	})
	tx := s.ReadTxn()
	defer tx.Abort()
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"app/a", "app/db/host", "app/db/pool", "apple", "other"}},
		{"app/", []string{"app/a", "app/db/host", "app/db/pool"}},
		{"app/db/", []string{"app/db/host", "app/db/pool"}},
		{"app", []string{"app/a", "app/db/host", "app/db/pool", "apple"}},
		{"zzz", nil},
	}
	for _, tc := range tests {
		var got []string
		for _, e := range tx.ConfigList(nil, tc.prefix) {
			got = append(got, e.Key)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ConfigList(%q) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
}

func TestStore_Routes(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	r := registry.Route{ID: "r-web", Service: "web", Paths: []string{"/web/"}}

	write(t, s, 3, func(tx *registry.Tx) {
		created, prev, got, e := tx.UpsertRoute(r, true)
		wantCode(t, e, "")
		if !created || prev != nil || got.CreateIndex != 3 || got.ModifyIndex != 3 {
			t.Fatalf("create: created=%v prev=%v got=%+v", created, prev, got)
		}
	})
	write(t, s, 4, func(tx *registry.Tx) {
		_, _, _, e := tx.UpsertRoute(r, true)
		wantCode(t, e, registry.CodeConflict)
	})
	if n := tableIndex(s, "routes"); n != 3 {
		t.Errorf("routes index after refused create = %d, want 3", n)
	}
	r.Paths = []string{"/w/"}
	write(t, s, 5, func(tx *registry.Tx) {
		created, prev, got, e := tx.UpsertRoute(r, false)
		wantCode(t, e, "")
		if created || prev == nil || prev.Paths[0] != "/web/" || got.CreateIndex != 3 || got.ModifyIndex != 5 || got.Paths[0] != "/w/" {
			t.Fatalf("upsert: created=%v prev=%+v got=%+v", created, prev, got)
		}
		created, _, _, e = tx.UpsertRoute(registry.Route{ID: "r-api", Service: "api"}, false)
		wantCode(t, e, "")
		if !created {
			t.Error("upsert of a new route is not created")
		}
	})
	tx := s.ReadTxn()
	if got := tx.Routes(nil); len(got) != 2 || got[0].ID != "r-api" || got[1].ID != "r-web" {
		t.Fatalf("routes not sorted by id: %+v", got)
	}
	tx.Abort()
	write(t, s, 6, func(tx *registry.Tx) {
		prev, e := tx.DeleteRoute("r-web")
		wantCode(t, e, "")
		if prev.ID != "r-web" {
			t.Errorf("prev = %+v", prev)
		}
		_, e = tx.DeleteRoute("r-web")
		wantCode(t, e, registry.CodeNotFound)
	})
	tx = s.ReadTxn()
	defer tx.Abort()
	if tx.Route(nil, "r-web") != nil {
		t.Fatal("route survived delete")
	}
	if n := tx.TableIndex(nil, "routes"); n != 6 {
		t.Errorf("routes table index = %d, want 6 (deletes move it)", n)
	}
}

func TestStore_Queries(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	a := inst("web", "web-2", "http")
	a.Tags = []string{"v1", "Canary"}
	b := inst("web", "web-1", "http")
	b.Tags = []string{"v2"}
	b.Node = "n2"
	c := inst("api", "api-1", "http")
	d := inst("db", "db-1", "postgres")
	d.Node = "n2"
	for i, in := range []registry.Instance{a, b, c, d} {
		mustRegister(t, s, uint64(i+1), in)
	}
	tx := s.ReadTxn()
	defer tx.Abort()
	ids := func(in []registry.Instance) []string {
		var out []string
		for _, x := range in {
			out = append(out, x.Service+"/"+x.ID)
		}
		return out
	}
	if got := ids(tx.ServiceInstances(nil, "web")); !reflect.DeepEqual(got, []string{"web/web-1", "web/web-2"}) {
		t.Errorf("ServiceInstances = %v", got)
	}
	if got := ids(tx.InstancesByType(nil, "http")); !reflect.DeepEqual(got, []string{"api/api-1", "web/web-1", "web/web-2"}) {
		t.Errorf("InstancesByType = %v", got)
	}
	if got := ids(tx.InstancesByNode(nil, "n2")); !reflect.DeepEqual(got, []string{"db/db-1", "web/web-1"}) {
		t.Errorf("InstancesByNode = %v", got)
	}
	var names []string
	for _, svc := range tx.Services(nil) {
		names = append(names, svc.Name)
	}
	if !reflect.DeepEqual(names, []string{"api", "db", "web"}) {
		t.Errorf("Services = %v", names)
	}
	if got := registry.ServiceTags(tx.ServiceInstances(nil, "web")); !reflect.DeepEqual(got, []string{"Canary", "v1", "v2"}) {
		t.Errorf("ServiceTags = %v", got)
	}
	if !a.HasTag("canary") || a.HasTag("v2") {
		t.Error("HasTag")
	}
}

func TestStore_ReadTxnIsASnapshot(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	mustRegister(t, s, 1, inst("web", "web-1", "http"))
	old := s.ReadTxn()
	defer old.Abort()
	mustRegister(t, s, 2, inst("web", "web-2", "http"))
	if n := len(old.ServiceInstances(nil, "web")); n != 1 {
		t.Errorf("old read txn sees %d instances, want 1", n)
	}
	// An aborted write changes nothing.
	tx := s.WriteTxn(3)
	if _, _, e := tx.RegisterInstance(inst("web", "web-3", "http")); e != nil {
		t.Fatal(e)
	}
	tx.Abort()
	cur := s.ReadTxn()
	defer cur.Abort()
	if n := len(cur.ServiceInstances(nil, "web")); n != 2 {
		t.Errorf("current read txn sees %d instances, want 2", n)
	}
}

// fired reports which channels of ws are closed, without waiting: memdb closes
// them synchronously in Commit.
func fired(ws memdb.WatchSet) bool {
	for ch := range ws {
		select {
		case <-ch:
			return true
		default:
		}
	}
	return false
}

func TestStore_WatchesFireOnWrite(t *testing.T) {
	t.Parallel()
	seed := func(t *testing.T) *registry.Store {
		s := registry.NewStore()
		mustRegister(t, s, 1, inst("web", "web-1", "http"))
		mustRegister(t, s, 2, inst("db", "db-1", "postgres"))
		write(t, s, 3, func(tx *registry.Tx) {
			if _, _, e := tx.ConfigSet([]registry.ConfigWrite{{Key: "k", Value: []byte(`1`)}, {Key: "j", Value: []byte(`1`)}}); e != nil {
				t.Fatal(e)
			}
			if _, _, _, e := tx.UpsertRoute(registry.Route{ID: "r", Service: "web"}, false); e != nil {
				t.Fatal(e)
			}
		})
		return s
	}
	tests := []struct {
		name  string
		watch func(tx *registry.Tx, ws memdb.WatchSet)
		write func(t *testing.T, tx *registry.Tx)
		fire  bool
	}{
		{"instances of web on register",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.ServiceInstances(ws, "web") },
			func(t *testing.T, tx *registry.Tx) { tx.RegisterInstance(inst("web", "web-2", "http")) }, true},
		{"instance on status change",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.Instance(ws, "web", "web-1") },
			func(t *testing.T, tx *registry.Tx) { tx.SetStatus("web", "web-1", registry.StatusCritical, "") }, true},
		{"services table index on deregister",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.TableIndex(ws, "services") },
			func(t *testing.T, tx *registry.Tx) { tx.DeregisterInstance("db", "db-1") }, true},
		{"service list on deregister",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.Services(ws) },
			func(t *testing.T, tx *registry.Tx) { tx.DeregisterService("db") }, true},
		{"config key on set",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.ConfigGet(ws, "k") },
			func(t *testing.T, tx *registry.Tx) {
				tx.ConfigSet([]registry.ConfigWrite{{Key: "k", Value: []byte(`2`)}})
			}, true},
		{"missing config key on create",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.ConfigGet(ws, "new") },
			func(t *testing.T, tx *registry.Tx) {
				tx.ConfigSet([]registry.ConfigWrite{{Key: "new", Value: []byte(`2`)}})
			}, true},
		{"config list on delete",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.ConfigList(ws, "") },
			func(t *testing.T, tx *registry.Tx) { tx.ConfigDelete("j", nil) }, true},
		{"routes on delete",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.Routes(ws) },
			func(t *testing.T, tx *registry.Tx) { tx.DeleteRoute("r") }, true},
		{"config key not fired by another key",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.ConfigGet(ws, "k") },
			func(t *testing.T, tx *registry.Tx) {
				tx.ConfigSet([]registry.ConfigWrite{{Key: "j", Value: []byte(`2`)}})
			}, false},
		{"instance not fired by another service",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.Instance(ws, "web", "web-1") },
			func(t *testing.T, tx *registry.Tx) { tx.SetStatus("db", "db-1", registry.StatusCritical, "") }, false},
		{"routes not fired by config",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.Routes(ws); tx.TableIndex(ws, "routes") },
			func(t *testing.T, tx *registry.Tx) {
				tx.ConfigSet([]registry.ConfigWrite{{Key: "k", Value: []byte(`2`)}})
			}, false},
		{"type index on a register of that type",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.TypeIndex(ws, "http") },
			func(t *testing.T, tx *registry.Tx) { tx.RegisterInstance(inst("api", "api-1", "http")) }, true},
		{"type index on the last instance's deregister",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.TypeIndex(ws, "postgres") },
			func(t *testing.T, tx *registry.Tx) { tx.DeregisterInstance("db", "db-1") }, true},
		{"type index not fired by another type",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.TypeIndex(ws, "http") },
			func(t *testing.T, tx *registry.Tx) { tx.SetStatus("db", "db-1", registry.StatusCritical, "") }, false},
		{"service not fired by another service",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.Service(ws, "web") },
			func(t *testing.T, tx *registry.Tx) { tx.RegisterInstance(inst("db", "db-2", "postgres")) }, false},
		{"nothing fires on an aborted write",
			func(tx *registry.Tx, ws memdb.WatchSet) { tx.ConfigGet(ws, "k") },
			nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := seed(t)
			ws := memdb.NewWatchSet()
			rtx := s.ReadTxn()
			tc.watch(rtx, ws)
			rtx.Abort()
			if len(ws) == 0 {
				t.Fatal("no watch channel added")
			}
			if fired(ws) {
				t.Fatal("watch fired before any write")
			}
			if tc.write == nil {
				tx := s.WriteTxn(9)
				tx.ConfigSet([]registry.ConfigWrite{{Key: "k", Value: []byte(`3`)}})
				tx.Abort()
			} else {
				write(t, s, 9, func(tx *registry.Tx) { tc.write(t, tx) })
			}
			if got := fired(ws); got != tc.fire {
				t.Fatalf("fired = %v, want %v", got, tc.fire)
			}
			if tc.fire {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := ws.WatchCtx(ctx); err != nil {
					t.Fatalf("WatchCtx: %v", err)
				}
			}
		})
	}
}

func populate(t *testing.T, s *registry.Store) {
	t.Helper()
	a := inst("web", "web-1", "http")
	a.Metadata = map[string]string{"zone": "a", "rack": "r1", "env": "prod"}
	a.Tags = []string{"v1"}
	a.Checks = []registry.Check{{Kind: registry.CheckHTTP, HTTP: "http://10.0.0.1/h", Interval: "10s", Timeout: "5s", Status: registry.StatusPassing}}
	mustRegister(t, s, 1, a)
	mustRegister(t, s, 2, inst("web", "web-2", "http"))
	mustRegister(t, s, 3, inst("db", "db-1", "postgres"))
	write(t, s, 4, func(tx *registry.Tx) {
		if _, _, e := tx.ConfigSet([]registry.ConfigWrite{{Key: "app/x", Value: []byte(`{"a":1}`)}, {Key: "app/y", Value: []byte(`"s"`)}}); e != nil {
			t.Fatal(e)
		}
		n := 2
		r, e := registry.NormalizeRoute(registry.Route{ID: "r-web", Service: "web", Retries: &n,
			RateLimit: &registry.RateLimit{RPS: 10}, Metadata: map[string]string{"owner": "team-a"}})
		if e != nil {
			t.Fatal(e)
		}
		if _, _, _, e := tx.UpsertRoute(r, true); e != nil {
			t.Fatal(e)
		}
		if _, ok := tx.InitCluster("cluster-1", "secret"); !ok {
			t.Fatal("InitCluster refused on an empty store")
		}
	})
	write(t, s, 5, func(tx *registry.Tx) {
		if _, e := tx.ConfigDelete("app/y", nil); e != nil {
			t.Fatal(e)
		}
		if _, _, e := tx.SetStatus("web", "web-2", registry.StatusWarning, "slow"); e != nil {
			t.Fatal(e)
		}
		if m, ok := tx.InitCluster("cluster-2", "other"); ok || m.ClusterID != "cluster-1" || m.Index != 4 {
			t.Fatalf("second InitCluster changed the identity: %+v %v", m, ok)
		}
	})
}

func TestStore_DumpLoadRoundTrip(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	populate(t, s)
	tx := s.ReadTxn()
	d1 := tx.Dump()
	tx.Abort()
	if len(d1.Services) != 2 || len(d1.Instances) != 3 || len(d1.Config) != 1 || len(d1.Routes) != 1 || d1.Cluster == nil || len(d1.Indexes) != 5 { // config, routes, services, type:http, type:postgres
		t.Fatalf("dump = %+v", d1)
	}

	s2 := registry.NewStore()
	if err := s2.Restore(func(tx *registry.Tx) error { return tx.Load(d1) }); err != nil {
		t.Fatal(err)
	}
	tx2 := s2.ReadTxn()
	defer tx2.Abort()
	d2 := tx2.Dump()
	if !reflect.DeepEqual(d1, d2) {
		t.Fatalf("dump after load differs:\n%+v\n%+v", d1, d2)
	}
	for table, want := range map[string]uint64{"services": 5, "config": 5, "routes": 4} {
		if got := tx2.TableIndex(nil, table); got != want {
			t.Errorf("TableIndex(%s) = %d, want %d", table, got, want)
		}
	}
	if m := tx2.ClusterMeta(); m == nil || m.ClusterID != "cluster-1" || m.Secret != "secret" {
		t.Errorf("cluster meta = %+v", m)
	}
	// The restored store accepts writes as usual.
	write(t, s2, 6, func(tx *registry.Tx) {
		if _, _, e := tx.RegisterInstance(inst("web", "web-3", "grpc")); e == nil || e.Code != registry.CodeTypeConflict {
			t.Errorf("restored service lost its type: %v", e)
		}
	})
}

func TestStore_RestoreWakesAbandonCh(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	populate(t, s)
	old := s.AbandonCh()
	ws := memdb.NewWatchSet()
	ws.Add(old)
	rtx := s.ReadTxn()
	rtx.ServiceInstances(ws, "web")
	rtx.Abort()

	// A failing fill keeps the old state and does not wake anyone.
	boom := errors.New("boom")
	if err := s.Restore(func(tx *registry.Tx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Restore = %v, want boom", err)
	}
	select {
	case <-old:
		t.Fatal("abandon channel closed by a failed restore")
	default:
	}
	if tableIndex(s, "services") != 5 {
		t.Fatal("failed restore changed the state")
	}

	// An empty restore replaces everything and wakes watchers of the old db.
	if err := s.Restore(func(tx *registry.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old:
	default:
		t.Fatal("abandon channel not closed by Restore")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.WatchCtx(ctx); err != nil {
		t.Fatalf("watch set not woken: %v", err)
	}
	if cur := s.AbandonCh(); cur == old {
		t.Fatal("AbandonCh not replaced")
	} else {
		select {
		case <-cur:
			t.Fatal("new abandon channel already closed")
		default:
		}
	}
	tx := s.ReadTxn()
	defer tx.Abort()
	if svcs, insts, cfg, routes := tx.Counts(); svcs+insts+cfg+routes != 0 || tx.ClusterMeta() != nil {
		t.Fatalf("state survived an empty restore: %d %d %d %d", svcs, insts, cfg, routes)
	}
}

// One write transaction can carry several Raft entries (FSM.ApplyBatch):
// every object gets the index of the entry that wrote it.
func TestStore_BatchSetIndex(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	tx := s.WriteTxn(10)
	if tx.Index() != 10 {
		t.Fatalf("Index = %d", tx.Index())
	}
	if _, _, e := tx.RegisterInstance(inst("web", "web-1", "http")); e != nil {
		t.Fatal(e)
	}
	tx.SetIndex(11)
	if _, _, e := tx.ConfigSet([]registry.ConfigWrite{{Key: "k", Value: []byte(`1`)}}); e != nil {
		t.Fatal(e)
	}
	tx.SetIndex(12)
	if _, _, e := tx.RegisterInstance(inst("web", "web-2", "http")); e != nil {
		t.Fatal(e)
	}
	// Reads inside the transaction see its own writes.
	if got := len(tx.ServiceInstances(nil, "web")); got != 2 {
		t.Fatalf("write txn sees %d instances", got)
	}
	tx.Commit()

	r := s.ReadTxn()
	defer r.Abort()
	if in := r.Instance(nil, "web", "web-1"); in.CreateIndex != 10 || in.ModifyIndex != 10 {
		t.Errorf("web-1 = %d/%d", in.CreateIndex, in.ModifyIndex)
	}
	if in := r.Instance(nil, "web", "web-2"); in.CreateIndex != 12 || in.ModifyIndex != 12 {
		t.Errorf("web-2 = %d/%d", in.CreateIndex, in.ModifyIndex)
	}
	if svc := r.Service(nil, "web"); svc.CreateIndex != 10 || svc.ModifyIndex != 12 {
		t.Errorf("service = %+v", svc)
	}
	if e := r.ConfigGet(nil, "k"); e.CreateIndex != 11 || e.ModifyIndex != 11 {
		t.Errorf("config = %+v", e)
	}
	if r.TableIndex(nil, "services") != 12 || r.TableIndex(nil, "config") != 11 || r.TableIndex(nil, "routes") != 0 {
		t.Errorf("table indexes = %d %d %d", r.TableIndex(nil, "services"), r.TableIndex(nil, "config"), r.TableIndex(nil, "routes"))
	}
}

// TestStore_Paging: the Each* walks start after their cursor, keep the
// list order and stop when told.
func TestStore_Paging(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	for i, in := range []registry.Instance{
		inst("web", "w1", "http"), inst("web", "w2", "http"), inst("web-x", "x1", "http"),
		inst("api", "a1", "http"), inst("db", "d1", "postgres"), inst("web", "w3", "http"),
	} {
		if in.ID == "w2" || in.ID == "d1" {
			in.Node = "n2"
		}
		mustRegister(t, s, uint64(i+1), in)
	}
	write(t, s, 7, func(tx *registry.Tx) {
		tx.SetStatus("web", "w3", registry.StatusCritical, "")
		tx.SetStatus("api", "a1", registry.StatusCritical, "")
		tx.SetStatus("web", "w1", registry.StatusWarning, "")
	})
	tx := s.ReadTxn()
	defer tx.Abort()
	collect := func(limit int, walk func(fn func(*registry.Instance) bool)) []string {
		var out []string
		walk(func(in *registry.Instance) bool {
			out = append(out, in.Service+"/"+in.ID)
			return len(out) < limit
		})
		return out
	}
	services := func(after string, limit int) []string {
		var out []string
		tx.EachService(after, func(svc *registry.Service) bool {
			out = append(out, svc.Name)
			return len(out) < limit
		})
		return out
	}
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"services", services("", 10), []string{"api", "db", "web", "web-x"}},
		{"services after db", services("db", 10), []string{"web", "web-x"}},
		{"services after web, limit 1", services("web", 1), []string{"web-x"}},
		{"services after a missing name", services("c", 10), []string{"db", "web", "web-x"}},
		{"instances of web", collect(10, func(fn func(*registry.Instance) bool) { tx.EachServiceInstance("web", "", fn) }),
			[]string{"web/w1", "web/w2", "web/w3"}},
		{"instances of web after w1", collect(10, func(fn func(*registry.Instance) bool) { tx.EachServiceInstance("web", "w1", fn) }),
			[]string{"web/w2", "web/w3"}},
		{"instances of web after w3", collect(10, func(fn func(*registry.Instance) bool) { tx.EachServiceInstance("web", "w3", fn) }), nil},
		{"http", collect(10, func(fn func(*registry.Instance) bool) { tx.EachInstanceOfType("http", "", "", fn) }),
			[]string{"api/a1", "web/w1", "web/w2", "web/w3", "web-x/x1"}},
		{"http after web/w2, limit 2", collect(2, func(fn func(*registry.Instance) bool) { tx.EachInstanceOfType("http", "web", "w2", fn) }),
			[]string{"web/w3", "web-x/x1"}},
		{"http after web/w3", collect(10, func(fn func(*registry.Instance) bool) { tx.EachInstanceOfType("http", "web", "w3", fn) }),
			[]string{"web-x/x1"}},
		{"http after a missing service", collect(10, func(fn func(*registry.Instance) bool) { tx.EachInstanceOfType("http", "b", "zz", fn) }),
			[]string{"web/w1", "web/w2", "web/w3", "web-x/x1"}},
		{"postgres", collect(10, func(fn func(*registry.Instance) bool) { tx.EachInstanceOfType("postgres", "", "", fn) }), []string{"db/d1"}},
		{"unknown type", collect(10, func(fn func(*registry.Instance) bool) { tx.EachInstanceOfType("grpc", "", "", fn) }), nil},
		{"node n2", collect(10, func(fn func(*registry.Instance) bool) { tx.EachInstanceOfNode("n2", fn) }), []string{"db/d1", "web/w2"}},
		{"critical", collect(10, func(fn func(*registry.Instance) bool) { tx.EachCriticalInstance(fn) }), []string{"api/a1", "web/w3"}},
	}
	for _, tc := range tests {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestStore_PagingConfigAndRoutes: config by prefix and routes from a
// cursor, in key order, stopping when told.
func TestStore_PagingConfigAndRoutes(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	write(t, s, 1, func(tx *registry.Tx) {
		var ws []registry.ConfigWrite
		for _, k := range []string{"a", "app", "app/x", "app/y", "app/z", "app2/x", "b"} {
			ws = append(ws, registry.ConfigWrite{Key: k, Value: []byte(`1`)})
		}
		if _, _, e := tx.ConfigSet(ws); e != nil {
			t.Fatal(e)
		}
		for _, id := range []string{"r1", "r2", "r3"} {
			if _, _, _, e := tx.UpsertRoute(registry.Route{ID: id, Service: "web"}, false); e != nil {
				t.Fatal(e)
			}
		}
	})
	tx := s.ReadTxn()
	defer tx.Abort()
	keys := func(prefix, after string, limit int) []string {
		var out []string
		tx.EachConfig(prefix, after, func(e *registry.ConfigEntry) bool {
			out = append(out, e.Key)
			return len(out) < limit
		})
		return out
	}
	routes := func(after string) []string {
		var out []string
		tx.EachRoute(after, func(r *registry.Route) bool {
			out = append(out, r.ID)
			return true
		})
		return out
	}
	tests := []struct {
		name      string
		got, want []string
	}{
		{"all", keys("", "", 10), []string{"a", "app", "app/x", "app/y", "app/z", "app2/x", "b"}},
		{"prefix app/", keys("app/", "", 10), []string{"app/x", "app/y", "app/z"}},
		{"prefix app", keys("app", "", 10), []string{"app", "app/x", "app/y", "app/z", "app2/x"}},
		{"prefix app/ after app/x", keys("app/", "app/x", 10), []string{"app/y", "app/z"}},
		{"prefix app/ after app/z", keys("app/", "app/z", 10), nil},
		{"prefix app/ after a (before the prefix)", keys("app/", "a", 10), []string{"app/x", "app/y", "app/z"}},
		{"prefix app/, limit 2", keys("app/", "", 2), []string{"app/x", "app/y"}},
		{"no match", keys("c", "", 10), nil},
		{"routes", routes(""), []string{"r1", "r2", "r3"}},
		{"routes after r1", routes("r1"), []string{"r2", "r3"}},
		{"routes after r3", routes("r3"), nil},
	}
	for _, tc := range tests {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}
