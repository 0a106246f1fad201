package fsm_test

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// TestFSM_ConfigRawFlagsAndPrefixDelete: opaque values and flags are kept
// as written (and survive a snapshot), a prefix delete removes exactly the
// keys under it with one audit record each, and its ACL check covers every
// key it would remove.
func TestFSM_ConfigRawFlagsAndPrefixDelete(t *testing.T) {
	t.Parallel()
	f := mustNewFSM(t)
	raw := []byte{0xff, 0x00, 'b', 'i', 'n'}
	wantErrCode(t, applyResult(t, f, logAt(t, 1, command.TypeConfigSet, &command.ConfigSet{Meta: meta(1), Entries: []command.ConfigOp{
		{Key: "kv/a", Value: raw, Raw: true, Flags: 42},
		{Key: "kv/b", Value: []byte(`{"x":1}`), Flags: 1},
		{Key: "kv/c/d", Value: []byte{}, Raw: true},
		{Key: "kvz", Value: []byte(`2`)},
	}})), "")
	tx := f.Store().ReadTxn()
	got := tx.ConfigGet(nil, "kv/a")
	tx.Abort()
	if got == nil || !got.Raw || got.Flags != 42 || string(got.Value) != string(raw) {
		t.Fatalf("kv/a = %+v", got)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"key":"kv/a","value":{"raw_base64":"/wBiaW4="},"modify_index":1,"raw":true,"flags":42}`; string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}

	// Snapshot and restore keep the kind and the flags.
	g := mustNewFSM(t)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dump(f).Config, dump(g).Config) {
		t.Fatalf("restored config differs:\n%+v\n%+v", dump(f).Config, dump(g).Config)
	}

	r := applyResult(t, f, logAt(t, 2, command.TypeConfigDelete, &command.ConfigDelete{Meta: meta(2), Key: "kv/", Prefix: true}))
	wantErrCode(t, r, "")
	if v, ok := r.Value.(fsm.DeletedPrefix); !ok || v.Deleted != 3 || v.ModifyIndex != 2 {
		t.Fatalf("result = %#v", r.Value)
	}
	d := dump(f)
	if len(d.Config) != 1 || d.Config[0].Key != "kvz" {
		t.Fatalf("left after the prefix delete: %+v", d.Config)
	}
	deletes := 0
	for _, rec := range d.Audit {
		if rec.Index == 2 {
			if rec.Action != registry.ActionDelete || rec.ResourceType != registry.AuditConfig || !json.Valid(rec.Before) {
				t.Errorf("audit record %+v", rec)
			}
			if rec.Resource == "kv/a" && string(rec.Before) != `{"key":"kv/a","value":{"raw_base64":"/wBiaW4="},"create_index":1,"modify_index":1,"raw":true,"flags":42}` {
				t.Errorf("audit document of a raw value: %s", rec.Before)
			}
			deletes++
		}
	}
	if deletes != 3 {
		t.Errorf("%d audit records for the prefix delete, want 3", deletes)
	}
	// Nothing under the prefix: no error, no index move.
	wantErrCode(t, applyResult(t, f, logAt(t, 3, command.TypeConfigDelete, &command.ConfigDelete{Meta: meta(3), Key: "kv/", Prefix: true})), "")
	tx = f.Store().ReadTxn()
	idx := tx.TableIndex(nil, "config")
	tx.Abort()
	if idx != 2 {
		t.Errorf("config table index = %d after deleting nothing, want 2", idx)
	}
	wantErrCode(t, applyResult(t, f, logAt(t, 4, command.TypeConfigDelete, &command.ConfigDelete{Meta: meta(4), Key: "kv", Prefix: true, CAS: u64(1)})), registry.CodeInvalid)
}

func TestFSM_PrefixDeleteChecksEveryKey(t *testing.T) {
	t.Parallel()
	f := aclFSM(t)
	// t-web may write config app/ only.
	wantErrCode(t, applyResult(t, f, logAt(t, 4, command.TypeACLPolicyUpsert, &command.ACLPolicyUpsert{Meta: as(4, acl.Token, "root"),
		Policy: registry.ACLPolicy{Name: "web", Rules: []registry.ACLRule{{Resource: "config", Prefix: "app/", Access: "write"}}}})), "")
	wantErrCode(t, applyResult(t, f, logAt(t, 5, command.TypeConfigSet, &command.ConfigSet{Meta: meta(5), Entries: []command.ConfigOp{
		{Key: "app/a", Value: []byte(`1`)}, {Key: "apx", Value: []byte(`2`)}}})), "")
	before := dump(f)
	wantErrCode(t, applyResult(t, f, logAt(t, 6, command.TypeConfigDelete, &command.ConfigDelete{Meta: as(6, acl.Token, "t-web"), Key: "ap", Prefix: true})),
		fsm.CodePermissionDenied)
	if !reflect.DeepEqual(before, dump(f)) {
		t.Fatal("a refused prefix delete changed the state")
	}
	wantErrCode(t, applyResult(t, f, logAt(t, 7, command.TypeConfigDelete, &command.ConfigDelete{Meta: as(7, acl.Token, "t-web"), Key: "app/", Prefix: true})), "")
}
