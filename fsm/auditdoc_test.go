package fsm

import (
	"encoding/json"
	"testing"

	"github.com/nexus/nexus/registry"
)

// TestConfigDocAsMarshal: the hand-written audit document of a config
// entry is byte for byte json.Marshal's, so replicas of different versions
// keep equal audit records.
func TestConfigDocAsMarshal(t *testing.T) {
	for _, e := range []registry.ConfigEntry{
		{Key: "app/k1", Value: []byte(`"v"`), CreateIndex: 3, ModifyIndex: 9},
		{Key: "app/k1", Value: []byte(`{"a":[1,2.5,"x"],"b":null}`), CreateIndex: 1, ModifyIndex: 1},
		{Key: "k", Value: []byte(`{"a": 1}`)}, // Marshal compacts: the slow path
		{Key: "k", Value: []byte(`"<b>&"`)},   // Marshal escapes HTML
		{Key: "k", Value: []byte(`not json`)}, // Marshal fails: "null"
		{Key: "k", Value: nil},
		{Key: "held", Value: []byte(`true`), Session: "s-1", LockIndex: 4, Flags: 42, CreateIndex: 2, ModifyIndex: 7},
		{Key: "odd<key>\"é", Value: []byte(`1`), Session: "a&b"},
		{Key: "raw", Value: []byte{0, 1, 2, 0xff, '<'}, Raw: true},
		{Key: "raw-empty", Value: nil, Raw: true, Flags: 1},
	} {
		checkConfigDoc(t, &e)
	}
}

func checkConfigDoc(t *testing.T, e *registry.ConfigEntry) {
	t.Helper()
	want, err := json.Marshal(configDocOf(e))
	if err != nil {
		want = []byte("null")
	}
	if got := auditJSON(e); string(got) != string(want) {
		t.Fatalf("audit document of %+v:\n got %s\nwant %s", e, got, want)
	}
}

func FuzzConfigDocAsMarshal(f *testing.F) {
	f.Add("app/k", []byte(`"v"`), "", uint64(1), uint64(2), uint64(0), false, uint64(0))
	f.Add("k<", []byte(`{"a": [1]}`), "s", uint64(0), uint64(0), uint64(3), true, uint64(9))
	f.Fuzz(func(t *testing.T, key string, value []byte, session string, create, modify, lock uint64, raw bool, flags uint64) {
		checkConfigDoc(t, &registry.ConfigEntry{Key: key, Value: value, Session: session, CreateIndex: create,
			ModifyIndex: modify, LockIndex: lock, Raw: raw, Flags: flags})
	})
}
