package apikey

import "testing"

func TestBuilder(t *testing.T) {
	b := NewBuilder()
	b.Add(ConfigPrefix+"alice", []byte(`"alice-key-0123456789"`))
	b.Add(ConfigPrefix+"svc", []byte(`{"key":"svc-key-0123456789abc","consumer":"billing","routes":["r1"]}`))
	b.Add(ConfigPrefix+"short", []byte(`"tooshort"`))
	b.Add(ConfigPrefix+"bad", []byte(`42`))
	set, err := b.Build()
	if err == nil || set.Len() != 2 {
		t.Fatalf("set of %d keys, err %v; want 2 keys and errors for short and bad", set.Len(), err)
	}
	cases := []struct {
		key, consumer, route string
		found, allowed       bool
	}{
		{"alice-key-0123456789", "alice", "any", true, true},
		{"svc-key-0123456789abc", "billing", "r1", true, true},
		{"svc-key-0123456789abc", "billing", "r2", true, false},
		{"alice-key-012345678", "", "", false, false},
		{"", "", "", false, false},
	}
	for _, c := range cases {
		got, ok := set.Lookup([]byte(c.key))
		if ok != c.found || got.Name != c.consumer || (ok && got.Allows(c.route) != c.allowed) {
			t.Errorf("Lookup(%q) = %+v %v", c.key, got, ok)
		}
	}
}
