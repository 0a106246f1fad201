package registry_test

import (
	"encoding/json"
	"testing"

	"github.com/nexus/nexus/registry"
)

// TestConfigEntry_JSON: JSON values answer as before; raw values answer as
// {"raw_base64":...} with "raw":true; flags show only when set.
func TestConfigEntry_JSON(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		entry registry.ConfigEntry
		want  string
	}{
		{"json value", registry.ConfigEntry{Key: "a", Value: []byte(`{"x":[1,2]}`), CreateIndex: 2, ModifyIndex: 3},
			`{"key":"a","value":{"x":[1,2]},"modify_index":3}`},
		{"json with flags", registry.ConfigEntry{Key: "a", Value: []byte(`"s"`), ModifyIndex: 3, Flags: 9},
			`{"key":"a","value":"s","modify_index":3,"flags":9}`},
		{"raw bytes", registry.ConfigEntry{Key: "b", Value: []byte("hello\x00"), ModifyIndex: 4, Raw: true},
			`{"key":"b","value":{"raw_base64":"aGVsbG8A"},"modify_index":4,"raw":true}`},
		{"empty raw", registry.ConfigEntry{Key: "c", Value: []byte{}, ModifyIndex: 5, Raw: true},
			`{"key":"c","value":{"raw_base64":""},"modify_index":5,"raw":true}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range []any{c.entry, &c.entry} {
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				if string(b) != c.want {
					t.Errorf("%T: got %s, want %s", v, b, c.want)
				}
			}
		})
	}
}

func TestStore_ConfigDeletePrefix(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	write(t, s, 1, func(tx *registry.Tx) {
		if _, _, e := tx.ConfigSet([]registry.ConfigWrite{{Key: "a/1", Value: []byte(`1`)}, {Key: "a/2", Value: []byte("x"), Raw: true, Flags: 3}, {Key: "ab", Value: []byte(`2`)}}); e != nil {
			t.Fatal(e)
		}
	})
	write(t, s, 2, func(tx *registry.Tx) {
		prevs, e := tx.ConfigDeletePrefix("a/")
		if e != nil || len(prevs) != 2 || prevs[0].Key != "a/1" || prevs[1].Key != "a/2" || !prevs[1].Raw || prevs[1].Flags != 3 {
			t.Fatalf("deleted %+v, %v", prevs, e)
		}
		if prevs, e := tx.ConfigDeletePrefix("zz"); e != nil || len(prevs) != 0 {
			t.Fatalf("deleting nothing: %+v, %v", prevs, e)
		}
	})
	if got := tableIndex(s, "config"); got != 2 {
		t.Errorf("config index = %d, want 2", got)
	}
	tx := s.ReadTxn()
	defer tx.Abort()
	if l := tx.ConfigList(nil, ""); len(l) != 1 || l[0].Key != "ab" {
		t.Errorf("left: %+v", l)
	}
}

func TestStore_InstancesByID(t *testing.T) {
	t.Parallel()
	s := registry.NewStore()
	mustRegister(t, s, 1, inst("web", "x-1", "http"))
	mustRegister(t, s, 2, inst("api", "x-1", "http"))
	mustRegister(t, s, 3, inst("web", "x-2", "http"))
	tx := s.ReadTxn()
	defer tx.Abort()
	got := tx.InstancesByID(nil, "x-1")
	if len(got) != 2 || got[0].Service != "api" || got[1].Service != "web" {
		t.Fatalf("InstancesByID(x-1) = %+v", got)
	}
	if got := tx.InstancesByID(nil, "nope"); len(got) != 0 {
		t.Fatalf("InstancesByID(nope) = %+v", got)
	}
}
