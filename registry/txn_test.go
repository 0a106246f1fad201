package registry_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/nexus/nexus/registry"
)

func TestValidateTxn(t *testing.T) {
	t.Parallel()
	v := json.RawMessage(`1`)
	many := make([]registry.TxnOp, registry.MaxTxnOps+1)
	for i := range many {
		many[i] = registry.TxnOp{Op: "get", Key: "k"}
	}
	cases := []struct {
		name  string
		ops   []registry.TxnOp
		field string // "" = valid
	}{
		{"every op", []registry.TxnOp{
			{Op: "get", Key: "a"}, {Op: "set", Key: "a", Value: v}, {Op: "cas", Key: "a", Value: v, Index: u64(0)},
			{Op: "delete", Key: "a"}, {Op: "delete", Key: "a", Index: u64(3)}, {Op: "delete-tree", Key: "a/"},
			{Op: "check-index", Key: "a", Index: u64(1)}, {Op: "check-not-exists", Key: "a"},
			{Op: "check-session", Key: "a", Session: "s"}, {Op: "lock", Key: "a", Session: "s"},
			{Op: "lock", Key: "a", Session: "s", Value: v}, {Op: "unlock", Key: "a", Session: "s"},
			{Op: "get-tree", Key: "a/"}, {Op: "get-or-empty", Key: "a"},
		}, ""},
		{"kv writes", []registry.TxnOp{
			{Op: "set", Key: "a", KV: &registry.TxnKV{Raw: true}}, {Op: "set", Key: "a", Value: []byte{0, 1}, KV: &registry.TxnKV{Raw: true, Flags: 3}},
			{Op: "cas", Key: "a", Value: v, Index: u64(0), KV: &registry.TxnKV{}},
			{Op: "lock", Key: "a", Session: "s", KV: &registry.TxnKV{Raw: true}}, {Op: "unlock", Key: "a", Session: "s", KV: &registry.TxnKV{Raw: true}},
		}, ""},
		{"kv on a read", []registry.TxnOp{{Op: "get", Key: "a", KV: &registry.TxnKV{}}, {Op: "get-tree", Key: "a", KV: &registry.TxnKV{}}}, ""},
		{"kv with flags on a read", []registry.TxnOp{{Op: "get", Key: "a", KV: &registry.TxnKV{Flags: 1}}}, "ops[0].kv"},
		{"kv on a check", []registry.TxnOp{{Op: "check-not-exists", Key: "a", KV: &registry.TxnKV{}}}, "ops[0].kv"},
		{"kv json without value", []registry.TxnOp{{Op: "lock", Key: "a", Session: "s", KV: &registry.TxnKV{}}}, "ops[0].value"},
		{"kv json not json", []registry.TxnOp{{Op: "set", Key: "a", Value: []byte("x"), KV: &registry.TxnKV{}}}, "ops[0].value"},
		{"kv raw too large", []registry.TxnOp{{Op: "set", Key: "a", Value: make([]byte, registry.MaxConfigValueLen+1), KV: &registry.TxnKV{Raw: true}}}, "ops[0].value"},
		{"get-tree with index", []registry.TxnOp{{Op: "get-tree", Key: "a", Index: u64(1)}}, "ops[0].index"},
		{"empty", nil, "ops"},
		{"too many", many, "ops"},
		{"no op", []registry.TxnOp{{Key: "a"}}, "ops[0].op"},
		{"unknown op", []registry.TxnOp{{Op: "get", Key: "a"}, {Op: "put", Key: "a"}}, "ops[1].op"},
		{"bad key", []registry.TxnOp{{Op: "get", Key: "/a"}}, "ops[0].key"},
		{"no key", []registry.TxnOp{{Op: "delete-tree"}}, "ops[0].key"},
		{"set without value", []registry.TxnOp{{Op: "set", Key: "a"}}, "ops[0].value"},
		{"get with value", []registry.TxnOp{{Op: "get", Key: "a", Value: v}}, "ops[0].value"},
		{"invalid value", []registry.TxnOp{{Op: "set", Key: "a", Value: json.RawMessage(`{`)}}, "ops[0].value"},
		{"cas without index", []registry.TxnOp{{Op: "cas", Key: "a", Value: v}}, "ops[0].index"},
		{"check-index without index", []registry.TxnOp{{Op: "check-index", Key: "a"}}, "ops[0].index"},
		{"set with index", []registry.TxnOp{{Op: "set", Key: "a", Value: v, Index: u64(1)}}, "ops[0].index"},
		{"lock without session", []registry.TxnOp{{Op: "lock", Key: "a"}}, "ops[0].session"},
		{"bad session", []registry.TxnOp{{Op: "check-session", Key: "a", Session: "a b"}}, "ops[0].session"},
		{"get with session", []registry.TxnOp{{Op: "get", Key: "a", Session: "s"}}, "ops[0].session"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := registry.ValidateTxn(c.ops)
			if c.field == "" {
				wantCode(t, e, "")
				return
			}
			wantCode(t, e, registry.CodeInvalid)
			if e.Field != c.field {
				t.Fatalf("field = %q, want %q (%s)", e.Field, c.field, e.Message)
			}
		})
	}
}

// txnStore has a=1 (index 1), b/1, b/2, b/3 (2), session s holding l (4)
// and session o (5).
func txnStore(t *testing.T) *registry.Store {
	t.Helper()
	s := registry.NewStore()
	write(t, s, 1, func(tx *registry.Tx) {
		_, _, e := tx.ConfigSet([]registry.ConfigWrite{{Key: "a", Value: []byte(`1`)}})
		wantCode(t, e, "")
	})
	write(t, s, 2, func(tx *registry.Tx) {
		_, _, e := tx.ConfigSet([]registry.ConfigWrite{{Key: "b/1", Value: []byte(`1`)}, {Key: "b/2", Value: []byte(`2`)}, {Key: "b/3", Value: []byte(`3`)}})
		wantCode(t, e, "")
	})
	newSession(t, s, 3, "s", "release", "0s")
	lock(t, s, 4, "l", "s", false)
	newSession(t, s, 5, "o", "release", "0s")
	return s
}

func runTxn(t *testing.T, s *registry.Store, idx uint64, ops []registry.TxnOp, check registry.TxnCheck) ([]registry.TxnResult, []registry.TxnChange, *registry.TxnConflict, *registry.Error) {
	t.Helper()
	var (
		res  []registry.TxnResult
		chg  []registry.TxnChange
		conf *registry.TxnConflict
		err  *registry.Error
	)
	write(t, s, idx, func(tx *registry.Tx) { res, chg, conf, err = tx.Txn(ops, check) })
	return res, chg, conf, err
}

// TestTxn_AllOrNothing: whichever op fails, the store (every table) is
// exactly as before, and the conflict names that op.
func TestTxn_AllOrNothing(t *testing.T) {
	t.Parallel()
	v := json.RawMessage(`"new"`)
	writes := []registry.TxnOp{
		{Op: "set", Key: "a", Value: v}, {Op: "delete-tree", Key: "b/"}, {Op: "set", Key: "c", Value: v},
		{Op: "lock", Key: "m", Session: "s"}, {Op: "unlock", Key: "l", Session: "s"},
	}
	failing := []struct {
		name   string
		op     registry.TxnOp
		reason string
	}{
		{"check-index", registry.TxnOp{Op: "check-index", Key: "a", Index: u64(99)}, ""},
		{"check-not-exists", registry.TxnOp{Op: "check-not-exists", Key: "a"}, ""},
		{"check-session", registry.TxnOp{Op: "check-session", Key: "l", Session: "o"}, ""},
		{"cas", registry.TxnOp{Op: "cas", Key: "a", Value: v, Index: u64(0)}, ""},
		{"get missing", registry.TxnOp{Op: "get", Key: "nope"}, ""},
		{"delete cas", registry.TxnOp{Op: "delete", Key: "a", Index: u64(7)}, ""},
		{"lock held", registry.TxnOp{Op: "lock", Key: "l", Session: "o"}, registry.LockHeld},
		{"lock by a missing session", registry.TxnOp{Op: "lock", Key: "z", Session: "gone"}, registry.LockNoSession},
		{"unlock by a non-holder", registry.TxnOp{Op: "unlock", Key: "l", Session: "o"}, registry.LockNotHolder},
	}
	for _, f := range failing {
		t.Run(f.name, func(t *testing.T) {
			s := txnStore(t)
			tx := s.ReadTxn()
			before := tx.Dump()
			tx.Abort()
			// The failing op comes after writes that would have succeeded.
			ops := append(append([]registry.TxnOp{}, writes[:3]...), f.op, writes[3])
			res, chg, conf, err := runTxn(t, s, 6, ops, nil)
			wantCode(t, err, "")
			if conf == nil || res != nil || chg != nil {
				t.Fatalf("conflict = %+v, results %+v", conf, res)
			}
			if conf.OpIndex != 3 || conf.Op != f.op.Op || conf.Key != f.op.Key || conf.Reason != f.reason ||
				!strings.HasPrefix(conf.Message, fmt.Sprintf("ops[3] (%s %s): ", f.op.Op, f.op.Key)) {
				t.Fatalf("conflict = %+v", conf)
			}
			tx = s.ReadTxn()
			defer tx.Abort()
			if after := tx.Dump(); !reflect.DeepEqual(before, after) {
				t.Fatalf("a failed transaction changed the store:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

// TestTxn_Semantics: ops see the writes of earlier ops; the results and
// changes come in op order; everything lands at the entry's index.
func TestTxn_Semantics(t *testing.T) {
	t.Parallel()
	s := txnStore(t)
	ops := []registry.TxnOp{
		{Op: "check-index", Key: "a", Index: u64(1)},
		{Op: "set", Key: "a", Value: json.RawMessage(`2`)},
		{Op: "check-index", Key: "a", Index: u64(6)}, // sees its own set
		{Op: "get", Key: "a"},
		{Op: "delete-tree", Key: "b/"},
		{Op: "check-not-exists", Key: "b/2"},
		{Op: "cas", Key: "b/2", Value: json.RawMessage(`"back"`), Index: u64(0)},
		{Op: "check-session", Key: "l", Session: "s"},
		{Op: "unlock", Key: "l", Session: "s"},
		{Op: "lock", Key: "l", Session: "o", Value: json.RawMessage(`"o"`)},
		{Op: "delete", Key: "never"},
		{Op: "get-tree", Key: "b/"}, // sees the cas after the delete-tree
		{Op: "get-or-empty", Key: "never"},
	}
	res, chg, conf, err := runTxn(t, s, 6, ops, nil)
	wantCode(t, err, "")
	if conf != nil {
		t.Fatalf("conflict: %+v", conf)
	}
	if len(res) != len(ops) {
		t.Fatalf("%d results for %d ops", len(res), len(ops))
	}
	if res[3].Entry == nil || string(res[3].Entry.Value) != "2" || res[3].Entry.ModifyIndex != 6 {
		t.Fatalf("get after set = %+v", res[3].Entry)
	}
	if res[4].Deleted == nil || *res[4].Deleted != 3 || res[10].Deleted == nil || *res[10].Deleted != 0 {
		t.Fatalf("deleted counts: %v %v", res[4].Deleted, res[10].Deleted)
	}
	if e := res[9].Entry; e.Session != "o" || e.LockIndex != 2 {
		t.Fatalf("lock after unlock: %+v", e)
	}
	if e := res[0].Entry; e == nil || e.ModifyIndex != 1 || res[7].Entry == nil || res[7].Entry.Session != "s" || res[5].Entry != nil {
		t.Fatalf("check results: %+v %+v %+v", res[0].Entry, res[7].Entry, res[5].Entry)
	}
	if tree := res[11].Entries; len(tree) != 1 || tree[0].Key != "b/2" || string(tree[0].Value) != `"back"` {
		t.Fatalf("get-tree = %+v", tree)
	}
	if res[12].Entry != nil {
		t.Fatalf("get-or-empty of a missing key = %+v", res[12].Entry)
	}
	var actions []string
	for _, c := range chg {
		actions = append(actions, c.Action+" "+c.Key)
	}
	want := []string{"set a", "delete b/1", "delete b/2", "delete b/3", "set b/2", "release l", "acquire l"}
	if !reflect.DeepEqual(actions, want) {
		t.Fatalf("changes = %v, want %v", actions, want)
	}
	tx := s.ReadTxn()
	defer tx.Abort()
	got := tx.ConfigList(nil, "")
	var keys []string
	for _, e := range got {
		keys = append(keys, fmt.Sprintf("%s=%s@%d", e.Key, e.Value, e.ModifyIndex))
	}
	wantKeys := []string{"a=2@6", `b/2="back"@6`, `l="o"@6`}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Fatalf("store = %v, want %v", keys, wantKeys)
	}
	if tx.TableIndex(nil, "config") != 6 {
		t.Fatalf("config table index = %d", tx.TableIndex(nil, "config"))
	}
}

// TestTxn_CheckSeesEveryKey: the check (Apply's ACL) is asked about every
// key, each key a delete-tree removes included, and its refusal changes
// nothing.
func TestTxn_CheckSeesEveryKey(t *testing.T) {
	t.Parallel()
	s := txnStore(t)
	tx := s.ReadTxn()
	before := tx.Dump()
	tx.Abort()
	var asked []string
	check := func(key string, write bool) *registry.Error {
		asked = append(asked, fmt.Sprintf("%s:%v", key, write))
		if key == "b/2" {
			return &registry.Error{Code: "permission_denied", Message: "no"}
		}
		return nil
	}
	_, _, conf, err := runTxn(t, s, 6, []registry.TxnOp{{Op: "get", Key: "a"}, {Op: "get-tree", Key: "b/"},
		{Op: "delete-tree", Key: "b/"}}, check)
	if conf != nil || err == nil || err.Code != "permission_denied" {
		t.Fatalf("conflict %+v, err %+v", conf, err)
	}
	want := []string{"a:false", "b/:false", "b/1:false", "b/2:false"}
	if !reflect.DeepEqual(asked, want) {
		t.Fatalf("asked %v, want %v", asked, want)
	}
	tx = s.ReadTxn()
	defer tx.Abort()
	if !reflect.DeepEqual(before, tx.Dump()) {
		t.Fatal("a refused transaction changed the store")
	}
}

// TestTxn_KVWrites: ops of the Consul-compatible API write exactly their
// value (empty and opaque bytes included) and flags; a lock by the holder
// updates them without a new lock_index; a plain set keeps the holder.
func TestTxn_KVWrites(t *testing.T) {
	t.Parallel()
	s := txnStore(t)
	raw := func(flags uint64) *registry.TxnKV { return &registry.TxnKV{Raw: true, Flags: flags} }
	ops := []registry.TxnOp{
		{Op: "lock", Key: "m", Session: "s", KV: raw(7)},                                        // new key, empty value
		{Op: "lock", Key: "l", Session: "s", Value: []byte{0, 0xff}, KV: raw(9)},                // held already: value and flags
		{Op: "set", Key: "a", Value: json.RawMessage(`{"x":1}`), KV: &registry.TxnKV{Flags: 2}}, // JSON
		{Op: "set", Key: "l", Value: []byte("v2"), KV: raw(1)},                                  // stays held
		{Op: "unlock", Key: "m", Session: "s", KV: raw(0)},
	}
	res, _, conf, err := runTxn(t, s, 6, ops, nil)
	wantCode(t, err, "")
	if conf != nil {
		t.Fatalf("conflict: %+v", conf)
	}
	if e := res[0].Entry; len(e.Value) != 0 || !e.Raw || e.Flags != 7 || e.LockIndex != 1 || e.Session != "s" {
		t.Fatalf("lock of a new key = %+v", e)
	}
	if e := res[1].Entry; string(e.Value) != "\x00\xff" || e.Flags != 9 || e.LockIndex != 1 {
		t.Fatalf("lock by the holder = %+v", e)
	}
	tx := s.ReadTxn()
	defer tx.Abort()
	got := map[string]string{}
	for _, e := range tx.ConfigList(nil, "") {
		got[e.Key] = fmt.Sprintf("%q raw=%v flags=%d session=%q lock=%d", e.Value, e.Raw, e.Flags, e.Session, e.LockIndex)
	}
	want := map[string]string{
		"a":   `"{\"x\":1}" raw=false flags=2 session="" lock=0`,
		"b/1": `"1" raw=false flags=0 session="" lock=0`, "b/2": `"2" raw=false flags=0 session="" lock=0`,
		"b/3": `"3" raw=false flags=0 session="" lock=0`,
		"l":   `"v2" raw=true flags=1 session="s" lock=1`,
		"m":   `"" raw=true flags=0 session="" lock=1`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("store:\n got %v\nwant %v", got, want)
	}
	// The answer's JSON shows each entry's create_index.
	b, jerr := json.Marshal(res[3])
	if jerr != nil || !strings.Contains(string(b), `"create_index":4`) || !strings.Contains(string(b), `"raw_base64":"djI="`) {
		t.Fatalf("result JSON = %s, %v", b, jerr)
	}
	// A read with KV answers JSON values as their bytes, so that <, > and
	// & survive a JSON encoder that escapes them.
	res, _, conf, err = runTxn(t, s, 7, []registry.TxnOp{
		{Op: "set", Key: "h", Value: json.RawMessage(`"<a&b>"`)},
		{Op: "get", Key: "h", KV: &registry.TxnKV{}}, {Op: "get", Key: "h"}}, nil)
	if err != nil || conf != nil {
		t.Fatalf("%+v %+v", err, conf)
	}
	b, _ = json.Marshal(res[1])
	if !strings.Contains(string(b), `"raw_values":true`) || !strings.Contains(string(b), `"value":{"raw_base64":"IjxhJmI+Ig=="}`) {
		t.Fatalf("bytes result JSON = %s", b)
	}
	if b, _ = json.Marshal(res[2]); strings.Contains(string(b), "raw") {
		t.Fatalf("native result JSON = %s", b)
	}
}
