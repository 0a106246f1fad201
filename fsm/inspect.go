package fsm

import (
	"errors"
	"io"
	"reflect"
	"strings"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// SnapshotInfo describes a snapshot file (`nexus snapshot inspect`).
type SnapshotInfo struct {
	// Format is the format version of the file (the digit of its magic).
	Format int `json:"format"`
	// Index is the Raft index the state was taken at.
	Index uint64 `json:"index"`
	// Term is the Raft term of that index; 0 when the file was written by
	// a build that did not record it.
	Term uint64 `json:"term"`
	// Size is the file's length in bytes.
	Size int64 `json:"size"`
	// ClusterID is the cluster the snapshot was taken from ("" if none).
	ClusterID string `json:"cluster_id"`
	// Counts holds one entry per kind of object the state holds, in the
	// order of the state dump.
	Counts []KindCount `json:"counts"`
}

// KindCount is how many objects of one kind a snapshot holds. Kind is the
// name the state dump gives the table (services, instances, config,
// routes, audit, acl_tokens, ...).
type KindCount struct {
	Kind  string `json:"kind"`
	Count int    `json:"count"`
}

// Count returns the count of kind, or -1 when the snapshot has no such kind.
func (s *SnapshotInfo) Count(kind string) int {
	for _, c := range s.Counts {
		if c.Kind == kind {
			return c.Count
		}
	}
	return -1
}

// ErrBadSnapshot wraps every reason a file is not a snapshot this build
// can restore.
var ErrBadSnapshot = errors.New("not a valid nexus snapshot")

// Inspect reads a whole snapshot (as `nexus snapshot save` writes it and
// FSM.Restore reads it) and describes it. It checks the file as a restore
// would: the header, the state, nothing after it, and the state loaded
// into a scratch store. A truncated or corrupt file is an error wrapping
// ErrBadSnapshot that says which part failed.
func Inspect(r io.Reader, codec *command.Codec) (*SnapshotInfo, error) {
	c, err := restoreInto(registry.NewStore(), codec, r)
	if err != nil {
		return nil, err
	}
	info := &SnapshotInfo{Format: c.format, Index: c.header.LastIndex, Term: c.header.Term, Size: c.size, Counts: c.counts}
	if c.cluster != nil {
		info.ClusterID = c.cluster.ClusterID
	}
	return info, nil
}

// internalKind reports a table of the dump that is bookkeeping, not
// objects (the table indexes).
func internalKind(name string) bool { return name == "indexes" }

// dumpCounts counts every list of the dump, named by its msgpack key, so a
// kind added to registry.Dump (sessions, say) is counted without a change
// here.
func dumpCounts(d *registry.Dump) []KindCount {
	v := reflect.ValueOf(d).Elem()
	t := v.Type()
	var out []KindCount
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Type.Kind() != reflect.Slice {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
		if name == "" || name == "-" {
			name = strings.ToLower(f.Name)
		}
		if internalKind(name) {
			continue
		}
		out = append(out, KindCount{Kind: name, Count: v.Field(i).Len()})
	}
	return out
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
