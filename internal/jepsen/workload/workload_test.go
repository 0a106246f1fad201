package workload

import (
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/nexus/nexus/internal/jepsen/checker"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec    string
		names   []string
		wantErr error
	}{
		{"register", []string{"register"}, nil},
		{"register, set,register", []string{"register", "set"}, nil},
		{"audit", []string{"audit"}, nil},
		{"register,set,audit", []string{"register", "set", "audit"}, nil},
		{"bogus", nil, errors.New("")},
		{"", nil, errors.New("")},
	}
	for _, tc := range tests {
		ws, err := Parse(tc.spec)
		if (err != nil) != (tc.wantErr != nil) {
			t.Fatalf("%q: err %v", tc.spec, err)
		}
		if len(ws) != len(tc.names) {
			t.Fatalf("%q: %d workloads", tc.spec, len(ws))
		}
		for i, w := range ws {
			if w.Name() != tc.names[i] {
				t.Fatalf("%q: %s", tc.spec, w.Name())
			}
		}
	}
}

func TestElementID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want int64
	}{{"e1", 1}, {"e123456", 123456}, {ElementID(77), 77}, {"x1", -1}, {"e", -1}, {"e-3", -1}, {"web-1", -1}}
	for _, tc := range tests {
		if got := ParseElementID(tc.id); got != tc.want {
			t.Errorf("ParseElementID(%q) = %d, want %d", tc.id, got, tc.want)
		}
	}
}

func TestArchiveFilesRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := ReadArchive(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no files: %v", err)
	}
	ar := &checker.AuditArchive{Archiving: true, Backlog: 2, Target: checker.AuditKey{RaftIndex: 9},
		Watermark: checker.AuditKey{RaftIndex: 9, Position: 1}, Dropped: 1,
		Rows: []checker.AuditRow{{ClusterID: "c", RaftIndex: 9, Position: 1, Action: "set", ResourceType: "config",
			Resource: AuditKey(3), RequestID: "jp-x-1", Value: "7"}, {ClusterID: "c", RaftIndex: 10, Actor: "system"}}}
	if err := WriteArchive(dir, ar); err != nil {
		t.Fatal(err)
	}
	got, err := ReadArchive(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ar) {
		t.Fatalf("round trip:\n%+v\n%+v", got, ar)
	}
	if w, _ := New(NameAudit); w.(ArchiveUser) == nil || !w.(ArchiveUser).NeedsArchive() {
		t.Fatal("audit does not need the archive")
	}
	if _, ok := any(&Register{}).(ArchiveUser); ok {
		t.Fatal("register needs the archive")
	}
}
