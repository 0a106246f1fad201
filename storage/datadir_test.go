package storage

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/nexus/nexus/internal/scaletest"
)

// TestLogStores: each store keeps what Raft stored across a reopen, a data
// dir keeps the store it was made with, and OpenExisting finds it.
func TestLogStores(t *testing.T) {
	cases := []struct {
		asked, want, other string
	}{
		{"", LogStoreBoltDB, LogStoreWAL},
		{LogStoreBoltDB, LogStoreBoltDB, LogStoreWAL},
		{LogStoreWAL, LogStoreWAL, LogStoreBoltDB},
	}
	for _, c := range cases {
		t.Run(c.want+"/"+c.asked, func(t *testing.T) {
			dir := t.TempDir()
			d, err := Open(dir, "n1", Options{LogStore: c.asked})
			if err != nil {
				t.Fatal(err)
			}
			if d.LogStore != c.want {
				t.Fatalf("LogStore = %q, want %q", d.LogStore, c.want)
			}
			logs := []*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("a")}, {Index: 2, Term: 1, Type: raft.LogCommand, Data: []byte("b")}}
			if err := d.Store.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			if err := d.Store.SetUint64([]byte("CurrentTerm"), 7); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}

			if _, err := Open(dir, "n1", Options{LogStore: c.other}); !errors.Is(err, ErrLogStoreMismatch) {
				t.Fatalf("reopen with %s: %v, want ErrLogStoreMismatch", c.other, err)
			}
			d, node, err := OpenExisting(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if node != "n1" || d.LogStore != c.want {
				t.Fatalf("OpenExisting: node %q store %q, want n1 %s", node, d.LogStore, c.want)
			}
			last, err := d.Store.LastIndex()
			if err != nil || last != 2 {
				t.Fatalf("last index %d (%v) after reopen, want 2", last, err)
			}
			var l raft.Log
			if err := d.Store.GetLog(2, &l); err != nil || string(l.Data) != "b" {
				t.Fatalf("entry 2 after reopen: %q (%v)", l.Data, err)
			}
			if term, err := d.Store.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
				t.Fatalf("term %d (%v) after reopen, want 7", term, err)
			}
		})
	}
}

func TestOpenRefusesUnknownStore(t *testing.T) {
	if _, err := Open(t.TempDir(), "n1", Options{LogStore: "rocksdb"}); err == nil {
		t.Fatal("opened with an unknown log store")
	}
}

// TestBothStoresRefused: a data dir with both logs is ambiguous.
func TestBothStoresRefused(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir, "n1", Options{LogStore: LogStoreWAL})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Store.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand}}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	s, err := openLogStore(dir, LogStoreBoltDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(dir, "n1", Options{LogStore: LogStoreWAL}); err == nil {
		t.Fatalf("opened a data dir holding both %s and %s", filepath.Join(raftDir, raftDBFile), raftWALDir)
	}
}

// TestBoltLogStoreWriteCostFlat: a write to the boltdb Raft log costs the
// same whether the compaction after a snapshot has just freed a few pages
// or tens of thousands. With bbolt's default array freelist each write
// transaction merged the pages freed by the previous one into the whole
// sorted free list, allocating and copying it (5-7% of a node's CPU under
// 64 writers, more as the state and so the log between snapshots grow);
// the map freelist releases them in time proportional to their number.
// Counted in bytes allocated per write, not in wall time.
func TestBoltLogStoreWriteCostFlat(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, raftDir), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := openLogStore(dir, LogStoreBoltDB, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	next := uint64(1)
	value := bytes.Repeat([]byte("v"), 400)
	store := func(n int) {
		t.Helper()
		logs := make([]*raft.Log, n)
		for i := range logs {
			logs[i] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: value}
			next++
		}
		if err := st.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
	}
	perWrite := func() uint64 {
		const writes = 50
		return scaletest.Allocated(func() {
			for range writes {
				store(1)
			}
		}) / writes
	}
	for range 20 { // a short log, compacted: a small free list
		store(100)
	}
	if err := st.DeleteRange(1, next-100); err != nil {
		t.Fatal(err)
	}
	small := perWrite()
	for range 1000 { // 100,000 entries of 400 bytes (~40 MB), compacted
		store(100)
	}
	if err := st.DeleteRange(1, next-100); err != nil {
		t.Fatal(err)
	}
	store(1) // frees the pages the compaction released
	large := perWrite()
	t.Logf("bytes allocated per write: %d with a short free list, %d with a long one", small, large)
	if large > 2*small+4096 {
		t.Fatalf("a write allocates %d bytes after a large compaction, %d after a small one: work grows with the free list", large, small)
	}
}
