package registry

import (
	"bytes"
	"testing"

	"github.com/hashicorp/go-memdb"
)

// The typed index keys are the keys memdb's StringFieldIndex made (the
// store's data and queries do not depend on which one built them).
func TestStringIndexMatchesStringFieldIndex(t *testing.T) {
	typed := byString(func(e *ConfigEntry) string { return e.Key })
	reflected := &memdb.StringFieldIndex{Field: "Key"}
	for _, key := range []string{"", "a", "app/db/url", "ünï/\x01"} {
		e := &ConfigEntry{Key: key}
		ok1, b1, err1 := typed.FromObject(e)
		ok2, b2, err2 := reflected.FromObject(e)
		if ok1 != ok2 || !bytes.Equal(b1, b2) || (err1 == nil) != (err2 == nil) {
			t.Errorf("FromObject(%q): %v %q %v, StringFieldIndex %v %q %v", key, ok1, b1, err1, ok2, b2, err2)
		}
		a1, _ := typed.FromArgs(key)
		a2, _ := reflected.FromArgs(key)
		p1, _ := typed.PrefixFromArgs(key)
		p2, _ := reflected.PrefixFromArgs(key)
		if !bytes.Equal(a1, a2) || !bytes.Equal(p1, p2) {
			t.Errorf("args(%q): %q %q, StringFieldIndex %q %q", key, a1, p1, a2, p2)
		}
	}
	if _, _, err := typed.FromObject(&Route{}); err == nil {
		t.Error("an object of another type was indexed")
	}
	if _, err := typed.FromArgs(1); err == nil {
		t.Error("a non-string argument was accepted")
	}
}
