package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// realSnapshot applies the command log (the last entries in term 3) and
// returns the FSM and its snapshot bytes.
func realSnapshot(t *testing.T) (*fsm.FSM, []byte) {
	t.Helper()
	return realSnapshotIn(t, fsm.LatestSnapshotFormat)
}

// realSnapshotIn is realSnapshot in the given format.
func realSnapshotIn(t *testing.T, format int) (*fsm.FSM, []byte) {
	t.Helper()
	f := fsmWritingFormat(format)
	logs := buildLogs(t)
	for _, l := range logs[len(logs)-5:] {
		l.Term = 3
	}
	f.ApplyBatch(logs)
	return f, snapshotBytes(t, f)
}

func TestInspect_RealSnapshot(t *testing.T) {
	for _, format := range []int{fsm.SnapshotFormat1, fsm.SnapshotFormat2} {
		t.Run(fmt.Sprintf("format=%d", format), func(t *testing.T) { inspectRealSnapshot(t, format) })
	}
}

func inspectRealSnapshot(t *testing.T, format int) {
	f, b := realSnapshotIn(t, format)
	info, err := fsm.Inspect(bytes.NewReader(b), command.NewCodec())
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if info.Format != format || info.Index != f.AppliedIndex() || info.Term != 3 || info.Size != int64(len(b)) || info.ClusterID != "c-1" {
		t.Fatalf("info = %+v; want format %d, index %d, term 3, size %d, cluster c-1", info, format, f.AppliedIndex(), len(b))
	}
	tx := f.Store().ReadTxn()
	defer tx.Abort()
	d := tx.Dump()
	want := map[string]int{
		"services": 2, "instances": 4, "routes": 2, // web+db; web-1..3, db-1; r-web, r-db
		"config": len(d.Config), "audit": len(d.Audit),
		"acl_tokens": len(d.ACLTokens), "acl_policies": len(d.ACLPolicies), "acl_roles": len(d.ACLRoles),
		"sessions": len(d.Sessions), "lock_delays": len(d.LockDelays), "maintenance": len(d.Maintenance),
	}
	for kind, n := range want {
		if got := info.Count(kind); got != n {
			t.Errorf("count %s = %d, want %d (counts %+v)", kind, got, n, info.Counts)
		}
	}
	if info.Count("config") == 0 || info.Count("audit") == 0 || info.Count("acl_tokens") == 0 {
		t.Errorf("the log leaves config keys, audit records and the bootstrap token: %+v", info.Counts)
	}
	if got := info.Count("indexes"); got != -1 {
		t.Errorf("table indexes are bookkeeping, not shown: %d", got)
	}
	if len(info.Counts) != len(want) {
		t.Errorf("kinds %+v, want exactly %v", info.Counts, want)
	}
}

// A snapshot restored by raft keeps the term of its header, so the next
// snapshot (before any apply) carries it too.
func TestInspect_TermSurvivesRestore(t *testing.T) {
	_, b := realSnapshot(t)
	dst := mustNewFSM(t)
	if err := dst.Restore(&fakeRC{bytes.NewReader(b)}); err != nil {
		t.Fatal(err)
	}
	info, err := fsm.Inspect(bytes.NewReader(snapshotBytes(t, dst)), command.NewCodec())
	if err != nil || info.Term != 3 {
		t.Fatalf("after restore: %+v %v, want term 3", info, err)
	}
}

type fakeRC struct{ *bytes.Reader }

func (fakeRC) Close() error { return nil }

// A snapshot written before the header had a term still inspects (term 0)
// and restores; and a decoder without the term field (an older build)
// reads the new header.
func TestInspect_HeaderCompatibility(t *testing.T) {
	c := command.NewCodec()
	type oldHeader struct {
		LastIndex uint64 `msgpack:"last_index"`
	}
	var old bytes.Buffer
	old.WriteString("NEXUS-SNAPSHOT-1\n")
	if err := c.EncodeValue(&old, oldHeader{LastIndex: 42}); err != nil {
		t.Fatal(err)
	}
	if err := c.EncodeValue(&old, &registry.Dump{}); err != nil {
		t.Fatal(err)
	}
	info, err := fsm.Inspect(bytes.NewReader(old.Bytes()), c)
	if err != nil || info.Index != 42 || info.Term != 0 || info.Count("services") != 0 {
		t.Fatalf("old snapshot: %+v %v", info, err)
	}

	_, b := realSnapshot(t)
	r := bytes.NewReader(b[len("NEXUS-SNAPSHOT-1\n"):])
	var h oldHeader
	if err := c.DecodeValue(r, &h); err != nil || h.LastIndex == 0 {
		t.Fatalf("an older build's header decoder: %+v %v", h, err)
	}
}

func TestInspect_BadFiles(t *testing.T) {
	_, b := realSnapshot(t)
	// Replace the state's map marker (the first byte after the header)
	// with 0xc1, a byte msgpack never uses.
	magic := len("NEXUS-SNAPSHOT-1\n")
	r := bytes.NewReader(b[magic:])
	var hdr map[string]uint64
	if err := command.NewCodec().DecodeValue(r, &hdr); err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(b)
	corrupt[len(b)-r.Len()] = 0xc1
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "the file is empty"},
		{"not a snapshot", []byte("hello world, this is not a snapshot"), "does not start with"},
		{"magic only", b[:len("NEXUS-SNAPSHOT-1\n")], "header (truncated or corrupt)"},
		{"short magic", b[:5], "does not start with"},
		{"truncated in the state", b[:len(b)/2], "state (truncated or corrupt)"},
		{"last byte missing", b[:len(b)-1], "state (truncated or corrupt)"},
		{"trailing bytes", append(bytes.Clone(b), 0x01, 0x02), "2 unexpected bytes after the state"},
		{"corrupt byte", corrupt, "corrupt"},
		{"other format", append([]byte("NEXUS-SNAPSHOT-9\n"), b[len("NEXUS-SNAPSHOT-1\n"):]...), "does not start with"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := fsm.Inspect(bytes.NewReader(tc.data), command.NewCodec())
			if err == nil {
				t.Fatalf("Inspect = %+v, want an error", info)
			}
			if !errors.Is(err, fsm.ErrBadSnapshot) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrBadSnapshot containing %q", err, tc.want)
			}
		})
	}
}

// The state must load as a restore would load it: a service without a
// name decodes but is refused by the store.
func TestInspect_StateThatDoesNotLoad(t *testing.T) {
	c := command.NewCodec()
	var buf bytes.Buffer
	buf.WriteString("NEXUS-SNAPSHOT-1\n")
	_ = c.EncodeValue(&buf, map[string]uint64{"last_index": 7})
	d := &registry.Dump{Services: []registry.Service{{Name: ""}}}
	_ = c.EncodeValue(&buf, d)
	if _, err := fsm.Inspect(&buf, c); err == nil || !strings.Contains(err.Error(), "does not load") {
		t.Fatalf("err = %v, want the state refused", err)
	}
}
