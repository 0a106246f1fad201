package fsm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
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
	cr := &countingReader{r: r}
	br := bufio.NewReader(cr)
	info := &SnapshotInfo{}
	magic := make([]byte, len(snapshotMagic))
	n, err := io.ReadFull(br, magic)
	switch {
	case n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: the file is empty", ErrBadSnapshot)
	case err != nil && err != io.ErrUnexpectedEOF:
		return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	format, ok := parseMagic(magic[:n])
	if !ok {
		return nil, fmt.Errorf("%w: the file does not start with %q", ErrBadSnapshot, strings.TrimSpace(snapshotMagic))
	}
	info.Format = format
	var hdr snapshotHeader
	if err := codec.DecodeValue(br, &hdr); err != nil {
		return nil, fmt.Errorf("%w: header (truncated or corrupt): %v", ErrBadSnapshot, err)
	}
	info.Index, info.Term = hdr.LastIndex, hdr.Term
	var dump registry.Dump
	if err := codec.DecodeValue(br, &dump); err != nil {
		return nil, fmt.Errorf("%w: state (truncated or corrupt) after %d bytes: %v", ErrBadSnapshot, cr.n-int64(br.Buffered()), err)
	}
	rest, err := io.Copy(io.Discard, br)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	if rest > 0 {
		return nil, fmt.Errorf("%w: %d unexpected bytes after the state", ErrBadSnapshot, rest)
	}
	if err := registry.NewStore().Restore(func(tx *registry.Tx) error { return tx.Load(&dump) }); err != nil {
		return nil, fmt.Errorf("%w: the state does not load: %v", ErrBadSnapshot, err)
	}
	info.Size = cr.n
	if dump.Cluster != nil {
		info.ClusterID = dump.Cluster.ClusterID
	}
	info.Counts = dumpCounts(&dump)
	return info, nil
}

// parseMagic accepts this build's magic (the only format it restores).
func parseMagic(b []byte) (int, bool) {
	if !bytes.Equal(b, []byte(snapshotMagic)) {
		return 0, false
	}
	v := strings.TrimSuffix(strings.TrimPrefix(snapshotMagic, "NEXUS-SNAPSHOT-"), "\n")
	n, err := strconv.Atoi(v)
	return n, err == nil
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
