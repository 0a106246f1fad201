package registry

import (
	"bytes"
	"testing"
)

// configJSONCases are entries whose JSON AppendJSON must give exactly as
// encoding/json's reflection does: the fast paths and every fallback.
var configJSONCases = []struct {
	name  string
	entry ConfigEntry
}{
	{"string value", ConfigEntry{Key: "k", Value: []byte(`"v"`), CreateIndex: 1, ModifyIndex: 2}},
	{"object value", ConfigEntry{Key: "app/db", Value: []byte(`{"x":[1,2.5e3,true,null],"y":{}}`), ModifyIndex: 7}},
	{"value with spaces (compacted)", ConfigEntry{Key: "a", Value: []byte("{ \"x\" :\n [1, 2] }"), ModifyIndex: 3}},
	{"value with html (escaped)", ConfigEntry{Key: "a", Value: []byte(`"<b>&</b>"`), ModifyIndex: 3}},
	{"value with unicode", ConfigEntry{Key: "a", Value: []byte(`"é\u2028"`), ModifyIndex: 3}},
	{"nil value", ConfigEntry{Key: "a", ModifyIndex: 3}},
	{"key needing escapes", ConfigEntry{Key: "a\"<é>\x01", Value: []byte(`1`), ModifyIndex: 3}},
	{"invalid utf-8 key", ConfigEntry{Key: "a\xff", Value: []byte(`1`), ModifyIndex: 3}},
	{"session and lock", ConfigEntry{Key: "lock", Value: []byte(`"held"`), ModifyIndex: 9, Session: "5f2c-<x>", LockIndex: 4}},
	{"flags", ConfigEntry{Key: "f", Value: []byte(`0`), ModifyIndex: 1, Flags: 1<<64 - 1}},
	{"raw", ConfigEntry{Key: "r", Value: []byte("\x00\xff binary"), ModifyIndex: 2, Raw: true, Flags: 3}},
	{"raw nil", ConfigEntry{Key: "r", ModifyIndex: 2, Raw: true}},
	{"everything", ConfigEntry{Key: "e", Value: []byte(`[]`), CreateIndex: 5, ModifyIndex: 6, Session: "s", LockIndex: 1, Flags: 2}},
	{"invalid value", ConfigEntry{Key: "bad", Value: []byte(`{"x":`), ModifyIndex: 1}},
	{"empty value", ConfigEntry{Key: "empty", Value: []byte{}, ModifyIndex: 1}},
}

// TestConfigEntryAppendJSONAsReflect: AppendJSON appends byte for byte
// what encoding/json's reflection encodes, and fails where it fails,
// leaving what was in dst before.
func TestConfigEntryAppendJSONAsReflect(t *testing.T) {
	t.Parallel()
	for _, c := range configJSONCases {
		t.Run(c.name, func(t *testing.T) {
			checkConfigJSON(t, c.entry)
		})
	}
}

func checkConfigJSON(t *testing.T, e ConfigEntry) {
	t.Helper()
	want, wantErr := e.marshalReflect()
	prefix := []byte("prefix:")
	got, err := e.AppendJSON(bytes.Clone(prefix))
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%+v: error %v, reflection's %v", e, err, wantErr)
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("%+v: dst's bytes lost: %q", e, got)
	}
	if wantErr == nil && !bytes.Equal(got[len(prefix):], want) {
		t.Fatalf("%+v:\n got %s\nwant %s", e, got[len(prefix):], want)
	}
}

func FuzzConfigEntryAppendJSON(f *testing.F) {
	for _, c := range configJSONCases {
		f.Add(c.entry.Key, []byte(c.entry.Value), c.entry.Session, c.entry.Raw, c.entry.Flags, c.entry.LockIndex)
	}
	f.Fuzz(func(t *testing.T, key string, value []byte, session string, raw bool, flags, lock uint64) {
		checkConfigJSON(t, ConfigEntry{Key: key, Value: value, Session: session, Raw: raw, Flags: flags, LockIndex: lock, ModifyIndex: lock ^ flags})
	})
}
