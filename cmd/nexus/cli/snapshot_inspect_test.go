package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/fsm"
	nxcommand "github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// writeRealSnapshot applies a few commands to a real FSM (the last in term
// 4) and writes its snapshot, as GET /cluster/snapshot serves it.
func writeRealSnapshot(t *testing.T, path string) (index uint64, size int) {
	t.Helper()
	c := nxcommand.NewCodec()
	f := fsm.New(fsm.Deps{Store: registry.NewStore(), Codec: c})
	cmds := []struct {
		t   nxcommand.Type
		msg any
	}{
		{nxcommand.TypeClusterInit, &nxcommand.ClusterInit{ClusterID: "c-42", Secret: "s"}},
		{nxcommand.TypeRegisterInstance, &nxcommand.RegisterInstance{Instance: registry.Instance{ID: "web-1", Service: "web", Type: "http", Address: "10.0.0.1", Port: 80, Node: "n1", Status: registry.StatusPassing}}},
		{nxcommand.TypeRegisterInstance, &nxcommand.RegisterInstance{Instance: registry.Instance{ID: "web-2", Service: "web", Type: "http", Address: "10.0.0.2", Port: 80, Node: "n1", Status: registry.StatusPassing}}},
		{nxcommand.TypeConfigSet, &nxcommand.ConfigSet{Entries: []nxcommand.ConfigOp{{Key: "a", Value: []byte(`1`)}, {Key: "b", Value: []byte(`2`)}, {Key: "c", Value: []byte(`3`)}}, Batch: true}},
	}
	var logs []*raft.Log
	for i, cm := range cmds {
		b, err := c.Encode(cm.t, cm.msg)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(i + 1), Term: 4, Type: raft.LogCommand, Data: b})
	}
	f.ApplyBatch(logs)
	var buf bytes.Buffer
	if err := f.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f.AppliedIndex(), buf.Len()
}

// snapshot inspect reads a file offline: the fake API has no script, so
// any request would fail the case.
func TestSnapshotInspect(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "nexus.snap")
	idx, size := writeRealSnapshot(t, snap)
	data, _ := os.ReadFile(snap)
	trunc := filepath.Join(dir, "trunc.snap")
	if err := os.WriteFile(trunc, data[:len(data)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []cliCase{
		{
			name: "table",
			args: []string{"snapshot", "inspect", snap},
			stdout: "File:    " + snap + "\nFormat:  2\nIndex:   " + strconv.FormatUint(idx, 10) + "\nTerm:    4\nSize:    " + strconv.Itoa(size) + " bytes\nCluster: c-42\n\n" +
				"KIND                              COUNT\nservices                          1\ninstances                         2\nconfig keys                       3\n" +
				"routes                            0\naudit records (not yet archived)  7\nACL tokens                        0\nACL policies                      0\nACL roles                         0\n" +
				"sessions                          0\nkeys in lock delay                0\nmaintenance records               0\n",
		},
		{
			name:  "json from stdin",
			args:  []string{"snapshot", "inspect", "-", "--format", "json"},
			stdin: string(data),
			stdoutHave: []string{`"index": ` + strconv.FormatUint(idx, 10), `"term": 4`, `"size": ` + strconv.Itoa(size), `"cluster_id": "c-42"`,
				`"kind": "instances",` + "\n      \"count\": 2"},
		},
		{
			name:   "truncated",
			args:   []string{"snapshot", "inspect", trunc},
			code:   1,
			stderr: []string{"Error: " + trunc + ": not a valid nexus snapshot: state (truncated or corrupt)"},
		},
		{
			name:   "not a snapshot",
			args:   []string{"snapshot", "inspect", "-"},
			stdin:  "{}",
			code:   1,
			stderr: []string{"Error: -: not a valid nexus snapshot: the file does not start with \"NEXUS-SNAPSHOT-1\" or \"NEXUS-SNAPSHOT-2\""},
		},
		{
			name:   "missing file",
			args:   []string{"snapshot", "inspect", filepath.Join(dir, "nope")},
			code:   1,
			stderr: []string{"no such file or directory"},
		},
		{
			name:   "no file",
			args:   []string{"snapshot", "inspect"},
			code:   2,
			stderr: []string{"missing FILE"},
		},
	} {
		t.Run(tc.name, tc.run)
	}
}
