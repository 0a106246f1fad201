package consul

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/nexus/nexus/registry"
)

func TestParseLockDelay(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want string
		bad      bool
	}{
		{``, "", false},
		{`null`, "", false},
		{`"15s"`, "15s", false},
		{`"1500ms"`, "1.5s", false}, // the Go client's durToMsec
		{`"0s"`, "0s", false},
		{`15`, "15s", false},        // below 1000: seconds
		{`999`, "16m39s", false},    // still seconds (Nexus then refuses > 60s)
		{`1000`, "1µs", false},      // from 1000 on: nanoseconds
		{`2000000000`, "2s", false}, // nanoseconds, as Consul answers it
		{`"15"`, "", true},          // a string needs a unit
		{`"soon"`, "", true},
		{`1.5`, "", true}, // not a whole number
		{`{"s":1}`, "", true},
		{`true`, "", true},
		{`-5`, "-5ns", false}, // negative: NormalizeSession refuses it
		{`9223372036854775807`, "2562047h47m16.854775807s", false}, // refused as out of range later
	}
	for _, c := range cases {
		got, a := parseLockDelay(json.RawMessage(c.in))
		if (a != nil) != c.bad || got != c.want {
			t.Errorf("parseLockDelay(%s) = %q, %v; want %q, bad %v", c.in, got, a, c.want, c.bad)
		}
		if a != nil && a.field != "LockDelay" {
			t.Errorf("parseLockDelay(%s) names %q", c.in, a.field)
		}
	}
}

func TestSessionChecks(t *testing.T) {
	t.Parallel()
	list := func(s ...string) *[]string { return &s }
	cases := []struct {
		name  string
		in    sessionCreate
		field string // "" = accepted
	}{
		{"none", sessionCreate{}, ""},
		{"serfHealth", sessionCreate{NodeChecks: list(serfHealth)}, ""},
		{"legacy serfHealth", sessionCreate{Checks: list(serfHealth, serfHealth)}, ""},
		{"no node checks", sessionCreate{NodeChecks: list()}, "NodeChecks"},
		{"no legacy checks", sessionCreate{Checks: list()}, "Checks"},
		{"another node check", sessionCreate{NodeChecks: list(serfHealth, "disk")}, "NodeChecks[1]"},
		{"a legacy service check", sessionCreate{Checks: list("service:web")}, "Checks[0]"},
		{"service checks", sessionCreate{ServiceChecks: []serviceCheck{{ID: "service:web"}}}, "ServiceChecks"},
		{"empty service checks", sessionCreate{ServiceChecks: []serviceCheck{}}, ""},
	}
	for _, c := range cases {
		a := sessionChecks(&c.in)
		switch {
		case c.field == "" && a != nil:
			t.Errorf("%s: refused: %v", c.name, a)
		case c.field != "" && (a == nil || a.field != c.field || a.status != 400):
			t.Errorf("%s: %+v, want 400 naming %s", c.name, a, c.field)
		}
	}
}

// TestMapTxnOp: each Consul verb becomes one native op (so OpIndex is the
// same on both sides), values keep their bytes, reads ask for bytes.
func TestMapTxnOp(t *testing.T) {
	t.Parallel()
	u := func(n uint64) *uint64 { return &n }
	const sid = "0b5e6c43-1f9a-4f2e-9d55-0e1c3e3c7a11"
	bin := []byte{0, 0xff}
	cases := []struct {
		in    kvTxnOp
		want  registry.TxnOp
		field string
	}{
		{kvTxnOp{Verb: "set", Key: "k", Value: []byte(`{"a":1}`), Flags: 3},
			registry.TxnOp{Op: "set", Key: "k", Value: []byte(`{"a":1}`), KV: &registry.TxnKV{Flags: 3}}, ""},
		{kvTxnOp{Verb: "set", Key: "k", Value: bin},
			registry.TxnOp{Op: "set", Key: "k", Value: bin, KV: &registry.TxnKV{Raw: true}}, ""},
		{kvTxnOp{Verb: "set", Key: "k"},
			registry.TxnOp{Op: "set", Key: "k", KV: &registry.TxnKV{Raw: true}}, ""},
		{kvTxnOp{Verb: "cas", Key: "k", Value: bin, Index: 0},
			registry.TxnOp{Op: "cas", Key: "k", Value: bin, Index: u(0), KV: &registry.TxnKV{Raw: true}}, ""},
		{kvTxnOp{Verb: "lock", Key: "k", Session: sid, Flags: 9},
			registry.TxnOp{Op: "lock", Key: "k", Session: sid, KV: &registry.TxnKV{Raw: true, Flags: 9}}, ""},
		{kvTxnOp{Verb: "unlock", Key: "k", Session: sid, Value: []byte("x")},
			registry.TxnOp{Op: "unlock", Key: "k", Session: sid, Value: []byte("x"), KV: &registry.TxnKV{Raw: true}}, ""},
		{kvTxnOp{Verb: "get", Key: "k"}, registry.TxnOp{Op: "get", Key: "k", KV: &registry.TxnKV{}}, ""},
		{kvTxnOp{Verb: "get-or-empty", Key: "k"}, registry.TxnOp{Op: "get-or-empty", Key: "k", KV: &registry.TxnKV{}}, ""},
		{kvTxnOp{Verb: "get-tree", Key: "k/"}, registry.TxnOp{Op: "get-tree", Key: "k/", KV: &registry.TxnKV{}}, ""},
		{kvTxnOp{Verb: "check-index", Key: "k", Index: 7}, registry.TxnOp{Op: "check-index", Key: "k", Index: u(7)}, ""},
		{kvTxnOp{Verb: "check-session", Key: "k", Session: sid}, registry.TxnOp{Op: "check-session", Key: "k", Session: sid}, ""},
		{kvTxnOp{Verb: "check-not-exists", Key: "k"}, registry.TxnOp{Op: "check-not-exists", Key: "k"}, ""},
		{kvTxnOp{Verb: "delete", Key: "k"}, registry.TxnOp{Op: "delete", Key: "k"}, ""},
		{kvTxnOp{Verb: "delete-tree", Key: "k/"}, registry.TxnOp{Op: "delete-tree", Key: "k/"}, ""},
		{kvTxnOp{Verb: "delete-cas", Key: "k", Index: 5}, registry.TxnOp{Op: "delete", Key: "k", Index: u(5)}, ""},
		{kvTxnOp{Verb: "delete-cas", Key: "k", Index: 0}, registry.TxnOp{Op: "check-not-exists", Key: "k"}, ""},
		{kvTxnOp{Verb: "lock", Key: "k"}, registry.TxnOp{}, "[2].KV.Session"},
		{kvTxnOp{Verb: "check-session", Key: "k", Session: "a b"}, registry.TxnOp{}, "[2].KV.Session"},
		{kvTxnOp{Verb: "", Key: "k"}, registry.TxnOp{}, "[2].KV.Verb"},
		{kvTxnOp{Verb: "put", Key: "k"}, registry.TxnOp{}, "[2].KV.Verb"},
		{kvTxnOp{Verb: "get", Key: "a b"}, registry.TxnOp{}, "[2].KV.Key"},
		{kvTxnOp{Verb: "get-tree", Key: ""}, registry.TxnOp{}, "[2].KV.Key"},
		{kvTxnOp{Verb: "set", Key: "k", Value: make([]byte, registry.MaxConfigValueLen+1)}, registry.TxnOp{}, "[2].KV.Value"},
	}
	for _, c := range cases {
		got, a := mapTxnOp(2, &c.in)
		if c.field != "" {
			if a == nil || a.field != c.field {
				t.Errorf("%+v: %+v, want an error naming %s", c.in, a, c.field)
			}
			continue
		}
		if a != nil {
			t.Errorf("%+v: %v", c.in, a)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v (kv %+v), want %+v (kv %+v)", c.in.Verb, got, got.KV, c.want, c.want.KV)
		}
		if e := registry.ValidateTxn([]registry.TxnOp{got}); e != nil {
			t.Errorf("%s: the native op is invalid: %v", c.in.Verb, e)
		}
	}
}

// TestConsulResults: which verbs answer a KV result, and with a value.
func TestConsulResults(t *testing.T) {
	t.Parallel()
	entry := &nativeEntry{Key: "k", Value: json.RawMessage(`{"raw_base64":"AP8="}`), CreateIndex: 2, ModifyIndex: 5,
		LockIndex: 1, Session: "s", Flags: 4}
	one := nativeResult{Entry: entry}
	tree := nativeResult{Entries: []nativeEntry{*entry, *entry}}
	cases := []struct {
		verb      string
		res       nativeResult
		n         int
		withValue bool
	}{
		{verbGet, one, 1, true}, {verbGetOrEmpty, one, 1, true}, {verbGetOrEmpty, nativeResult{}, 0, false},
		{verbGetTree, tree, 2, true}, {verbGetTree, nativeResult{}, 0, false},
		{verbSet, one, 1, false}, {verbCAS, one, 1, false}, {verbLock, one, 1, false}, {verbUnlock, one, 1, false},
		{verbCheckIndex, one, 1, false}, {verbCheckSession, one, 1, false},
		{verbCheckNotExists, nativeResult{}, 0, false}, {verbDelete, nativeResult{}, 0, false},
		{verbDeleteTree, nativeResult{}, 0, false}, {verbDeleteCAS, nativeResult{}, 0, false},
	}
	for _, c := range cases {
		got := consulResults(c.verb, c.res)
		if len(got) != c.n {
			t.Errorf("%s: %d results, want %d", c.verb, len(got), c.n)
			continue
		}
		for _, r := range got {
			p := r.KV
			if p.Key != "k" || p.CreateIndex != 2 || p.ModifyIndex != 5 || p.LockIndex != 1 || p.Session != "s" || p.Flags != 4 {
				t.Errorf("%s: pair %+v", c.verb, p)
			}
			if c.withValue != (string(p.Value) == "\x00\xff") || !c.withValue && p.Value != nil {
				t.Errorf("%s: value %q, want it: %v", c.verb, p.Value, c.withValue)
			}
		}
	}
}
