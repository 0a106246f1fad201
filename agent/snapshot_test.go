package agent

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// machineWith returns an FSM that applied a cluster identity (unless id is
// empty) and one config entry per key.
func machineWith(t *testing.T, codec *command.Codec, id string, keys ...string) *fsm.FSM {
	t.Helper()
	m := fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: codec})
	idx := uint64(0)
	apply := func(typ command.Type, msg any) {
		b, err := codec.Encode(typ, msg)
		if err != nil {
			t.Fatal(err)
		}
		idx++
		m.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: b})
	}
	if id != "" {
		apply(command.TypeClusterInit, &command.ClusterInit{ClusterID: id, Secret: "secret-of-" + id})
	}
	for _, k := range keys {
		apply(command.TypeConfigSet, &command.ConfigSet{Entries: []command.ConfigOp{{Key: k, Value: []byte(`"` + k + `"`)}}})
	}
	return m
}

func snapshotOf(t *testing.T, m *fsm.FSM) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := m.WriteSnapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// restored loads snapshot bytes into a fresh FSM and returns its dump.
func restored(t *testing.T, codec *command.Codec, data []byte) (*registry.Dump, uint64) {
	t.Helper()
	m := fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: codec})
	if err := m.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	tx := m.Store().ReadTxn()
	defer tx.Abort()
	return tx.Dump(), m.AppliedIndex()
}

func TestPrepareRestore(t *testing.T) {
	codec := command.NewCodec()
	source := machineWith(t, codec, "cluster-a", "k1", "k2", "k3")
	snap := snapshotOf(t, source)
	want, wantIndex := restored(t, codec, snap)

	tests := []struct {
		name      string
		target    string // identity of the target cluster; "" = none yet
		data      []byte
		invalid   bool
		unchanged bool // the bytes come back as given
	}{
		{name: "another cluster keeps its identity", target: "cluster-b", data: snap},
		{name: "same cluster", target: "cluster-a", data: snap, unchanged: true},
		{name: "target without identity", target: "", data: snap, unchanged: true},
		{name: "garbage", target: "cluster-b", data: []byte("garbage"), invalid: true},
		{name: "truncated", target: "cluster-b", data: snap[:len(snap)/2], invalid: true},
		{name: "empty", target: "cluster-b", data: nil, invalid: true},
	}
	for _, format := range []int{fsm.SnapshotFormat1, fsm.SnapshotFormat2} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/format=%d", tt.name, format), func(t *testing.T) {
				prepareRestoreCase(t, codec, tt.target, tt.data, tt.invalid, tt.unchanged, format, want, wantIndex)
			})
		}
	}
}

func prepareRestoreCase(t *testing.T, codec *command.Codec, target string, data []byte, invalid, unchanged bool, format int, want *registry.Dump, wantIndex uint64) {
	m := machineWith(t, codec, target, "b-only")
	out, idx, err := prepareRestore(codec, m.Store(), data, func() int { return format })
	if invalid {
		if err == nil {
			t.Fatal("invalid snapshot accepted")
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if idx != wantIndex {
		t.Errorf("index %d, want %d", idx, wantIndex)
	}
	if unchanged != bytes.Equal(out, data) {
		t.Errorf("bytes unchanged = %v, want %v", bytes.Equal(out, data), unchanged)
	}
	if !unchanged && !bytes.HasPrefix(out, []byte(fmt.Sprintf("NEXUS-SNAPSHOT-%d\n", format))) {
		t.Errorf("rewritten as %q..., want format %d", out[:16], format)
	}
	got, _ := restored(t, codec, out)
	tx := m.Store().ReadTxn()
	targetID := tx.ClusterMeta()
	tx.Abort()
	wantID := want.Cluster
	if targetID != nil {
		wantID = targetID
	}
	if got.Cluster == nil || *got.Cluster != *wantID {
		t.Errorf("identity %+v, want %+v", got.Cluster, wantID)
	}
	g, w := *got, *want
	g.Cluster, w.Cluster = nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("state differs:\n got %+v\nwant %+v", g, w)
	}
}
